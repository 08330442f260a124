"""A settle that committed while its reply was lost (as when Postgres restarts, or the network
fails, between the COMMIT and its answer) is counted as settled, not as a lost lease, and
its work is not done twice. A proxy between the node and Postgres loses exactly that reply."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests import activities
from tests.helpers import wait_until
from tests.nodes import responses, running_node, send
from tests.proxy import Proxy


@pytest.fixture
def proxy(dsn: str) -> Iterator[Proxy]:
    running = Proxy(dsn).start()
    try:
        yield running
    finally:
        running.close()


async def test_settle__committed_with_its_reply_lost_counts_as_settled(
    proxy: Proxy, conn: psycopg.Connection
) -> None:
    marker = f"lose-the-reply-{uuid.uuid4().hex}"
    async with running_node(proxy.dsn, activities.echo) as (_node, worker):
        proxy.lose_reply_to(marker.encode())  # in the ack's follow-up: the echoed data
        send(conn, {"marker": marker})
        consumer = worker.consumer
        await wait_until(
            lambda: consumer.counters.acked + consumer.counters.lost >= 1,
            what="the settle to be counted",
        )
        counters = consumer.counters
        assert proxy.replies_lost == 1, "the fault was not injected"
        assert (counters.acked, counters.lost) == (1, 0), (counters.acked, counters.lost)
    (response,) = responses(conn)  # done once: the retry found it settled, changed nothing
    assert response.data == {"echo": {"marker": marker}}
