"""One-shot control-plane sessions for the CLI: a small pool, a listener and a quorum client,
for as long as a command needs them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import trio

from mesh.config import Config
from mesh.model.ids import new_guid, observer_channel, quorum_channel
from mesh.pg.database import Database, run_once
from mesh.pg.listener import Listener
from mesh.pg.migrations import check_schema
from mesh.runtime.quorum_client import QuorumClient


@asynccontextmanager
async def control_session(
    config: Config, dsn: str, *, on_general: Callable[[str], None] | None = None
) -> AsyncIterator[QuorumClient]:
    """A quorum client that is not a member: it can publish, run roll calls and, with
    ``on_general``, watch the app's quorum traffic (the general channel, and the observer
    channel's copies of messages addressed to one member or topic). Fails fast if the
    database is down."""
    guid = f"cli-{new_guid()}"
    await trio.to_thread.run_sync(run_once, dsn, check_schema)  # fail fast if it is down
    db = Database(dsn, pool_size=2, application_name=f"mesh-cli:{config.app}")
    await db.open()
    try:
        listener = Listener(dsn, name=guid, check_interval=5.0)
        client = QuorumClient(
            db, listener, app=config.app, guid=guid, secret=config.quorum.secret.encode() or None
        )
        client.listen_for_pongs()
        watched = [quorum_channel(config.app), observer_channel(config.app)]
        if on_general is not None:
            for channel in watched:
                listener.subscribe(channel, on_general)
        async with trio.open_nursery() as nursery:
            await nursery.start(listener.run)
            with trio.move_on_after(10):
                await listener.wait_listening(
                    client.channels()[1:] if on_general is None else client.channels() + watched
                )
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    finally:
        await db.close()
