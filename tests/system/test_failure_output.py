"""A library user who configures no logging still hears of a workflow that fails: one line
on stderr (Python's last-resort handler; mesh configures no root logger), naming the
workflow, its id and the error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.helpers import node_env

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
    script = tmp_path / "quiet.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script)],
        env=node_env(dsn),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "raised ValueError", done.stdout + done.stderr
    failed = [line for line in done.stderr.splitlines() if "workflow_failed" in line]
    assert len(failed) == 1, done.stderr
    assert "workflow_id=w-boom" in failed[0] and "workflow=boom" in failed[0], failed
    assert "ValueError: bad 3" in failed[0], failed
