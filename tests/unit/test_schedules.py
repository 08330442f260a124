"""Schedules decided purely: ticks of cron expressions (time zones, daylight saving time,
seconds) and intervals, which due ticks run, are passed or are missed, jitter, run ids and
refused specs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mesh.errors import InvalidPayload
from mesh.model.schedules import delay, look, make_spec, next_ticks, run_id

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_intervals_tick_from_their_offset() -> None:
    spec = make_spec("s", "wf", every="10 minutes", offset="2 minutes")
    assert next_ticks(spec, T0, 3) == [T0 + timedelta(minutes=m) for m in (2, 12, 22)]
    assert next_ticks(spec, T0 + timedelta(minutes=2), 1) == [T0 + timedelta(minutes=12)]


def test_cron_in_a_time_zone_across_daylight_saving_changes() -> None:
    daily = make_spec("d", "wf", cron="30 2 * * *", time_zone="Europe/Berlin")
    # Spring forward (29 March 2026): 02:30 does not exist; it runs at 03:00 local.
    spring = next_ticks(daily, datetime(2026, 3, 28, 2, tzinfo=UTC), 2)
    assert spring == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
    ]
    # Fall back (25 October 2026): 02:30 comes twice; a job at a fixed hour runs once.
    fall = next_ticks(daily, datetime(2026, 10, 24, 2, tzinfo=UTC), 2)
    assert fall == [
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 26, 1, 30, tzinfo=UTC),
    ]
    hourly = make_spec("h", "wf", cron="0 * * * *", time_zone="Europe/Berlin")
    # ... and one on every hour runs in both 02:00s.
    assert next_ticks(hourly, datetime(2026, 10, 24, 23, 30, tzinfo=UTC), 3) == [
        datetime(2026, 10, 25, h, tzinfo=UTC) for h in (0, 1, 2)
    ]


def test_cron_with_seconds() -> None:
    spec = make_spec("s", "wf", cron="*/15 * * * * *")
    assert next_ticks(spec, T0, 2) == [T0 + timedelta(seconds=15), T0 + timedelta(seconds=30)]


def test_a_look_runs_the_due_ticks_in_the_window_and_counts_the_missed() -> None:
    spec = make_spec("s", "wf", every="10 seconds", catchup_window="60 seconds")
    on_time = look(spec, T0, T0 + timedelta(seconds=1))
    assert (on_time.runs, on_time.missed) == ([T0], 0)
    assert on_time.next_tick == T0 + timedelta(seconds=10)
    late = look(spec, T0, T0 + timedelta(seconds=25))
    assert late.runs == [T0 + timedelta(seconds=s) for s in (0, 10, 20)] and late.missed == 0
    after_an_hour = look(spec, T0, T0 + timedelta(hours=1))
    # 361 ticks were due: 354 before the window (missed), 7 in it (to run, oldest first).
    assert after_an_hour.missed == 354 and len(after_an_hour.runs) == 7
    assert after_an_hour.runs[-1] == T0 + timedelta(hours=1)
    assert look(spec, T0 + timedelta(seconds=10), T0 + timedelta(seconds=5)).runs == []


def test_a_long_downtime_of_a_cron_schedule_is_walked_in_bounded_steps() -> None:
    spec = make_spec("s", "wf", cron="* * * * * *", catchup_window=5)
    seen = look(spec, T0, T0 + timedelta(days=2))
    assert seen.runs and seen.runs[0] >= T0 + timedelta(days=2, seconds=-5)
    assert seen.missed == 10_000  # at most this many walked; the rest jumped over
    assert seen.next_tick > T0 + timedelta(days=2)


def test_jitter_is_bounded_and_the_same_on_every_look() -> None:
    spec = make_spec("s", "wf", every=60, jitter=30)
    delays = [delay(spec, T0 + timedelta(minutes=m)) for m in range(50)]
    assert all(timedelta(0) <= d < timedelta(seconds=30) for d in delays)
    assert len(set(delays)) > 40 and delays == [
        delay(spec, T0 + timedelta(minutes=m)) for m in range(50)
    ]


def test_a_ticks_run_id_is_its_schedule_and_utc_second() -> None:
    tick = datetime(2026, 12, 7, 13, 5, 9, 999, tzinfo=UTC)
    assert run_id("nightly", tick) == "nightly@20261207T130509Z"


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"cron": "61 * * * *"}, "not a cron expression"),
        ({"cron": "* * *"}, "not a cron expression"),
        ({}, "exactly one of cron"),
        ({"cron": "* * * * *", "every": 5}, "exactly one of cron"),
        ({"every": 0.5}, "from 1 second"),
        ({"every": 5, "time_zone": "Mars/Base"}, "unknown time zone"),
        ({"every": 5, "overlap": "sometimes"}, "overlap is one of"),
        ({"every": 5, "catchup_window": -1}, "negative"),
    ],
)
def test_bad_specs_are_refused_with_what_to_write(kwargs: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidPayload, match=problem):
        make_spec("s", "wf", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(InvalidPayload, match="schedule id"):
        make_spec("bad id!", "wf", every=5)


def test_config_schedules_are_checked_with_their_key_path() -> None:
    from mesh.config import parse_config
    from mesh.errors import ConfigError

    good = parse_config(
        "schedules:\n  - {id: nightly, workflow: report, args: [eu], cron: '0 3 * * *'}\n",
        "c.yaml",
        {},
    )
    assert good.schedules[0].id == "nightly"
    for text, where, problem in [
        ("schedules:\n  - {id: a, workflow: w, cron: 'every day'}\n", "schedules[0]", "cron"),
        ("schedules:\n  - {id: a, workflow: w}\n", "schedules[0]", "exactly one of"),
        (
            "schedules:\n  - {id: a, workflow: w, every: 5}\n  - {id: a, workflow: v, every: 9}\n",
            "schedules[1].id",
            "twice",
        ),
        ("schedules:\n  - {id: a, workflow: w, every: 5, colour: red}\n", "colour", "unknown"),
    ]:
        with pytest.raises(ConfigError) as caught:
            parse_config(text, "c.yaml", {})
        assert where in str(caught.value) and problem in str(caught.value), str(caught.value)
