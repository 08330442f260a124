"""The stream consumer: how a node takes messages from a Postgres stream and gives back their
outcomes.

::

          wake-ups ──▶ claim ──────────▶ handle ────────────▶ settle
    (NOTIFY, poller,   up to the free    a handler per        the outcomes gathered
     safety poll)      slots, leased     message (workers),   meanwhile, in one fenced
                       with a token      or one per batch     statement; or, for a batch,
                       ▲                 (engines: its own    in the handler's own
                       │                 transaction)         transaction with the
                       └── the next claim rides along ◀──────  next claim
                  heartbeat: every held lease extended each lease / 3

Modules, in the order a message meets them:

- :mod:`.wakeups`: when to claim. A NOTIFY wakes one consumer of a stream, the elected
  poller's wake channel every node; a node with many rivals answers only its share.
- :mod:`.stream_consumer`: :class:`StreamConsumer`, the claim loop (claims up to the free
  slots, honours the throttle, admits claims made along with settles and batches) and the
  drain; it wires the parts below together.
- :mod:`.slots`: what a consumer holds and how many more it may claim (messages, never
  batches), and the slots it lends for eager dispatch.
- :mod:`.eager_dispatch`: requests enqueued by this node's own transactions, leased to it as
  they are inserted, taken from memory without a NOTIFY or a claim.
- :mod:`.alone_messages`: messages whose holders died twice holding them among others run on
  their own; when to look for them and claim one.
- :mod:`.handlers`: what a consumer runs (a handler per message, or per batch) and what it
  reports.
- :mod:`.inline_start`: a message handler starts inline in the batch task and gets a task
  of its own only if it has to wait.
- :mod:`.leases`: the messages in flight and the heartbeat that keeps their leases.
- :mod:`.settling`: the settle loop (group commit of outcomes, fenced by token; retried
  message by message when the database refuses a batch).
- :mod:`.settings`: :class:`ConsumerSettings` and :class:`ConsumerStatistics`.
- :mod:`.actor`: ``StreamActor``, an actor whose work is one consumer (its drain wired to
  the node's); imported from there (it needs the node).
"""

from mesh.runtime.consumer.handlers import BatchHandler, BatchResult, Handler
from mesh.runtime.consumer.settings import ConsumerSettings, ConsumerStatistics
from mesh.runtime.consumer.settling import Settler
from mesh.runtime.consumer.stream_consumer import StreamConsumer

__all__ = [
    "BatchHandler",
    "BatchResult",
    "ConsumerSettings",
    "ConsumerStatistics",
    "Handler",
    "Settler",
    "StreamConsumer",
]
