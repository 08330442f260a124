"""Deploy and activate: validated manifests stored by version, one active version per app,
activation announced to the quorum in the same commit."""

from __future__ import annotations

from pathlib import Path

import msgspec
import psycopg
import pytest
import trio

from actors.quorum import QuorumActor
from mesh.manifests import load_manifest
from mesh.model.quorum import Activate, SystemHealth
from mesh.pg import apps
from mesh.runtime.node import Node
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[2]
ORDERS = ROOT / "config" / "orders.yaml"


def test_deploy__is_idempotent_and_versions_never_change(conn: psycopg.Connection) -> None:
    manifest = load_manifest(ORDERS)
    assert apps.deploy(conn, manifest) is True
    assert apps.deploy(conn, manifest) is False
    changed = msgspec.structs.replace(
        manifest, app=msgspec.structs.replace(manifest.app, settings={"x": 1})
    )
    with pytest.raises(apps.VersionConflict, match=r"give this one a new app\.version"):
        apps.deploy(conn, changed)
    (version,) = apps.versions(conn, "orders")
    assert (version.version, version.active, version.activated_at) == ("1", None, None)
    assert apps.active_manifest(conn, "orders") is None, "deployed is not active"


def test_activate__switches_the_active_version(conn: psycopg.Connection) -> None:
    first = load_manifest(ORDERS)
    second = msgspec.structs.replace(first, app=msgspec.structs.replace(first.app, version="2"))
    apps.deploy(conn, first)
    apps.deploy(conn, second)
    apps.activate(conn, "orders", "1")
    assert apps.active_manifest(conn, "orders")[0] == "1"  # type: ignore[index]
    apps.activate(conn, "orders", "2")
    active = apps.active_manifest(conn, "orders")
    assert active is not None and active[0] == "2" and active[1] == second
    assert [(v.version, v.active) for v in apps.versions(conn, "orders")] == [
        ("1", False),
        ("2", True),
    ]
    with pytest.raises(apps.UnknownVersion, match=r"deployed: 1, 2"):
        apps.activate(conn, "orders", "9")
    assert apps.active_manifest(conn, "orders")[0] == "2"  # type: ignore[index]


async def test_activate__is_announced_to_the_quorum(dsn: str, conn: psycopg.Connection) -> None:
    apps.deploy(conn, load_manifest(ORDERS))
    node = Node(dsn, app="orders")
    member = QuorumActor(
        node, roles=["engine"], topics=[], system_health=lambda: SystemHealth(0, 1, 1, 2, 0, 0)
    )
    heard: list[Activate] = []
    member.sub_quorum(
        lambda message: heard.append(message) if isinstance(message, Activate) else None
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: node.run([member], handle_signals=False, task_status=task_status)
        )
        await trio.to_thread.run_sync(apps.activate, conn, "orders", "1")
        await wait_until(lambda: len(heard) == 1, what="the activate message")
        node.request_stop()
    assert heard[0].version == "1"


async def test_activate_with_a_delay__announced_first_then_active(dsn: str) -> None:
    from mesh.api import Mesh
    from mesh.errors import InvalidPayload, UnknownVersion

    heard: list[Activate] = []
    async with Mesh.open(dsn, app="orders", engine=False) as mesh:
        mesh.sub_quorum(lambda m: heard.append(m) if isinstance(m, Activate) else None)
        await mesh.deploy(ORDERS)
        with trio.fail_after(5):  # refused at once, not after the delay
            with pytest.raises(UnknownVersion, match="not deployed"):
                await mesh.activate("9", delay=600)
        with pytest.raises(InvalidPayload, match="not from 0 to 3600"):
            await mesh.activate("1", delay="2 hours")
        started = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: mesh.activate("1", delay="0.5s"))
            await wait_until(lambda: len(heard) == 1, what="the announcement")
            with psycopg.connect(dsn) as conn:
                before = conn.execute(
                    "SELECT active_version FROM mesh.apps WHERE app = 'orders'"
                ).fetchone()
        waited = trio.current_time() - started
        await wait_until(lambda: len(heard) == 2, what="the activation")
    assert before is None or before == (None,)  # announced, not yet active
    assert [(m.version, m.delay) for m in heard] == [("1", 0.5), ("1", 0.0)]
    assert waited >= 0.5
