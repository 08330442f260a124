"""The README's first workflow example runs as written: its code block, saved as a script and
run by Python against this test's database, prints the workflow's result."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.helpers import node_env


def first_python_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    runnable = [block for block in blocks if "asyncio.run(main())" in block]
    assert runnable, "the README shows a runnable asyncio example"
    return str(runnable[0])


def test_readme__the_first_workflow_example_runs_as_written(tmp_path: Path, dsn: str) -> None:
    script = tmp_path / "example.py"
    script.write_text(first_python_example())
    done = subprocess.run(
        [sys.executable, str(script)],
        env=node_env(dsn),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reserved 2 of sku-1", done.stdout + done.stderr
