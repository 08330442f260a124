"""The unit tier: pure tests, no database. A test here that asks for a database fixture is
refused at collection: it belongs in ``tests/pg``."""

from __future__ import annotations

import pytest

DATABASE_FIXTURES = {"dsn", "conn", "db", "empty_dsn", "server_dsn", "template_dsn"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        wanted = DATABASE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if wanted and "tests/unit/" in str(item.path).replace("\\", "/"):
            raise pytest.UsageError(
                f"{item.nodeid} asks for {', '.join(sorted(wanted))}: a test with a database "
                "belongs in tests/pg (tests/system if it starts processes)"
            )
