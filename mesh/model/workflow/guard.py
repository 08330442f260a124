"""Calls refused in workflow code while it runs: each would make a replay differ from the
first run, or skip durability, and each refusal names the durable call to use.

Workflow code runs again from its recorded calls when its node lost it (a replay); a replay
must make the same decisions, so it may read time and randomness only through the workflow
(``workflow.now()``, ``workflow.random()``, ``workflow.uuid4()``) and wait only with durable
calls (``workflow.sleep()``). An activity called directly would run in the workflow's
transaction, unrecorded and unretried: it is called through ``proxy_activities``.

The guard is a profile function (:func:`sys.setprofile`, which is per thread) set only while
a workflow's coroutine is advanced, so code outside workflows is untouched. It sees every
call and return of the workflow code and of mesh's own code under it: about 0.35 µs each,
150 µs for a workflow of one activity, measured by ``mesh bench durable --workflow-checks``
at 370 against 430 workflows/s (one activity, 50 in flight; node CPU 1.6-1.9 against
1.3-1.5 ms per workflow). Not negligible, so it is on in testing mode (a process that
imported pytest) and off elsewhere, unless ``MESH_WORKFLOW_CHECKS`` says ``on`` or ``off``.
It is never set when a profiler already is (the profiler wins).

Without it, the sleeps of asyncio, trio and anyio are still refused at no cost (they fail
outside their event loop: :func:`restricted` names the durable call), and so is awaiting
anything but a durable call (:func:`awaited`).
"""

from __future__ import annotations

import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from types import CodeType, FrameType
from typing import Any

from mesh.errors import RestrictedCall

NOW = "read the time with workflow.now() (a datetime) or workflow.time() (seconds)"
SLEEP = "wait with `await workflow.sleep(seconds)` (durable: it survives restarts)"
RANDOM = "draw from workflow.random() or workflow.uuid4() (the same on every replay)"

_BUILTINS: dict[tuple[int, str], tuple[str, str]] = {
    (id(getattr(function, "__self__", None)), function.__name__): (shown, fix)
    for function, shown, fix in (
        (time.time, "time.time()", NOW),
        (time.time_ns, "time.time_ns()", NOW),
        (time.sleep, "time.sleep()", SLEEP),
        (datetime.now, "datetime.now()", NOW),
        (datetime.utcnow, "datetime.utcnow()", NOW),
        (datetime.today, "datetime.today()", NOW),
        (date.today, "date.today()", NOW),
        (os.urandom, "os.urandom()", RANDOM),
    )
}
"""C functions refused, by (id of the object they are bound to, name)."""

_GLOBAL_RANDOM = getattr(random, "_inst", None)
"""The generator behind ``random.random()``, ``random.choice()``... (workflow.random() has
its own)."""

_SETTING = os.environ.get("MESH_WORKFLOW_CHECKS", "").strip().lower()
ENABLED: bool | None = (
    True if _SETTING in ("on", "1", "yes", "true") else False if _SETTING else None
)
"""Whether the guard runs: None until first asked (then: in testing mode)."""


def enabled() -> bool:
    global ENABLED
    if ENABLED is None:
        ENABLED = "pytest" in sys.modules
    return ENABLED


_activity_codes: dict[CodeType, str] = {}


def refuse_direct_calls(function: Callable[..., Any], name: str) -> None:
    """Refuse calling ``function`` (an activity) directly from workflow code."""
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    if isinstance(code, CodeType):
        _activity_codes[code] = name


def _python_refusals() -> dict[CodeType, tuple[str, str]]:
    """Python functions refused: the sleeps of the event loops that are loaded (none is
    imported here) and ``uuid.uuid4``."""
    found: dict[CodeType, tuple[str, str]] = {uuid.uuid4.__code__: ("uuid.uuid4()", RANDOM)}
    for module, name, shown in (
        ("asyncio.tasks", "sleep", "asyncio.sleep()"),
        ("trio._timeouts", "sleep", "trio.sleep()"),
        ("trio._timeouts", "sleep_until", "trio.sleep_until()"),
        ("anyio._core._eventloop", "sleep", "anyio.sleep()"),
    ):
        function = getattr(sys.modules.get(module), name, None)
        code = getattr(function, "__code__", None)
        if isinstance(code, CodeType):
            found[code] = (shown, SLEEP)
    return found


_loaded: tuple[frozenset[str], dict[CodeType, tuple[str, str]]] = (frozenset(), {})


def _refusals() -> dict[CodeType, tuple[str, str]]:
    global _loaded
    modules = frozenset(m for m in ("asyncio", "trio", "anyio") if m in sys.modules)
    if modules != _loaded[0]:
        _loaded = (modules, _python_refusals())
    return _loaded[1]


def _refused(what: str, fix: str) -> RestrictedCall:
    return RestrictedCall(
        f"{what} in workflow code: a replay would not see what the first run saw; {fix}"
    )


def _profile(
    python: dict[CodeType, tuple[str, str]],
) -> Callable[[FrameType, str, Any], None]:
    activities = _activity_codes

    def check(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            found = python.get(code)
            if found is not None:
                raise _refused(*found)
            name = activities.get(code)
            if name is not None:
                raise RestrictedCall(
                    f"activity {name!r} called directly in workflow code: it would run "
                    "unrecorded and unretried, and again on every replay; call it through "
                    f"workflow.proxy_activities({name}), e.g. `await acts[{name}](...)`"
                )
        elif event == "c_call":
            owner = getattr(arg, "__self__", None)
            if owner is None:
                return
            if owner is _GLOBAL_RANDOM:
                raise _refused(f"random.{arg.__name__}()", RANDOM)
            found = _BUILTINS.get((id(owner), arg.__name__))
            if found is not None:
                raise _refused(*found)

    return check


@contextmanager
def guarded() -> Iterator[None]:
    """Refuse the calls above in this thread for the duration (not when a profiler runs)."""
    if not enabled() or sys.getprofile() is not None:
        yield
        return
    sys.setprofile(_profile(_refusals()))
    try:
        yield
    finally:
        sys.setprofile(None)


_LOOP_MODULES = ("trio", "anyio", "sniffio", "asyncio")


def restricted(error: BaseException) -> RestrictedCall | None:
    """The refusal an error raised in workflow code stands for, if it is one of the cheap
    cases: an event loop's function called outside its loop (``trio.sleep``,
    ``anyio.sleep``)."""
    if isinstance(error, RestrictedCall):
        return None
    frames = traceback_modules(error)
    for module in ("asyncio", "trio", "anyio"):
        if module in frames:
            refusal = _refused(f"{module} called", f"{SLEEP}; run other async code in an activity")
            refusal.__cause__ = error
            return refusal
    return None


def traceback_modules(error: BaseException) -> set[str]:
    """The top-level packages of the frames ``error`` went through."""
    found = set()
    tb = error.__traceback__
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__", "")
        found.add(name.split(".")[0])
        tb = tb.tb_next
    return found


def awaited(value: Any) -> RestrictedCall:
    """The refusal of awaiting ``value``, which is not a durable call."""
    module = type(value).__module__.split(".")[0]
    if module in _LOOP_MODULES:
        return _refused(
            f"awaiting {module} ({type(value).__name__})",
            SLEEP + "; run other async code in an activity",
        )
    return RestrictedCall(
        f"workflow code awaited {value!r:.100}, which is not a durable call: await "
        "activities, workflow.sleep, workflow.condition or children; run other async code "
        "in an activity"
    )
