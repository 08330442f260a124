"""The pure layer: identifiers, durations, retry and restart decisions, message codecs."""

from __future__ import annotations

import pytest

from mesh.errors import InvalidIdentifier, InvalidPayload, PayloadTooLarge
from mesh.model.durations import parse_duration
from mesh.model.histogram import DurationHistogram
from mesh.model.ids import stream_channel, validate_app_id, validate_topic
from mesh.model.messages import (
    NOTIFY_PAYLOAD_LIMIT,
    ActivityRequest,
    ActivityResponse,
    check_notify_payload,
    decode,
    encode,
    parse_json,
)
from mesh.model.outcomes import dead_letter_replies
from mesh.model.restart import Escalate, Restart, RestartIntensity, RestartPolicy
from mesh.model.retry import GiveUp, RetryLater, RetryPolicy, decide_failure, retry_delay


@pytest.mark.parametrize("bad", ["it's", "a;drop table", "x" * 200, "", "a b", "-lead", 'q"uote'])
def test_validate_app_id__refuses_unsafe_names(bad: str) -> None:
    with pytest.raises(InvalidIdentifier):
        validate_app_id(bad)


@pytest.mark.parametrize("bad", ["it's", "topic;delete", "t" * 200, "", "engine", "with space"])
def test_validate_topic__refuses_unsafe_or_reserved_names(bad: str) -> None:
    with pytest.raises(InvalidIdentifier):
        validate_topic(bad)


def test_validate_topic__error_says_what_is_allowed() -> None:
    with pytest.raises(InvalidIdentifier, match="use only letters, digits"):
        validate_topic("a;b")
    with pytest.raises(InvalidIdentifier, match="200 characters long; the limit is 100"):
        validate_topic("t" * 200)


def test_validate__accepts_dotted_topics_and_app_ids() -> None:
    assert validate_topic("inventory.backorder.notify") == "inventory.backorder.notify"
    assert validate_app_id("orders-eu_1") == "orders-eu_1"


def test_stream_channel__is_a_short_stable_identifier() -> None:
    channel = stream_channel("orders", "inventory.check")
    assert channel == stream_channel("orders", "inventory.check")
    assert channel != stream_channel("orders", "inventory.reserve")
    assert channel.startswith("mesh_s_") and len(channel) == 31


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5 seconds", 5.0),
        ("2 minutes", 120.0),
        ("1 hour", 3600.0),
        ("200ms", 0.2),
        ("1.5 h", 5400.0),
        (7, 7.0),
        ("3", 3.0),
    ],
)
def test_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "5 fortnights", "-1 s", -3])
def test_parse_duration__refuses_nonsense(bad: str | int) -> None:
    with pytest.raises(InvalidPayload):
        parse_duration(bad)


def test_retry_policy__hotmesh_defaults_and_formula() -> None:
    policy = RetryPolicy()
    assert (policy.maximum_attempts, policy.backoff_coefficient, policy.maximum_interval) == (
        3,
        10.0,
        120.0,
    )
    assert [retry_delay(policy, n) for n in (1, 2, 3)] == [10.0, 100.0, 120.0]
    assert decide_failure(policy, 1) == RetryLater(10.0)
    assert decide_failure(policy, 2) == RetryLater(100.0)
    assert decide_failure(policy, 3) == GiveUp()


def test_retry_policy__duration_strings_and_huge_exponents() -> None:
    policy = RetryPolicy.from_settings(50, 10, "2 minutes")
    assert policy.maximum_interval == 120.0
    assert retry_delay(policy, 400) == 120.0


def test_retry_policy__refuses_impossible_settings() -> None:
    with pytest.raises(InvalidPayload):
        RetryPolicy(maximum_attempts=0)
    with pytest.raises(InvalidPayload):
        RetryPolicy(backoff_coefficient=0.5)


def test_restart_intensity__backs_off_then_escalates() -> None:
    intensity = RestartIntensity(
        RestartPolicy(max_restarts=3, within_seconds=10, initial_backoff=0.1, maximum_backoff=0.3)
    )
    assert intensity.record_failure(0.0) == Restart(0.1)
    assert intensity.record_failure(1.0) == Restart(0.2)
    assert intensity.record_failure(2.0) == Restart(0.3)
    assert isinstance(intensity.record_failure(3.0), Escalate)


def test_restart_intensity__forgets_failures_outside_the_window() -> None:
    intensity = RestartIntensity(RestartPolicy(max_restarts=2, within_seconds=10))
    intensity.record_failure(0.0)
    intensity.record_failure(1.0)
    assert isinstance(intensity.record_failure(20.0), Restart)
    assert intensity.recent_failures == 1


def test_messages__round_trip_through_the_tagged_union() -> None:
    request = ActivityRequest(id="r1", app="a", topic="t", data={"qty": 2}, retry=RetryPolicy(5))
    decoded = decode(encode(request))
    assert decoded == request
    response = ActivityResponse(
        request_id="r1", app="a", topic="t", status="success", code=200, data=[1]
    )
    assert decode(encode(response)) == response


def test_messages__refuse_garbage_and_unencodable_data() -> None:
    with pytest.raises(InvalidPayload):
        decode(b'{"type": "nonsense"}')
    with pytest.raises(InvalidPayload):
        encode(ActivityRequest(id="r", app="a", topic="t", data={"x": object()}))


def test_parse_json__error_explains_the_fix() -> None:
    with pytest.raises(InvalidPayload, match="not valid JSON"):
        parse_json("{qty: 2}")


def test_notify_payload__measured_in_encoded_bytes() -> None:
    ascii_ok = "a" * NOTIFY_PAYLOAD_LIMIT
    assert len(check_notify_payload(ascii_ok)) == NOTIFY_PAYLOAD_LIMIT
    # 4000 characters of 'é' are 8000 bytes: over the limit although under it in characters.
    with pytest.raises(PayloadTooLarge, match="8000 bytes"):
        check_notify_payload("é" * 4000)


def test_dead_letter_replies__owe_an_error_response_to_requests_only() -> None:
    request = ActivityRequest(id="r1", app="a", topic="t", reply_to="engine")
    (notice,) = dead_letter_replies(encode(request).decode(), 3, "boom")
    response = decode(notice.payload)
    assert isinstance(response, ActivityResponse)
    assert (response.status, response.request_id, response.attempts) == ("error", "r1", 3)
    assert response.error is not None and response.error.message == "boom"
    assert dead_letter_replies("not json", 3, "boom") == ()


def test_duration_histogram__cumulative_buckets() -> None:
    histogram = DurationHistogram((0.1, 1.0))
    for seconds in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [("0.1", 2), ("1.0", 3), ("+Inf", 4)]
    assert histogram.count == 4 and histogram.sum == pytest.approx(3.65)
