"""``mesh bench idle``: an idle mesh's cost to Postgres, measured with real node processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import mesh


def test_bench_idle__measures_transactions_cpu_and_connections(tmp_path: Path, dsn: str) -> None:
    result = mesh(
        "bench",
        "idle",
        "--nodes",
        "2",
        "--topics",
        "1",
        "--seconds",
        "2",
        "--settle",
        "0",  # the pools' shrinking is tests/test_idle.py's
        "--json",
        dsn=dsn,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["nodes"], report["topics"]) == (2, 1)
    assert report["transactions_per_s"] > 0  # the leader still polls and reaps
    assert report["connections"] >= 2  # each node: its listener, and what its pool holds
    assert report["connections_per_node"] == report["connections"] / 2
    assert report["node_cpu_percent"] >= 0
    assert report["probes"]["notified"] == 20 and report["notify_latency_ms"]["p50"] > 0
    lost = report["lost_notify_latency_s"]  # the elected poller finds it: 2 s stale, then 1 s
    assert lost is None or lost["max"] < 10.0, lost


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--nodes", "0"], "nodes from 1 to 2000"),
        (["--topics", "-1"], "topics from 0 to 100"),
        (["--seconds", "nan"], "is not from 1 to 3600"),
        (["--settle", "-1"], "--settle: -1.0 is not from 0 to 3600"),
        (["--nodes", "2000"], "raise max_connections"),
    ],
)
def test_bench_idle__refuses_what_it_cannot_run(
    tmp_path: Path, dsn: str, args: list[str], expected: str
) -> None:
    result = mesh("bench", "idle", *args, "--json", dsn=dsn, cwd=tmp_path)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
