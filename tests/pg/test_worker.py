"""Worker actors in a real node on real Postgres: responses, retries, pending, heartbeats."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import trio

from actors.worker import WorkerStatistics
from mesh import Mesh
from mesh.model.retry import RetryPolicy
from mesh.runtime.consumer import ConsumerSettings
from tests import activities
from tests.helpers import wait_until
from tests.nodes import APP, TOPIC, responses, running_node, send


async def test_success__one_response_in_the_engine_stream(
    dsn: str, conn: psycopg.Connection
) -> None:
    (request_id,) = send(conn, {"qty": 2})
    async with running_node(dsn, activities.echo) as (_, worker):
        await wait_until(lambda: len(responses(conn)) == 1, what="the response")
        await wait_until(lambda: worker.statistics().consumer.acked == 1, what="the ack")
    (response,) = responses(conn)
    assert (response.request_id, response.status, response.code, response.data) == (
        request_id,
        "success",
        200,
        {"echo": {"qty": 2}},
    )
    assert conn.execute(
        "SELECT count(*) FROM mesh.stream_messages WHERE stream = %s", (TOPIC,)
    ).fetchone() == (0,)


async def test_plain_functions__run_in_worker_threads(dsn: str, conn: psycopg.Connection) -> None:
    activities.threads.clear()
    send(conn, 1, 2, 3)
    async with running_node(dsn, activities.sync_echo):
        await wait_until(lambda: len(responses(conn)) == 3, what="three responses")
    assert len(activities.threads) == 3
    assert all(name != "MainThread" for name in activities.threads)


async def test_failures__retry_on_the_policys_delays_then_dead_letter(
    dsn: str, conn: psycopg.Connection
) -> None:
    policy = RetryPolicy(maximum_attempts=3, backoff_coefficient=2, maximum_interval=60)
    send(conn, {"sku": "x"}, retry=policy)

    def pending_failure(attempts: int) -> bool:
        row = conn.execute(
            "SELECT attempts, lease_owner FROM mesh.stream_messages WHERE stream = %s", (TOPIC,)
        ).fetchone()
        return row == (attempts, None)

    def seconds_until_visible() -> float:
        row = conn.execute(
            "SELECT extract(epoch FROM visible_at - now()), last_error FROM mesh.stream_messages WHERE stream = %s",
            (TOPIC,),
        ).fetchone()
        assert row is not None and row[1].startswith("ValueError: cannot handle {'sku': 'x'}")
        return float(row[0])

    async with running_node(
        dsn, activities.always_fails, settings=ConsumerSettings(poll_interval=0.2)
    ):
        for attempt, delay in ((1, 2.0), (2, 4.0)):  # min(2 ** attempt, 60) seconds
            await wait_until(
                lambda attempt=attempt: pending_failure(attempt), what=f"failed attempt {attempt}"
            )
            remaining = seconds_until_visible()
            assert delay - 1.0 < remaining <= delay, (
                f"attempt {attempt}: visible again in {remaining:.2f}s, policy says {delay}s"
            )
            # Fast-forward the database clock's view instead of sleeping through the backoff.
            conn.execute(
                "UPDATE mesh.stream_messages SET visible_at = now() WHERE stream = %s", (TOPIC,)
            )
        await wait_until(lambda: len(responses(conn)) == 1, what="the error response")
    dead = conn.execute("SELECT attempts, last_error FROM mesh.dead_letters").fetchall()
    assert len(dead) == 1 and dead[0][0] == 3 and dead[0][1].startswith("ValueError: cannot handle")
    (response,) = responses(conn)
    assert response.status == "error" and response.attempts == 3
    assert response.error is not None and response.error.type == "ValueError"


async def test_non_retryable_error__fails_at_once_with_its_code(
    dsn: str, conn: psycopg.Connection
) -> None:
    send(conn, {"n": 1})
    async with running_node(dsn, activities.refuses):
        await wait_until(lambda: len(responses(conn)) == 1, what="the error response")
    (response,) = responses(conn)
    assert (response.status, response.code, response.attempts) == ("error", 422, 1)
    assert conn.execute("SELECT attempts FROM mesh.dead_letters").fetchall() == [(1,)]


async def test_unserialisable_return__is_a_clear_error_not_a_crash(
    dsn: str, conn: psycopg.Connection
) -> None:
    send(conn, {"n": 1})
    async with running_node(dsn, activities.returns_unserialisable) as (_, worker):
        await wait_until(lambda: len(responses(conn)) == 1, what="the error response")
        assert worker.restarts == 0
    (response,) = responses(conn)
    assert response.status == "error" and response.error is not None
    assert "cannot be sent" in response.error.message and not response.error.retryable


async def test_pending__sends_202_and_keeps_nothing_leased(
    dsn: str, conn: psycopg.Connection
) -> None:
    send(conn, {"n": 1})
    async with running_node(dsn, activities.stays_open):
        await wait_until(lambda: len(responses(conn)) == 1, what="the pending response")
    (response,) = responses(conn)
    assert (response.status, response.code, response.data) == ("pending", 202, {"progress": 50})


async def test_heartbeats__keep_a_slow_handlers_lease(dsn: str, conn: psycopg.Connection) -> None:
    activities.gate.clear()
    activities.calls.clear()
    send(conn, {"n": 1})
    lease = 0.6
    settings = ConsumerSettings(lease=lease, poll_interval=0.2)
    try:
        async with running_node(
            dsn, activities.waits_for_gate, settings=settings, reap_interval=0.05
        ) as (node, _):
            await wait_until(lambda: len(activities.calls) == 1, what="the handler to start")
            first_expiry = conn.execute(
                "SELECT lease_expires_at FROM mesh.stream_messages"
            ).fetchone()
            # Let the database clock run well past the first lease (and several reaper passes).
            await wait_until(
                lambda: (
                    conn.execute(
                        "SELECT now() > %s + interval '1.5 seconds'", first_expiry
                    ).fetchone()
                    == (True,)
                ),
                what="three lease periods to pass",
            )
            row = conn.execute(
                "SELECT lease_owner, attempts, lease_expires_at > now() FROM mesh.stream_messages"
            ).fetchone()
            assert row == (node.guid, 1, True), "the lease was lost although the handler was alive"
            activities.gate.set()
            await wait_until(lambda: len(responses(conn)) == 1, what="the response")
    finally:
        activities.gate.set()
    (response,) = responses(conn)
    assert response.status == "success" and response.attempts == 1
    assert len(activities.calls) == 1, "the message was handed to a second handler"


async def test_worker_counters__move_with_the_work(dsn: str, conn: psycopg.Connection) -> None:
    send(conn, *range(25))
    async with running_node(dsn, activities.echo) as (node, worker):
        await wait_until(lambda: worker.statistics().consumer.acked == 25, what="25 acks")
        stats = node.statistics()
    assert stats.app == APP and stats.listener.healthy is True
    (worker_stats,) = [a for a in stats.actors if isinstance(a, WorkerStatistics)]
    assert worker_stats.consumer.claimed == 25 and worker_stats.consumer.in_flight == 0


async def test_drain__in_process_finishes_in_flight_work(
    dsn: str, conn: psycopg.Connection
) -> None:
    activities.gate.clear()
    activities.calls.clear()
    send(conn, {"n": 1})
    async with (
        trio.open_nursery() as nursery,
        running_node(dsn, activities.waits_for_gate) as (node, _),
    ):
        await wait_until(lambda: len(activities.calls) == 1, what="the handler to start")
        node.request_stop()
        nursery.start_soon(trio.to_thread.run_sync, activities.gate.set)
    assert len(responses(conn)) == 1
    assert conn.execute(
        "SELECT count(*) FROM mesh.stream_messages WHERE lease_owner IS NOT NULL"
    ).fetchone() == (0,)


async def test_a_waiting_handler__does_not_hold_up_the_rest_of_its_batch(
    dsn: str, conn: psycopg.Connection
) -> None:
    activities.first_blocks = trio.Event()
    send(conn, *({"n": n} for n in range(20)))  # one claim: message 0 first, then 19 more
    async with running_node(dsn, activities.first_one_waits) as (_, worker):
        await wait_until(lambda: len(responses(conn)) == 19, what="the 19 others to finish")
        # Their responses commit before the consumer counts them settled: wait for that too.
        await wait_until(lambda: worker.in_flight() == 1, what="only the waiting one in flight")
        assert len(responses(conn)) == 19
        activities.first_blocks.set()
        await wait_until(lambda: len(responses(conn)) == 20, what="the waiting one to finish")
    assert sorted(r.data["n"] for r in responses(conn)) == list(range(20))


@pytest.mark.parametrize(
    "function", [activities.counts_concurrency, activities.counts_concurrency_in_threads]
)
async def test_concurrency__is_never_exceeded_when_smaller_than_the_batch(
    dsn: str, conn: psycopg.Connection, caplog: pytest.LogCaptureFixture, function: Any
) -> None:
    activities.most_running = 0
    send(conn, *({"n": n} for n in range(300)))
    settings = ConsumerSettings(batch_size=50, concurrency=7, poll_interval=0.2)
    async with running_node(dsn, function, settings=settings) as (_, worker):
        await wait_until(lambda: len(responses(conn)) == 300, timeout=30, what="300 responses")
        assert worker.consumer.counters.lost == 0
    assert 1 < activities.most_running <= 7
    assert "settle_refused" not in caplog.text


async def test_a_crashed_consumer__is_restarted_by_its_supervisor(
    dsn: str, conn: psycopg.Connection
) -> None:
    send(conn, {"n": 1})
    async with running_node(dsn, activities.echo, settings=ConsumerSettings(poll_interval=0.2)) as (
        node,
        worker,
    ):
        real_claim = node.streams.claim
        calls = 0

        async def claim_that_breaks_once(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("a bug in the claim path")
            return await real_claim(*args, **kwargs)

        await wait_until(lambda: worker.consumer.counters.claims >= 1, what="the first claim")
        send(conn, {"n": 2})
        node.streams.claim = claim_that_breaks_once  # type: ignore[method-assign]
        worker.consumer.wake()
        await wait_until(lambda: len(responses(conn)) == 2, what="both responses after the restart")
        assert worker.restarts == 1


async def test_a_heartbeat_never_cancels_a_batch_transaction_whose_own_ack_removed_its_rows(
    dsn: str,
) -> None:
    """A batch handler's fenced ack deletes its claims; a heartbeat that runs after that
    commit and before the handler returns finds the rows gone. It must not take them for lost
    and cancel the batch (which would drop the next batch claimed in the same commit)."""
    from mesh.model.outcomes import Ack, Outgoing
    from mesh.runtime.consumer import BatchResult, StreamConsumer
    from mesh.runtime.streams import Settlement, StreamClaim

    committed, release, returned = trio.Event(), trio.Event(), trio.Event()
    heartbeats: list[set[int]] = []

    async def batch(claims: list[StreamClaim], **_: Any) -> BatchResult:
        acked = await mesh.node.streams.settle([Settlement(c, Ack()) for c in claims])
        committed.set()
        await release.wait()  # heartbeats run meanwhile, and find every row gone
        returned.set()
        return BatchResult([], acked=len(acked))

    async with Mesh.open(dsn, app="hb", engine=False, quorum=False) as mesh:
        extend = mesh.node.streams.extend_leases

        async def counted(
            claims: Any, lease: float, details: Any = None
        ) -> tuple[set[int], set[int]]:
            kept, extended = await extend(claims, lease, details)
            if committed.is_set():
                heartbeats.append(kept)
            return kept, extended

        mesh.node.streams.extend_leases = counted  # type: ignore[method-assign]
        settings = ConsumerSettings(lease=0.3, poll_interval=0.1, batch_size=5)
        consumer = StreamConsumer(
            mesh.node.streams,
            mesh.node.wakeups,
            app="hb",
            stream="jobs",
            settings=settings,
            batch_handler=batch,
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consumer.run)
            await mesh.node.streams.enqueue([Outgoing("hb", "jobs", b'{"n": 1}')])
            await committed.wait()
            await wait_until(lambda: len(heartbeats) >= 2, what="heartbeats after the commit")
            release.set()
            with trio.fail_after(10):  # a cancelled batch never returns
                await returned.wait()
            nursery.cancel_scope.cancel()
    assert heartbeats[-1] == set()  # the rows were gone, as the heartbeat saw
    assert consumer.counters.lost == 0
    assert consumer.counters.acked == 1
