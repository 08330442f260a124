"""The README's first workflow example runs as written: its code block, saved as a script and
run by Python against this test's database, prints the workflow's result."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT
from tests.helpers import run_script


def first_python_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    runnable = [block for block in blocks if "asyncio.run(main())" in block]
    assert runnable, "the README shows a runnable asyncio example"
    return str(runnable[0])


def test_readme__the_first_workflow_example_runs_as_written(tmp_path: Path, dsn: str) -> None:
    done = run_script(tmp_path, first_python_example(), dsn)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "reserved 2 of sku-1", done.stdout + done.stderr
