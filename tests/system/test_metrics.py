"""Each node's Prometheus endpoint: the documented metrics, with values that move with work."""

from __future__ import annotations

import re
import socket
import urllib.request
from pathlib import Path

import psycopg

from mesh.model.ids import quorum_channel
from tests.helpers import NodeProcess, wait_until_sync, write_config
from tests.nodes import APP, REPLIES, TOPIC, send

README = Path(__file__).resolve().parents[2] / "README.md"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def sample(samples: dict[str, float], name: str, **labels: str) -> float:
    for key, value in samples.items():
        if key.split("{")[0] == name and all(f'{k}="{v}"' in key for k, v in labels.items()):
            return value
    raise AssertionError(f"no sample {name} {labels}")


def documented_metrics() -> set[str]:
    return set(re.findall(r"^\| `(mesh_[a-z_]+)`", README.read_text(), re.MULTILINE))


def test_metrics__documented_and_moving_with_work(
    tmp_path: Path, dsn: str, conn: psycopg.Connection
) -> None:
    port = free_port()
    path = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
node:
  roles: [quorum, worker]  # the test reads the responses off their stream itself
metrics:
  port: {port}
workers:
  - topic: {TOPIC}
    function: tests.activities:echo
""",
    )
    node = NodeProcess(path, dsn, log=tmp_path / "node.log")
    try:
        node.wait_for_log("event=node_ready")
        before = scrape(port)
        assert sample(before, "mesh_messages_acked_total", stream=TOPIC) == 0
        # Nothing queued and nothing rejected yet: samples of 0, not gaps.
        for gauge in ("mesh_stream_depth", "mesh_stream_ready", "mesh_stream_leased"):
            assert sample(before, gauge, app=APP, stream=TOPIC, role="worker") == 0
        assert sample(before, "mesh_quorum_rejected_total", app=APP, reason="malformed") == 0
        assert sample(before, "mesh_quorum_messages_total", app=APP, type="ping") == 0
        send(conn, *({"n": n} for n in range(25)))
        channel = quorum_channel(APP)
        conn.execute(
            "SELECT pg_notify(%s, %s)", (channel, '{"type": "ping", "originator": "test"}')
        )
        conn.execute("SELECT pg_notify(%s, %s)", (channel, "{not json"))
        wait_until_sync(
            lambda: (
                sample(scrape(port), "mesh_messages_acked_total", stream=TOPIC) == 25
                and "event=quorum_rejected" in node.log()
            ),
            what="25 acks and the quorum traffic in the metrics",
        )
        after = scrape(port)
    finally:
        node.ensure_stopped()
    labels = {"app": APP, "stream": TOPIC, "role": "worker"}
    assert sample(after, "mesh_messages_claimed_total", **labels) == 25
    assert sample(after, "mesh_handler_duration_seconds_count", **labels) == 25
    assert sample(after, "mesh_messages_in_flight", **labels) == 0
    assert (
        sample(after, "mesh_stream_depth", app=APP, stream=REPLIES, role="worker") == 25
    )  # the responses
    assert sample(after, "mesh_stream_depth", **labels) == 0  # emptied again: 0, not a gap
    assert sample(after, "mesh_throttle_milliseconds", **labels) == 0
    assert sample(after, "mesh_listener_healthy", app=APP) == 1
    assert sample(after, "mesh_quorum_messages_total", app=APP, type="ping") == 1
    assert sample(after, "mesh_quorum_rejected_total", app=APP, reason="malformed") == 1
    exported = {key.split("{")[0] for key in after}
    exported |= {name.removesuffix("_total") for name in exported}
    exported |= {re.sub(r"_(bucket|count|sum)$", "", name) for name in exported}
    documented = documented_metrics()
    assert len(documented) >= 15, "the README documents the metrics in a table"
    assert documented <= exported, f"documented but not exported: {documented - exported}"
    families = {
        re.sub(r"(_total|_bucket|_count|_sum|_created)$", "", key.split("{")[0]) for key in after
    }
    named = {name.removesuffix("_total") for name in documented}
    undocumented = {name for name in families if name.startswith("mesh_")} - named
    assert undocumented == set(), "add these to the README's metrics table"


PARENTS = """
app:
  id: shop
  version: '1'
  graphs:
    - subscribes: parent
      activities:
        p: {type: trigger}
        child: {type: await, topic: child, input: {maps: {n: '{p.output.data.n}'}}}
      transitions:
        p: [{to: child}]
    - subscribes: child
      activities:
        c: {type: trigger}
        echo: {type: worker, topic: work, input: {maps: {n: '{c.output.data.n}'}}}
      transitions:
        c: [{to: echo}]
"""


def test_metrics__the_engine_stream_counts_as_role_engine(tmp_path: Path, dsn: str) -> None:
    """Child starts and their answers travel on the engine stream: its consumer's counters
    are on /metrics like a worker's."""
    from mesh import MeshClient

    port = free_port()
    path = write_config(
        tmp_path / "mesh.yaml",
        f"""
app: {APP}
metrics:
  port: {port}
workers:
  - topic: {TOPIC}
    function: tests.activities:echo
""",
    )
    node = NodeProcess(path, dsn, log=tmp_path / "node.log")
    labels = {"app": APP, "stream": "engine", "role": "engine"}
    try:
        node.wait_for_log("event=node_ready")
        before = scrape(port)
        with MeshClient(dsn, app=APP) as client:
            client.deploy(PARENTS)
            client.activate("1")
            keys = [client.pub("parent", {"n": n}) for n in range(20)]
            assert [client.wait(key, timeout=30).status for key in keys] == ["done"] * 20
        wait_until_sync(
            lambda: sample(scrape(port), "mesh_messages_acked_total", **labels) >= 40,
            what="the engine's acks of 20 child starts and 20 answers",
        )
        after = scrape(port)
    finally:
        node.ensure_stopped()
    assert sample(before, "mesh_messages_claimed_total", **labels) == 0
    assert sample(after, "mesh_messages_claimed_total", **labels) >= 40
    assert sample(after, "mesh_messages_in_flight", **labels) == 0
    assert sample(after, "mesh_leases_lost_total", **labels) == 0
