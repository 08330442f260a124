"""``mesh bench idle``: what a mesh with nothing to do costs Postgres, by node count.

Starts ``nodes`` node processes with ``mesh run`` (each with ``topics`` worker topics and
nothing queued), waits until every one answers a roll call and a settling period has passed,
and the nodes' pools have shrunk to what they use idle, then measures for ``seconds``: the
database's committed and rolled-back transactions per second (``pg_stat_database``), the CPU
the Postgres server and the nodes spent (psutil, when the server runs on this host), and the
connections open to the database (``pg_stat_activity``), in total and per node. Last, it
probes the wake-up latency of the idle mesh (:mod:`benchmarks.probes`).
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.db import query
from benchmarks.probes import probe_latency
from benchmarks.scale import node_processes
from mesh.errors import ConfigError
from mesh.health import parent_pid, postgres_cpu_seconds, processes_cpu_seconds
from mesh.model.ids import new_guid
from mesh.pg.database import Connection, redact, run_once, server_facts
from mesh.pg.migrations import migrate

CONNECTIONS_PER_NODE = 5
"""What a node may open at boot (its pool, its listener, a probe): the room asked for."""

SETTLE_SECONDS = 5.0
"""After the last node is live: boot-time work (first throttle reads, key registration)
is not idle cost."""
IDLE_CONNECTIONS_PER_NODE = 2
PROBES = 20
WARM_UP_PROBES = 30
LOST_PROBES = 3


def bench_idle(
    dsn: str, *, nodes: int, topics: int, seconds: float, settle_within: float = 600.0
) -> dict[str, Any]:
    """``settle_within``: seconds to wait, after settling, for the pools to close what boot
    opened (one connection per ``database.pool_max_idle``, a minute by default)."""
    run_once(dsn, migrate)
    facts = run_once(dsn, server_facts)
    _check_room(dsn, nodes)
    app = f"idle-{new_guid()[:8].lower()}"
    workers = "".join(
        f"  - {{topic: idle.t{n}, function: 'benchmarks.streams:echo'}}\n" for n in range(topics)
    )
    config_text = f"app: {app}\nworkers:\n{workers}log_level: warn\n"
    # Starting a Python process costs about a CPU second: give a large fleet its time.
    with node_processes(
        dsn, config_text, nodes, roles=["worker"], ready_within=60.0 + 2.0 * nodes
    ) as pids:
        time.sleep(SETTLE_SECONDS)
        settled = _wait_for_pools(dsn, nodes, settle_within)
        server = run_once(dsn, _server_pid)
        before = run_once(dsn, _activity)
        node_cpu = processes_cpu_seconds(pids)
        pg_cpu = postgres_cpu_seconds(server)
        started = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - started
        after = run_once(dsn, _activity)
        node_cpu = processes_cpu_seconds(pids) - node_cpu
        pg_cpu = None if pg_cpu is None else (postgres_cpu_seconds(server) or 0.0) - pg_cpu
        latency = _probe(dsn, app) if topics else {}
    transactions = after["transactions"] - before["transactions"]
    connections = after["connections"]
    return {
        "nodes": nodes,
        "topics": topics,
        "seconds": round(elapsed, 1),
        "transactions_per_s": round(transactions / elapsed, 1),
        "transactions_per_node_per_s": round(transactions / elapsed / nodes, 2),
        "connections": connections,
        "connections_per_node": round(connections / nodes, 2),
        "postgres_cpu_percent": None if pg_cpu is None else round(100 * pg_cpu / elapsed, 1),
        "node_cpu_percent": round(100 * node_cpu / elapsed, 1),
        **latency,
        "pools_settled_after_s": settled,
        "settings": {
            "roles": "worker (and the quorum member every node runs)",
            "settle_seconds": SETTLE_SECONDS,
            "pools_settle_within_s": settle_within,
            "cpus": os.cpu_count(),
            "database": redact(dsn),
            **facts,
        },
        "measured": "pg_stat_database commits and rollbacks of this database, "
        "pg_stat_activity connections to it; node processes started with `mesh run`",
    }


def _probe(dsn: str, app: str) -> dict[str, Any]:
    """The wake-up latency of the idle mesh, on its first topic."""
    return probe_latency(
        dsn, app, "idle.t0", probes_sent=PROBES, lost=LOST_PROBES, warm_up=WARM_UP_PROBES
    )


def _check_room(dsn: str, nodes: int) -> None:
    """Refuse, with the fix, a fleet the server has no connections for."""
    allowed, used = run_once(dsn, _connection_room)
    needed = nodes * CONNECTIONS_PER_NODE + 5
    if used + needed > allowed:
        raise ConfigError(
            "<command line>",
            "--nodes",
            f"{nodes} nodes need about {needed} connections and the server allows "
            f"{allowed} ({used} in use)",
            f"raise max_connections (psql: ALTER SYSTEM SET max_connections = "
            f"{max(200, 2 * (used + needed))}; then restart the server: `mesh db stop` for the "
            "embedded one), or start fewer nodes",
        )


def _wait_for_pools(dsn: str, nodes: int, within: float) -> float | None:
    """Seconds until the connections fall to what idle nodes hold (None: they did not within
    ``within`` seconds; the measurement then shows what they still hold)."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if run_once(dsn, _activity)["connections"] <= IDLE_CONNECTIONS_PER_NODE * nodes:
            return round(time.monotonic() - started, 1)
        time.sleep(2.0)
    return None


def _connection_room(conn: Connection) -> tuple[int, int]:
    """The server's max_connections and the connections open now (all databases)."""
    row = conn.execute(query("bench_idle_room")).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _activity(conn: Connection) -> dict[str, int]:
    """This database's transactions so far and connections now (the bench's own excluded)."""
    row = conn.execute(query("bench_idle_activity")).fetchone()  # a new session's counts
    assert row is not None
    return {"transactions": int(row[0]), "connections": int(row[1])}


def _server_pid(conn: Connection) -> int | None:
    """The postmaster's pid: the parent of this session's server process (None when the
    server is on another host)."""
    row = conn.execute(query("backend_pid")).fetchone()
    assert row is not None
    return parent_pid(int(row[0]))
