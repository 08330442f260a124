"""Waiting for conditions (never sleeping as synchronisation) and starting real nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psycopg
import trio

from tests.conftest import ROOT

MESH = str(Path(sys.executable).parent / "mesh")


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 15.0,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until true; fail naming ``what`` after ``timeout`` seconds."""
    with trio.move_on_after(timeout):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await trio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    timeout: float = 15.0,
    what: str = "condition",
) -> None:
    """:func:`wait_until` for any event loop (anyio: asyncio or trio)."""
    import anyio

    with anyio.move_on_after(timeout):
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def wait_until_sync(
    condition: Callable[[], bool], *, timeout: float = 30.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def scalar(dsn: str, query: str, params: Any = None) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params).fetchone()
        return row[0] if row else None


def node_env(dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESH_")}
    env.update(
        MESH_DATABASE_URL=dsn,
        PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        MESH_LOG_LEVEL="info",
    )
    env.update(extra)
    return env


class NodeProcess:
    """A node started through the real CLI: ``mesh --config PATH run``."""

    def __init__(
        self, config: Path, dsn: str, *args: str, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.log_path = log
        self._log = open(log, "ab")  # noqa: SIM115 - closed in wait()/stop()
        self.process = subprocess.Popen(
            [MESH, "--config", str(config), "run", *args],
            env=node_env(dsn, **(env or {})),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=config.parent,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        wait_until_sync(
            lambda: text in self.log() or self.process.poll() is not None,
            timeout=timeout,
            what=f"{text!r} in the node log",
        )
        assert text in self.log(), (
            f"node exited ({self.process.returncode}) before logging {text!r}:\n{self.log()}"
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def terminate(self, timeout: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self._log.close()
        return code

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self._log.close()
        return code

    def ensure_stopped(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


def mesh(
    *args: str, dsn: str, cwd: Path, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the real ``mesh`` command line to the end."""
    return subprocess.run(
        [MESH, *args],
        env=node_env(dsn, **env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def run_script(folder: Path, text: str, dsn: str) -> subprocess.CompletedProcess[str]:
    """``text`` saved as a script in ``folder`` and run by this Python against ``dsn`` (as
    a user would run it: its own process, mesh's environment variables only)."""
    script = folder / "script.py"
    script.write_text(text)
    return subprocess.run(
        [sys.executable, str(script)],
        env=node_env(dsn),
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
