"""Bad input through the command line, config files, manifests and the API: a clear error,
exit 2, no traceback, no hang, nothing written. Each case was a traceback, a hang or a node
that would not work before."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg
import pytest

from mesh.errors import InvalidIdentifier, InvalidPayload
from mesh.pg.client import MeshClient
from tests.conftest import ROOT
from tests.helpers import MESH, mesh, node_env, write_config

DEEP_JSON = "[" * 1000 + "]" * 1000

CONFIG = """
app: shop
workers:
  - topic: work
    function: tests.activities:echo
"""

BOMB = """
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

DEEP_YAML = "app: " + "{a: " * 10_000 + "1" + "}" * 10_000 + "\n"  # past libyaml's own cap
DEEPISH_YAML = "app: " + "[" * 500 + "]" * 500 + "\n"  # under it: mesh's limit applies


def manifest(activities: str, transitions: str = "") -> str:
    return (
        "app:\n  id: shop\n  version: '1'\n  graphs:\n    - subscribes: s.go\n"
        f"      activities:\n{activities}"
        + (f"      transitions:\n{transitions}" if transitions else "")
    )


CLI_CASES: list[tuple[str, list[Any], str]] = [
    ("pub deep JSON", ["pub", "s.go", DEEP_JSON], "levels deep"),
    ("streams send deep JSON", ["streams", "send", "work", DEEP_JSON], "levels deep"),
    ("broadcast deep JSON", ["broadcast", "promo", DEEP_JSON], "levels deep"),
    ("pub non-UTF-8 argument", ["pub", "s.go", b'{"a": "\xff"}'], "surrogate"),
    ("pub negative timeout", ["pub", "--wait", "--timeout", "-1", "s.go", "{}"], "--timeout"),
    ("pub nan timeout", ["pub", "--wait", "--timeout", "nan", "s.go", "{}"], "--timeout"),
    ("broadcast bad topic", ["broadcast", "bad topic!", "{}"], "topic"),
    ("broadcast empty topic", ["broadcast", "", "{}"], "topic"),
    ("jobs bad app", ["jobs", "--app", "bad app!"], "--app"),
    ("job bad app", ["job", "x", "--app", ""], "--app"),
    ("jobs limit", ["jobs", "--limit", "0"], "--limit"),
    ("streams send nan delay", ["streams", "send", "work", "{}", "--delay", "nan"], "--delay"),
    ("streams requeue empty topic", ["streams", "requeue", "--topic", ""], "topic"),
    ("demo orders", ["demo", "--orders", "0"], "--orders"),
    ("run drain", ["run", "--drain-timeout", "nan"], "--drain-timeout"),
]

CONFIG_CASES: list[tuple[str, str | bytes, str]] = [
    ("billion laughs", BOMB, "aliases expand"),
    ("nested 10,000 deep", DEEP_YAML, "nesting depth"),
    ("nested 500 deep", DEEPISH_YAML, "levels deep"),
    ("not UTF-8", b"app: shop\nworkers: []\n# caf\xe9\n", "UTF-8"),
    ("6 MB", "app: shop\n" + "# padding\n" * 600_000, "larger than"),
    ("lease nan", "streams: {lease: .nan}", "streams.lease"),
    ("lease 0", "streams: {lease: 0}", "streams.lease"),
    ("lease inf", "streams: {lease: .inf}", "streams.lease"),
    ("reap busy loop", "streams: {reap_interval: 0}", "streams.reap_interval"),
    ("refresh busy loop", "quorum: {refresh_interval: 0}", "quorum.refresh_interval"),
    ("no statement timeout", "database: {statement_timeout: 0}", "database.statement_timeout"),
    ("port out of range", "metrics: {port: 99999}", "metrics.port"),
    ("duplicate key", "app: shop\napp: other\n", "appears twice"),
    ("attempts out of range", "retry: {maximum_attempts: 100000000000}", "retry"),
    (
        "module with a syntax error",
        "workers: [{topic: work, function: 'broken_syntax:run'}]",
        "syntax error",
    ),
    (
        "module that raises at import",
        "workers: [{topic: work, function: 'raises_at_import:run'}]",
        "raised RuntimeError",
    ),
]

MANIFEST_CASES: list[tuple[str, str | bytes, str]] = [
    (
        "integer activity id",
        manifest("        1: {type: trigger}\n"),
        "activity ids are names",
    ),
    (
        "type as a list",
        manifest(
            "        t: {type: trigger}\n        w: {type: [worker], topic: x}\n",
            "        t: [{to: w}]\n",
        ),
        "unknown activity type",
    ),
    (
        "to as a list",
        manifest(
            "        t: {type: trigger}\n        w: {type: worker, topic: x}\n",
            "        t: [{to: [w]}]\n",
        ),
        ".to: the id of one activity",
    ),
    (
        "activities as a list",
        "app:\n  id: shop\n  version: '1'\n  graphs:\n    - subscribes: s.go\n      activities: [{type: trigger}]\n",
        "activities: required",
    ),
    ("billion laughs", BOMB, "aliases expand"),
    ("nested 10,000 deep", DEEP_YAML, "nesting depth"),
    ("nested 500 deep", DEEPISH_YAML, "levels deep"),
    ("not UTF-8", b"app:\n  id: caf\xe9\n", "UTF-8"),
    (
        "$ref bomb",
        "app:\n  id: shop\n  version: '1'\n  settings:\n"
        + "    l0: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
        + "".join(
            f"    l{n}: [" + ", ".join([f"{{$ref: '#/app/settings/l{n - 1}'}}"] * 10) + "]\n"
            for n in range(1, 8)
        )
        + "  graphs: []\n",
        "grows past",
    ),
    (
        "activity retry",
        manifest(
            "        t: {type: trigger}\n        w: {type: worker, topic: x, retry: {'500': [3]}}\n",
            "        t: [{to: w}]\n",
        ),
        "retry: unknown key",
    ),
]


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    write_config(tmp_path / "mesh.yaml", CONFIG)
    (tmp_path / "broken_syntax.py").write_text("def run(data):\n    return {\n")
    (tmp_path / "raises_at_import.py").write_text("raise RuntimeError('no database here')\n")
    return tmp_path


def run_mesh(dsn: str, workdir: Path, *args: Any) -> subprocess.CompletedProcess[str]:
    env = node_env(dsn, PYTHONPATH=f"{workdir}{os.pathsep}{ROOT}")
    result = subprocess.run(
        [MESH, *args], env=env, cwd=workdir, capture_output=True, timeout=60, check=False
    )
    return subprocess.CompletedProcess(
        result.args,
        result.returncode,
        result.stdout.decode(errors="replace"),
        result.stderr.decode(errors="replace"),
    )


def assert_refused(result: subprocess.CompletedProcess[str], expected: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert expected in result.stderr, result.stderr[-2000:]


def nothing_written(conn: psycopg.Connection) -> dict[str, int]:
    tables = ("jobs", "stream_messages", "dead_letters", "app_versions", "throttles")
    counts = {}
    for table in tables:
        row = conn.execute(f"SELECT count(*) FROM mesh.{table}").fetchone()
        assert row is not None
        counts[table] = row[0]
    return {table: n for table, n in counts.items() if n}


@pytest.mark.parametrize(("case", "args", "expected"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_command_line__refuses_with_a_clear_error(
    case: str, args: list[Any], expected: str, workdir: Path, dsn: str, conn: psycopg.Connection
) -> None:
    assert_refused(run_mesh(dsn, workdir, "--config", "mesh.yaml", *args), expected)
    assert nothing_written(conn) == {}


@pytest.mark.parametrize(
    ("case", "text", "expected"), CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES]
)
def test_config__refused_before_a_node_starts(
    case: str, text: str | bytes, expected: str, workdir: Path, dsn: str
) -> None:
    path = workdir / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    result = run_mesh(dsn, workdir, "--config", "bad.yaml", "run")
    assert_refused(result, expected)
    assert "bad.yaml" in result.stderr


@pytest.mark.parametrize(
    ("case", "text", "expected"), MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES]
)
def test_manifest__refused_and_nothing_deployed(
    case: str,
    text: str | bytes,
    expected: str,
    workdir: Path,
    dsn: str,
    conn: psycopg.Connection,
) -> None:
    path = workdir / "bad-manifest.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    assert_refused(run_mesh(dsn, workdir, "--config", "mesh.yaml", "deploy", path.name), expected)
    assert nothing_written(conn) == {}


def test_manifest__a_chain_of_10000_activities_deploys(
    workdir: Path, dsn: str, conn: psycopg.Connection
) -> None:
    count = 10_000
    activities = "        a0: {type: trigger}\n" + "".join(
        f"        a{n}: {{type: hook}}\n" for n in range(1, count)
    )
    transitions = "".join(f"        a{n}: [{{to: a{n + 1}}}]\n" for n in range(count - 1))
    (workdir / "chain.yaml").write_text(manifest(activities, transitions))
    result = run_mesh(dsn, workdir, "--config", "mesh.yaml", "deploy", "chain.yaml")
    assert result.returncode == 0, result.stderr[-2000:]
    assert nothing_written(conn) == {"app_versions": 1}


def test_api__bad_data_is_refused_before_anything_is_written(
    dsn: str, conn: psycopg.Connection, tmp_path: Path
) -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with MeshClient(dsn, app="shop") as client:
        for data, expected in (
            ({"note": "lone \ud800 surrogate"}, "surrogate"),
            ({"note": "nul \x00 char"}, "NUL"),
            ({"n\x00": 1}, "NUL"),
            (deep, "levels deep"),
        ):
            with pytest.raises(InvalidPayload, match=expected):
                client.pub("s.go", data)
        with pytest.raises(InvalidIdentifier):
            client.pub("s.go", {}, job_id="bad \ud800 id")
        with pytest.raises(InvalidIdentifier):
            client.get_job("nul\x00id")
        with pytest.raises(InvalidPayload):
            client.signal("s.hook", {"x": "\x00"})
    assert nothing_written(conn) == {}


def test_demo__into_a_closed_pipe_ends_quietly(tmp_path: Path, dsn: str) -> None:
    env = node_env(dsn)
    result = subprocess.run(
        f"{MESH} demo --orders 3 | head -1",
        shell=True,
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.stdout.startswith("mesh demo:"), result.stdout
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr
    assert mesh("--version", dsn=dsn, cwd=tmp_path).returncode == 0


def test_manifest__a_ref_to_a_file_that_is_not_utf8_is_refused(
    workdir: Path, dsn: str, conn: psycopg.Connection
) -> None:
    (workdir / "schemas.yaml").write_bytes(b"input:\n  type: object\n  title: caf\xe9\n")
    text = manifest("        t: {type: trigger}\n").replace(
        "    - subscribes: s.go\n",
        "    - subscribes: s.go\n      input: {$ref: 'schemas.yaml#/input'}\n",
    )
    (workdir / "with-ref.yaml").write_text(text)
    result = run_mesh(dsn, workdir, "--config", "mesh.yaml", "deploy", "with-ref.yaml")
    assert_refused(result, "schemas.yaml")
    assert "UTF-8" in result.stderr
    assert nothing_written(conn) == {}
