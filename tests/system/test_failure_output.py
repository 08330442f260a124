"""A library user who configures no logging still hears of a workflow that fails: one line
on stderr (Python's last-resort handler; mesh configures no root logger), naming the
workflow, its id and the error."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import run_script

SCRIPT = """
import asyncio, logging, sys

from mesh import Client, JobFailed, Worker


async def boom(x: int) -> int:
    raise ValueError(f"bad {x}")


async def main() -> None:
    async with await Client.connect(app="quiet") as client:
        async with Worker(client, task_queue="q", workflows=[boom]):
            handle = await client.start_workflow(boom, 3, task_queue="q", workflow_id="w-boom")
            try:
                await handle.result()
            except JobFailed as failed:
                print("raised", failed.error["type"])
    assert not logging.getLogger().handlers, "mesh configured the root logger"


asyncio.run(main())
"""


def test_a_failed_workflow_is_one_line_on_stderr_without_logging_config(
    tmp_path: Path, dsn: str
) -> None:
    done = run_script(tmp_path, SCRIPT, dsn)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "raised ValueError", done.stdout + done.stderr
    failed = [line for line in done.stderr.splitlines() if "workflow_failed" in line]
    assert len(failed) == 1, done.stderr
    assert "workflow_id=w-boom" in failed[0] and "workflow=boom" in failed[0], failed
    assert "ValueError: bad 3" in failed[0], failed
