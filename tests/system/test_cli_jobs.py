"""The job commands of the real ``mesh`` command line, as an operator scripts them: JSON out
(``--json``), JSON in from ``@file`` and ``-``, and exit codes that say what happened."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest
import trio

from tests.conftest import ROOT
from tests.helpers import MESH, NodeProcess, mesh, node_env, wait_until_sync, write_config
from tests.pg.graph_setup import SEQUENCE, mesh_with

APP = "ops"
MANIFEST = """
app:
  id: ops
  version: '1'
  graphs:
    - subscribes: ops.wait
      activities:
        t: {type: trigger}
        gate: {type: hook}
        ask: {type: worker, topic: ops.nobody}
      transitions:
        t: [{to: gate}, {to: ask}]
      hooks:
        ops.open:
          - to: gate
            conditions:
              match: [{expected: '{t.output.data.door}', actual: '{$self.hook.data.door}'}]
"""


def run(
    *args: str, dsn: str, cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MESH, *args],
        env=node_env(dsn, MESH_APP=APP),
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def queued(conn: psycopg.Connection, key: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM mesh.stream_messages WHERE payload->>'job_id' = %s", (key,)
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def engine(tmp_path: Path, dsn: str) -> object:
    manifest = tmp_path / "ops.yaml"
    manifest.write_text(MANIFEST)
    deployed = run("deploy", str(manifest), "--json", dsn=dsn, cwd=tmp_path)
    assert deployed.returncode == 0, deployed.stderr
    assert json.loads(deployed.stdout) == {"app": APP, "version": "1", "deployed": True}
    active = run("activate", "1", "--json", dsn=dsn, cwd=tmp_path)
    assert json.loads(active.stdout) == {"app": APP, "version": "1", "active": True}
    config = write_config(tmp_path / "mesh.yaml", f"app: {APP}\nnode: {{roles: [engine]}}\n")
    node = NodeProcess(config, dsn, log=tmp_path / "node.log")
    node.wait_for_log("event=node_ready")
    yield node
    node.ensure_stopped()


def test_pub_signal_export_interrupt_scrub__json_in_and_out(
    tmp_path: Path, dsn: str, conn: psycopg.Connection, engine: object
) -> None:
    (tmp_path / "door.json").write_text(json.dumps({"door": "red", "note": "x" * 200_000}))
    started = run(
        "pub", "ops.wait", "@door.json", "--job-id", "red", "--json", dsn=dsn, cwd=tmp_path
    )
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout) == {"job_id": "red"}
    blue = run(
        "pub", "ops.wait", "-", "--job-id", "blue", dsn=dsn, cwd=tmp_path, stdin='{"door": "blue"}'
    )
    assert blue.returncode == 0 and blue.stdout.strip() == "blue", blue.stderr
    wait_until_sync(lambda: queued(conn, "blue") == 1, what="blue's request queued")

    # A wait that runs out of time exits 4: the job goes on.
    waited = run(
        "pub", "ops.wait", '{"door": "green"}', "--wait", "--timeout", "0.5", dsn=dsn, cwd=tmp_path
    )
    assert waited.returncode == 4 and "goes on" in waited.stderr

    signalled = run(
        "signal", "ops.open", "-", "--json", dsn=dsn, cwd=tmp_path, stdin='{"door": "red"}'
    )
    assert signalled.returncode == 0, signalled.stderr
    assert json.loads(signalled.stdout) == {"topic": "ops.open", "resumed": 1}

    exported = json.loads(run("export", "red", dsn=dsn, cwd=tmp_path).stdout)
    assert exported["job_id"] == "red" and exported["data"] is not None
    assert "gate" in exported["activities"]

    interrupted = run("interrupt", "blue", "--reason", "operator", "--json", dsn=dsn, cwd=tmp_path)
    assert json.loads(interrupted.stdout) == {"job_id": "blue", "interrupted": True, "status": None}
    assert queued(conn, "blue") == 0, "its queued request was withdrawn"
    again = run("interrupt", "blue", dsn=dsn, cwd=tmp_path)
    assert again.returncode == 1 and "already finished (interrupted)" in again.stdout

    listed = json.loads(
        run("jobs", "--status", "interrupted", "--json", dsn=dsn, cwd=tmp_path).stdout
    )
    assert [job["job_id"] for job in listed] == ["blue"]

    scrubbed = run("scrub", "blue", "--json", dsn=dsn, cwd=tmp_path)
    assert json.loads(scrubbed.stdout) == {"job_id": "blue", "scrubbed": True}
    running = run("scrub", "red", dsn=dsn, cwd=tmp_path)
    assert running.returncode == 1 and "running or unknown" in running.stdout
    unknown = run("interrupt", "nobody", dsn=dsn, cwd=tmp_path)
    assert unknown.returncode == 2 and "nobody" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "expected"),
    [
        (["pub", "ops.wait", "@missing.json"], None, "cannot read 'missing.json'"),
        (["pub", "ops.wait", "-"], "{not json", "is not valid JSON"),
        (["pub", "ops.wait", "-"], "[" * 500 + "]" * 500, "nests 500 levels deep"),
        (["signal", "ops.open", "{}", "--code", "5000"], None, "not a status code"),
        (["interrupt", "x", "--code", "-1"], None, "not a status code"),
        (["signal", "bad topic", "{}"], None, "is not allowed"),
    ],
)
def test_bad_input_is_refused_with_advice_and_nothing_is_written(
    tmp_path: Path,
    dsn: str,
    conn: psycopg.Connection,
    args: list[str],
    stdin: str | None,
    expected: str,
) -> None:
    result = run(*args, dsn=dsn, cwd=tmp_path, stdin=stdin)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert conn.execute("SELECT count(*) FROM mesh.jobs").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM mesh.stream_messages").fetchone() == (0,)


def test_streams_requeue_of_a_missing_dead_letter_fails__all_apps_when_empty(
    tmp_path: Path, dsn: str
) -> None:
    missing = mesh("streams", "requeue", "--id", "99999", "--json", dsn=dsn, cwd=tmp_path)
    assert missing.returncode == 1 and "no dead letter 99999" in missing.stderr
    assert json.loads(missing.stdout)["missing"] == [99999]
    empty = mesh("streams", "--all-apps", dsn=dsn, cwd=tmp_path)
    assert empty.stdout.strip() == "no messages in any stream of any app"


def test_streams_send__warns_when_no_member_serves_the_topic(tmp_path: Path, dsn: str) -> None:
    sent = mesh("streams", "send", "--json", "nobody.home", "@-", dsn=dsn, cwd=tmp_path)
    assert sent.returncode == 2 and "cannot read '-'" in sent.stderr  # '@-' is a file named '-'
    sent = run("streams", "send", "nobody.home", "-", dsn=dsn, cwd=tmp_path, stdin='{"a": 1}')
    assert sent.returncode == 0 and json.loads(sent.stdout)["topic"] == "nobody.home"
    assert "no live member of app 'ops' serves topic 'nobody.home'" in sent.stderr


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["jobs"], ["only jobs in this state", "newest first (1 to 10000)"]),
        (["demo"], ["how many (1 to 100000)"]),
        (["pub"], ["JSON, @file or - (stdin)", "--json"]),
        (["throttle"], ["--json"]),
        (["run"], ["every node also runs a quorum member"]),
    ],
)
def test_help_says_what_each_option_does(
    tmp_path: Path, dsn: str, command: list[str], expected: list[str]
) -> None:
    result = mesh(*command, "--help", dsn=dsn, cwd=tmp_path)
    text = " ".join(result.stdout.split())
    assert result.returncode == 0 and all(phrase in text for phrase in expected), text


ORDERS = ROOT / "config" / "orders.yaml"


def test_cli__deploy_refuses_an_invalid_manifest_and_stores_nothing(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        ORDERS.read_text()
        .replace("'{placed.output.data.sku}'", "'{plaecd.output.data.sku}'")
        .replace("topic: inventory.reserve", "topic: order.placed")
    )
    result = subprocess.run(
        [MESH, "deploy", str(bad)],
        env=node_env(dsn),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert (
        "unknown activity 'plaecd'" in result.stderr
        and "a worker topic must differ" in result.stderr
    )
    assert "nothing was deployed" in result.stderr
    assert conn.execute("SELECT count(*) FROM mesh.app_versions").fetchone() == (0,)

    ok = subprocess.run(
        [MESH, "deploy", str(ORDERS)],
        env=node_env(dsn),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert ok.returncode == 0 and "deployed" in ok.stdout
    active = subprocess.run(
        [MESH, "activate", "1", "--app", "orders"],
        env=node_env(dsn),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert active.returncode == 0 and "is active" in active.stdout
    assert conn.execute("SELECT active_version FROM mesh.apps WHERE app = 'orders'").fetchone() == (
        "1",
    )


async def test_the_cli_reserves_a_pending_job_and_lists_it(dsn: str, tmp_path: Path) -> None:
    from tests.helpers import mesh as run_mesh

    async with mesh_with(dsn, SEQUENCE) as mesh:

        def cli(*args: str) -> Any:
            return run_mesh("pub", "calc", *args, "--app", "t", dsn=dsn, cwd=tmp_path)

        refused = await trio.to_thread.run_sync(cli, '{"value": 2}', "--pending", "soon")
        reserved = await trio.to_thread.run_sync(
            cli, '{"value": 2}', "--job-id", "cli-held", "--pending", "10 minutes"
        )
        listed = await trio.to_thread.run_sync(
            lambda: run_mesh("jobs", "--status", "pending", "--app", "t", dsn=dsn, cwd=tmp_path)
        )
        shown = await trio.to_thread.run_sync(
            lambda: run_mesh("job", "cli-held", "--app", "t", dsn=dsn, cwd=tmp_path)
        )
        record = await mesh.get_job("cli-held")
    assert refused.returncode != 0 and "pending='soon'" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert reserved.returncode == 0 and reserved.stdout.strip() == "cli-held", reserved.stderr
    assert "cli-held" in listed.stdout and "pending" in listed.stdout
    assert "status   pending" in shown.stdout and "reserved until" in shown.stdout
    assert record.status == "pending" and record.expires_at is not None
    assert 590 < (record.expires_at - record.created_at).total_seconds() < 610
