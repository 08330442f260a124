"""``mesh schedule`` through the real command line: create, list, describe, pause, resume,
trigger, delete, and refused input with what to do."""

from __future__ import annotations

import json
from pathlib import Path

from mesh.pg.client import MeshClient
from tests.helpers import NodeProcess, mesh, wait_until_sync, write_config


def test_schedule_commands(tmp_path: Path, dsn: str) -> None:
    config = write_config(tmp_path / "mesh.yaml", "app: sched-cli\n")

    def run(*args: str) -> tuple[int, str, str]:
        done = mesh("--config", str(config), "schedule", *args, dsn=dsn, cwd=tmp_path)
        return done.returncode, done.stdout.strip(), done.stderr.strip()

    code, out, err = run(
        "create", "nightly", "report", '["eu"]', "--cron", "0 3 * * *", "--time-zone",
        "Europe/Berlin",
    )  # fmt: skip
    assert code == 0 and "created" in out and "first run at" in out, err
    code, out, err = run(
        "create", "beat", "ping", "--every", "30 seconds", "--overlap", "allow_all"
    )
    assert code == 0, err
    code, out, err = run("list")
    assert code == 0 and out.splitlines()[0].startswith("beat  ping  every 30s"), out
    code, out, err = run("list", "--json")
    assert [s["spec"]["id"] for s in json.loads(out)] == ["beat", "nightly"], out
    code, out, err = run("describe", "nightly")
    described = json.loads(out)
    assert code == 0 and described["spec"]["args"] == ["eu"], err
    assert len(described["next_fire_times"]) == 5 and described["paused"] is False
    assert run("pause", "nightly")[:2] == (0, "schedule 'nightly' paused")
    assert json.loads(run("describe", "nightly")[1])["paused"] is True
    assert run("resume", "nightly")[:2] == (0, "schedule 'nightly' resumed")
    code, out, err = run(
        "backfill", "nightly", "--start", "2026-11-01T00:00:00Z", "--end", "2026-11-03T23:00Z"
    )
    assert code == 0 and out.splitlines() == [
        "nightly@20261101T020000Z",  # 03:00 in Berlin (CET) is 02:00 UTC
        "nightly@20261102T020000Z",
        "nightly@20261103T020000Z",
    ], err
    code, _, err = run("backfill", "nightly", "--start", "yesterday", "--end", "today")
    assert code != 0 and "--start" in err and "ISO 8601" in err, err
    code, out, err = run("trigger", "nightly")
    assert code == 0 and out.startswith("nightly@"), err
    assert run("delete", "beat")[:2] == (0, "schedule 'beat' deleted")
    # Refused, saying what to do; nothing written.
    code, _, err = run("create", "x", "report", "--cron", "every day")
    assert code != 0 and "not a cron expression" in err, err
    code, _, err = run("create", "nightly", "report", "--every", "1 hour")
    assert code != 0 and "exists" in err and "replace" in err, err
    code, _, err = run("create", "y", "report", '{"not": "a list"}', "--every", "5")
    assert code != 0 and "JSON list" in err, err
    code, _, err = run("describe", "beat")
    assert code != 0 and "no schedule 'beat'" in err, err
    code, _, err = run("create", "z", "report", "--every", "5", "--time-zone", "Mars/Base")
    assert code != 0 and "Mars/Base" in err, err
    code, _, err = run("create", "g", "order.tick", "[1]", "--graph", "--every", "5")
    assert code != 0 and "JSON object" in err, err
    code, out, err = run("create", "g", "order.tick", '{"n": 1}', "--graph", "--every", "5")
    assert code == 0, err
    assert json.loads(run("describe", "g")[1])["spec"]["kind"] == "graph"
    assert run("delete", "g")[0] == 0
    assert [s["spec"]["id"] for s in json.loads(run("list", "--json")[1])] == ["nightly"]


def test_mesh_run_creates_the_configs_schedules_and_fires_them(tmp_path: Path, dsn: str) -> None:
    config = write_config(
        tmp_path / "mesh.yaml",
        """
app: sched-config
task_queues:
  - name: q
    workflows: [tests.code_workflows:ticked]
schedules:
  - {id: beat, workflow: ticked, args: [7], every: 1 second, task_queue: q}
""",
    )
    node = NodeProcess(config, dsn, log=tmp_path / "node.log")
    try:
        node.wait_for_log("event=node_ready")
        with MeshClient(dsn, app="sched-config") as client:

            def ran() -> bool:
                recent = client.describe_schedule("beat").recent
                return any(r.status == "done" for r in recent)

            wait_until_sync(ran, timeout=30, what="a run of the config's schedule")
            done = next(r for r in client.describe_schedule("beat").recent if r.status == "done")
            assert client.get_handle(done.workflow_id).result(timeout=10) == 7
        assert node.terminate() == 0
    finally:
        node.ensure_stopped()
    assert "event=schedule_created id=beat (from the config)" in node.log()
