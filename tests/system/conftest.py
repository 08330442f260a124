"""The system tier: real processes started through the real CLI (nodes, honcho, Postgres
servers of their own). Every test here is marked ``slow``."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/system/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.slow)
