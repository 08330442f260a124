"""The control plane under attack: raw NOTIFYs from any database login (deep, huge, malformed,
unsigned), a restarted member, unsigned control state, and targets that would widen a scope.
Real nodes through ``mesh run``, real NOTIFYs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import trio

from actors.quorum import QuorumActor
from mesh.model.ids import new_guid, quorum_channel
from mesh.model.quorum import QuorumMessage, User
from mesh.runtime.node import Node
from tests.helpers import wait_until, wait_until_sync
from tests.nodes import APP, TOPIC
from tests.pg.test_quorum_api import health
from tests.system.test_quorum import mesh_factory, mesh_listen, notify_raw, quorum_config

__all__ = ["mesh_factory"]  # the fixture, shared with test_quorum


DEEP = '{"type":"user","topic":"x","message":' + "[" * 3900 + "]" * 3900 + "}"


def throttle_rows(dsn: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT topic, guid, throttle_ms FROM mesh.throttles").fetchall()


def test_deep_notify__rejected_as_malformed_and_the_node_lives(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    assert len(DEEP.encode()) < 8000
    mesh = mesh_factory(quorum_config(tmp_path))
    node = mesh.start("--role", "worker")
    listen_log = tmp_path / "listen.log"
    with mesh_listen(mesh, listen_log):
        # More than the restart intensity (5 in 60 s): each used to crash the quorum actor.
        for _ in range(8):
            notify_raw(dsn, DEEP)
        notify_raw(dsn, '{"type":"user","topic":"' + "x" * 7900 + '"}')  # huge, but valid
        mesh.cli("broadcast", "after", '{"ok": true}')
        wait_until_sync(lambda: '"after"' in listen_log.read_text(), what="mesh listen to go on")
    listened = listen_log.read_text().splitlines()
    assert sum("levels deep" in line for line in listened) == 8, listened[:3]

    def quorum() -> dict[str, int]:
        (profile,) = mesh.rollcall()
        return dict(profile["quorum"])

    wait_until_sync(lambda: quorum().get("received.user") == 2, what="the valid messages")
    assert quorum()["rejected.malformed"] == 8
    assert node.process.poll() is None, node.log()
    log = node.log()
    assert "actor_restart" not in log and "Traceback" not in log
    assert log.count("reason=malformed") == 1, "logged once, not once per message"


def test_deep_notify__with_a_secret_is_refused_before_it_is_decoded(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    mesh = mesh_factory(quorum_config(tmp_path), MESH_QUORUM_SECRET="s3cret")
    node = mesh.start("--role", "worker")
    for _ in range(8):
        notify_raw(dsn, DEEP)
    notify_raw(dsn, "sig1:" + "0" * 64 + ":" + DEEP[:7000])  # a forged seal
    notify_raw(dsn, json.dumps({"type": "throttle", "throttle": -1}))  # unsigned
    wait_until_sync(
        lambda: mesh.rollcall()[0]["quorum"].get("rejected.bad_signature") == 10,
        what="ten rejections",
    )
    (profile,) = mesh.rollcall()
    assert profile["quorum"]["rejected.malformed"] == 0, "unsigned input must not be decoded"
    assert profile["throttles"] == {TOPIC: 0}
    assert node.process.poll() is None and "actor_restart" not in node.log()


class CrashesOnce(QuorumActor):
    """A member whose handling fails once (a bug), so the supervisor restarts it."""

    crashed = False

    async def _dispatch(self, message: QuorumMessage) -> None:
        if isinstance(message, User) and message.topic == "crash" and not self.crashed:
            self.crashed = True
            raise RuntimeError("a bug in handling")
        await super()._dispatch(message)


async def test_quorum_member__restarted_it_hears_each_message_once(dsn: str) -> None:
    node = Node(dsn, app=APP)
    member = CrashesOnce(node, roles=["worker"], topics=[], system_health=health)
    seen: list[str] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: node.run([member], handle_signals=False, task_status=task_status)
        )
        await node.quorum.pub_quorum("crash", None)
        await wait_until(lambda: member.restarts == 1, what="the restart")
        member.sub_quorum(lambda m: seen.append(m.topic) if isinstance(m, User) else None)

        # Probe until the restarted run listens, then send once and a closing marker: a
        # leaked subscription would hand each notification over twice.
        async def heard_a_probe() -> bool:
            await node.quorum.pub_quorum("probe", None)
            with trio.move_on_after(0.5):
                await wait_until(lambda: "probe" in seen, timeout=0.5, what="a probe")
            return "probe" in seen

        await wait_until(heard_a_probe, what="the restarted member to hear a probe")
        await node.quorum.pub_quorum("once", None)
        await node.quorum.pub_quorum("end", None)
        await wait_until(lambda: "end" in seen, what="the closing marker")
        node.request_stop()
    assert seen.count("once") == 1, seen
    assert seen.count("end") == 1, seen


def test_signing__throttle_state_must_carry_the_secrets_signature(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    mesh = mesh_factory(quorum_config(tmp_path), MESH_QUORUM_SECRET="s3cret")
    node = mesh.start("--role", "worker")

    # Without the secret, or with another one: refused, nothing written.
    unsigned = mesh.cli("throttle", "-1", check=False, MESH_QUORUM_SECRET="")
    assert unsigned.returncode == 2, unsigned.stderr
    assert "checks signatures" in unsigned.stderr and "MESH_QUORUM_SECRET" in unsigned.stderr
    wrong = mesh.cli("throttle", "-1", check=False, MESH_QUORUM_SECRET="guess")
    assert wrong.returncode == 2 and "not the one" in wrong.stderr, wrong.stderr
    assert throttle_rows(dsn) == []
    activate = mesh.cli("activate", "1", check=False, MESH_QUORUM_SECRET="")
    assert activate.returncode == 2 and "checks signatures" in activate.stderr
    rollcall = mesh.cli("rollcall", MESH_QUORUM_SECRET="")  # its ping is ignored: say why
    assert "no member" in rollcall.stdout and "ignore unsigned pings" in rollcall.stderr

    # Written behind the CLI's back: the row and its notice are ignored, counted once.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO mesh.throttles (app, topic, guid, throttle_ms) VALUES (%s, '', '', -1)",
            (APP,),
        )
    notify_raw(dsn, json.dumps({"type": "throttle", "throttle": -1}))
    wait_until_sync(
        lambda: mesh.rollcall()[0]["quorum"].get("rejected.bad_throttle_signature") == 1,
        what="the unsigned row to be noticed",
    )
    (profile,) = mesh.rollcall()
    assert profile["throttles"] == {TOPIC: 0}, "an unsigned row must not pause the node"
    assert profile["quorum"]["received.throttle"] == 0, "a refused throttle is not received"

    mesh.cli("throttle", "-1")  # the CLI has the secret: signed, applied
    wait_until_sync(
        lambda: mesh.rollcall()[0]["throttles"] == {TOPIC: -1}, what="the signed throttle"
    )
    assert node.process.poll() is None


def test_throttle__empty_targets_are_refused_not_widened(
    tmp_path: Path, dsn: str, mesh_factory: Any
) -> None:
    mesh = mesh_factory(quorum_config(tmp_path))
    mesh.start("--role", "worker")
    for option in ("--topic", "--guid"):
        result = mesh.cli("throttle", "-1", option, "", check=False)
        assert result.returncode == 2, result.stderr
        assert "whole mesh" in result.stderr and "Traceback" not in result.stderr
        result = mesh.cli("throttle", "-1", f"{option}=", check=False)
        assert result.returncode == 2, result.stderr
    assert throttle_rows(dsn) == []
    (profile,) = mesh.rollcall()
    member = mesh.cli("throttle", "50", "--guid", profile["guid"])
    assert "member" in member.stdout
    assert throttle_rows(dsn) == [("", profile["guid"], 50)]


def test_guids__never_look_like_command_line_options() -> None:
    guids = [new_guid() for _ in range(20_000)]
    assert not [g for g in guids if not g[0].isalnum()]
    assert len(set(guids)) == len(guids)
    assert all(quorum_channel(APP, guid=g).isidentifier() for g in guids[:10])
