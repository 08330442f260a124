"""Config files: strict decoding, substitution, overrides, and errors that say where and how."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh.config import load_config, parse_config
from mesh.errors import ConfigError

GOOD = """
app: shop
database:
  url: ${SHOP_DB:-postgresql://localhost/shop}
streams:
  lease: 45 seconds
workers:
  - topic: inventory.check
    function: mesh.examples.inventory:check_inventory
    concurrency: 5
    retry: {maximum_attempts: 5, backoff_coefficient: 2, maximum_interval: 1 minute}
metrics:
  port: ${PORT:-0}
"""


def test_parse_config__decodes_and_substitutes() -> None:
    config = parse_config(GOOD, "shop.yaml", {"PORT": "9100"})
    assert config.app == "shop"
    assert config.database.url == "postgresql://localhost/shop"
    assert config.metrics.port == 9100
    assert config.seconds(config.streams.lease) == 45.0
    policy = config.retry_policy(config.workers[0])
    assert (policy.maximum_attempts, policy.backoff_coefficient, policy.maximum_interval) == (
        5,
        2.0,
        60.0,
    )
    assert config.retry_policy().maximum_attempts == 3  # the app-wide default


def test_parse_config__comments_are_not_substituted() -> None:
    config = parse_config("# write ${VAR} to substitute\napp: a\n", "c.yaml", {})
    assert config.app == "a"


def test_unknown_key__names_file_path_and_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "app: a\nworkers:\n  - topic: t\n    function: m:f\n    concurency: 3\n", "c.yaml", {}
        )
    message = str(caught.value)
    assert "c.yaml" in message and "workers[0].concurency" in message
    assert "unknown key 'concurency'" in message and "fix:" in message


def test_invalid_yaml__names_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml: line 2, column \d+: invalid YAML"):
        parse_config("app: a\n  bad: indent\n", "c.yaml", {})


def test_missing_required_key() -> None:
    with pytest.raises(ConfigError, match=r"workers\[0\]\.function: required key is missing"):
        parse_config("workers:\n  - topic: t\n", "c.yaml", {})


def test_unset_variable_without_default() -> None:
    with pytest.raises(ConfigError, match=r"database\.url: environment variable NOPE is not set"):
        parse_config("database:\n  url: ${NOPE}\n", "c.yaml", {})


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('app: "bad\'app"\n', "app"),
        ("workers:\n  - {topic: 'a;b', function: 'm:f'}\n", "workers[0].topic"),
        ("workers:\n  - {topic: t, function: 'no_colon'}\n", "workers[0].function"),
        ("workers:\n  - {topic: t, function: 'm:f', concurrency: 0}\n", "workers[0].concurrency"),
        ("streams:\n  lease: forever\n", "streams.lease"),
        ("streams:\n  poll_interval: 2 hours\n", "streams.poll_interval"),
        (
            "workers:\n  - {topic: t, function: 'm:f'}\n  - {topic: t, function: 'm:g'}\n",
            "workers[1].topic",
        ),
        ("retry:\n  maximum_attempts: 0\n", "retry"),
        ("log_level: loud\n", "log_level"),
    ],
)
def test_bad_values__are_refused_with_their_key_path(text: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "c.yaml", {})
    assert caught.value.key_path == where, str(caught.value)


def test_environment_overrides_win(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text("app: fromfile\nlog_level: info\n")
    config = load_config(
        path,
        {
            "MESH_APP": "fromenv",
            "MESH_DATABASE_URL": "postgresql://db/x",
            "MESH_LOG_LEVEL": "debug",
        },
    )
    assert (config.app, config.database.url, config.log_level) == (
        "fromenv",
        "postgresql://db/x",
        "debug",
    )


def test_listen_url__defaults_to_the_database_url_and_can_be_overridden(tmp_path: Path) -> None:
    from mesh.launch import build_node

    path = tmp_path / "mesh.yaml"
    path.write_text("database:\n  url: postgresql://pooler:6432/db\n")
    assert (
        build_node(load_config(path, {}), "postgresql://pooler:6432/db").listener.dsn
        == "postgresql://pooler:6432/db"
    )
    config = load_config(path, {"MESH_LISTEN_URL": "postgresql://direct:5432/db"})
    assert config.database.listen_url == "postgresql://direct:5432/db"
    assert build_node(config, config.database.url).listener.dsn == "postgresql://direct:5432/db"


def test_environment_overrides_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "mesh.yaml"
    path.write_text("app: fine\n")
    with pytest.raises(ConfigError, match="MESH_APP: app id 'x;y' is not allowed"):
        load_config(path, {"MESH_APP": "x;y"})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.yaml", {})


def test_shipped_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    config = load_config(root / "config" / "mesh.yaml", {})
    assert [w.topic for w in config.workers] == [
        "inventory.check",
        "inventory.reserve",
        "inventory.backorder.notify",
    ]


def test_reference__the_readme_table_is_the_generated_one() -> None:
    """Every key is documented (a field without a docstring cannot be generated), and the
    README carries the table as generated: regenerate it with
    ``python -m mesh.config_reference`` after changing mesh/config.py."""
    from mesh.config_reference import keys, markdown_table
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "run python -m mesh.config_reference into the README"
    paths = {key.path for key in keys()}
    assert {"app", "streams.poll_interval", "workers[].topic", "task_queues[].name"} <= paths
