"""Definitions cannot silently collide: a task queue refuses, before anything runs, a
lambda, a function defined inside another (unless named by ``defn``) and two functions
under one name; names given by ``@workflow.defn`` / ``@activity.defn`` are the names jobs
and requests use; durations take ``timedelta``; statuses are an enum."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mesh import activity, workflow
from mesh.config import load_config
from mesh.errors import ConfigError
from mesh.launch import check_task_queue, node_plan
from mesh.model.durations import parse_duration
from mesh.model.jobs import WorkflowStatus
from mesh.model.workflow.definition import workflow_name
from tests.unit import twin_a, twin_b


async def order(item: str) -> str:
    return item


@workflow.defn(name="orders.v2")
async def order_v2(item: str) -> str:
    return item


async def fetch(x: int) -> int:
    return x


def local_workflow() -> Any:
    async def inner(x: int) -> int:
        return x

    return inner


def test_a_lambda_is_refused_with_the_fix() -> None:
    lam = lambda x: x  # noqa: E731
    with pytest.raises(ConfigError) as caught:
        check_task_queue([lam], [])
    assert "lambda" in str(caught.value) and "@workflow.defn(name=...)" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        check_task_queue([], [lam])
    assert "lambda" in str(caught.value) and "@activity.defn(name=...)" in str(caught.value)


def test_a_function_defined_inside_another_is_refused_unless_named() -> None:
    with pytest.raises(ConfigError) as caught:
        check_task_queue([local_workflow()], [])
    message = str(caught.value)
    assert "defined inside local_workflow()" in message and "'inner'" in message
    named = [workflow.defn(name=f"inner-{n}")(local_workflow()) for n in range(2)]
    check_task_queue(named, [])  # each has a name of its own
    assert [workflow_name(f) for f in named] == ["inner-0", "inner-1"]

    def helper(x: int) -> int:
        return x

    with pytest.raises(ConfigError, match="defined inside"):
        check_task_queue([], [helper])
    check_task_queue([], [activity.defn(name="helper")(helper)])


def test_two_functions_under_one_name_are_refused_naming_both() -> None:
    # twin_a.same and twin_b.same: two modules, one name.
    with pytest.raises(ConfigError) as caught:
        check_task_queue([twin_a.same, twin_b.same], [])
    message = str(caught.value)
    assert "tests.unit.twin_a:same" in message and "tests.unit.twin_b:same" in message
    with pytest.raises(ConfigError, match="two activity functions are named 'same_activity'"):
        check_task_queue([], [twin_a.same_activity, twin_b.same_activity])
    # A name given to one of them parts them; the same function twice is registered once.
    check_task_queue([twin_a.same, workflow.defn(name="other")(twin_b.renamed)], [])
    check_task_queue([order, order], [fetch, fetch])


def test_a_given_name_is_the_one_starts_use() -> None:
    assert workflow_name(order) == "order"
    assert workflow_name(order_v2) == "orders.v2"
    assert workflow_name("by-name") == "by-name"
    with pytest.raises(ValueError, match="non-empty string"):
        workflow.defn(name="")
    with pytest.raises(ValueError, match="non-empty string"):
        activity.defn(name="  ")


def test_a_config_naming_a_lambda_is_refused_with_its_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "lambdas_app.py").write_text("flow = lambda x: x\n")
    config = tmp_path / "mesh.yaml"
    config.write_text(
        "app: shop\ntask_queues:\n  - name: orders\n    workflows: ['lambdas_app:flow']\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(ConfigError) as caught:
            node_plan(load_config(config, {}), roles=["worker"])
    finally:
        sys.path.remove(str(tmp_path))
    assert caught.value.source == str(config) and caught.value.key_path == "task_queues[0]"
    assert "lambda" in caught.value.problem


def test_durations_take_timedelta_everywhere_a_number_is_taken() -> None:
    assert parse_duration(timedelta(days=30)) == 30 * 86400.0
    assert parse_duration(timedelta(milliseconds=250)) == 0.25
    assert workflow.sleep(timedelta(hours=1)).call.timeout == 3600.0
    assert workflow.condition("go", timeout=timedelta(minutes=2)).call.timeout == 120.0
    acts = workflow.proxy_activities(fetch, start_to_close=timedelta(seconds=5))
    assert acts.fetch(1).call.timeout == 5.0
    with pytest.raises(Exception, match="negative"):
        parse_duration(timedelta(seconds=-1))


def test_status_is_an_enum_equal_to_its_string() -> None:
    assert WorkflowStatus("done") is WorkflowStatus.DONE
    assert WorkflowStatus.RUNNING == "running" and f"{WorkflowStatus.FAILED}" == "failed"
    assert {s.value for s in WorkflowStatus} == {
        "running",
        "pending",
        "done",
        "failed",
        "interrupted",
    }
