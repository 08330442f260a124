"""Launch files, checked structurally (there is no Docker engine or systemd to run them here):
they parse, carry the keys their runners need, and every command exists in the CLI."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest
import yaml

from mesh.cli.main import _parser

ROOT = Path(__file__).resolve().parents[2]


def assert_cli_accepts(argv: list[str]) -> None:
    assert argv[0] == "mesh" or argv[0].endswith("/mesh"), argv
    try:
        args = _parser().parse_args(argv[1:])
    except SystemExit as error:
        raise AssertionError(f"`{shlex.join(argv)}` is not a valid mesh command") from error
    assert getattr(args, "handler", None) is not None, argv


def test_top_level_layout() -> None:
    expected = {
        "pyproject.toml",
        "mesh",
        "actors",
        "benchmarks",
        "config",
        "deploy",
        "tests",
        "docker-compose.yml",
        "Procfile",
        "README.md",
        "CONTRIBUTING.md",
        ".ci",
    }
    present = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") or p.name == ".ci"}
    present -= {"build", "dist"} | {p for p in present if p.endswith(".egg-info")}
    assert present == expected


HONCHO_KILL_WAIT = 5.0
"""Seconds honcho waits after SIGTERM before it sends SIGKILL (honcho.manager.KILL_WAIT)."""


def test_procfile__process_types_run_real_commands() -> None:
    from honcho.manager import KILL_WAIT

    assert KILL_WAIT == HONCHO_KILL_WAIT, "honcho changed its stop window: revisit the Procfile"
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            argv = shlex.split(command)
            # exec: the runner's signals and exit status are mesh's own, not a shell's.
            assert argv[0] == "exec", line
            entries[name.strip()] = argv[1:]
    assert {"engine", "worker"} <= set(entries)
    # A Procfile runner stops every process when one exits: no one-shot entries.
    assert all(argv[1] == "run" for argv in entries.values())
    for argv in entries.values():
        assert_cli_accepts(argv)
        # The drain (and the release after it) must end before honcho's SIGKILL.
        drain = float(argv[argv.index("--drain-timeout") + 1])
        assert drain <= HONCHO_KILL_WAIT - 2, argv
    assert entries["worker"][1:4] == ["run", "--role", "worker"]


def test_docker_compose__services_and_commands() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "engine", "worker"} <= set(services)
    assert "healthcheck" in services["postgres"] and "pg_isready" in " ".join(
        services["postgres"]["healthcheck"]["test"]
    )
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["deploy"]["replicas"] >= 1
    for name in ("engine", "worker"):
        service = services[name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"]["MESH_DATABASE_URL"].startswith("postgresql://")
        assert_cli_accepts(["mesh", *service["command"]])
    for name in ("engine", "worker"):
        assert services[name]["environment"]["PORT"] == "9100", "metrics port the scraper expects"
    prometheus = services["prometheus"]
    mount = next(v for v in prometheus["volumes"] if "prometheus.yml" in v)
    assert (ROOT / mount.split(":")[0].removeprefix("./")).exists()
    dockerfile = ROOT / services["engine"]["build"]["dockerfile"]
    assert dockerfile.exists()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"{dockerfile.name} copies missing {source}"


@pytest.mark.parametrize(
    "unit", sorted(p.name for p in (ROOT / "deploy" / "systemd").glob("*.service"))
)
def test_systemd_units__parse_and_run_real_commands(unit: str) -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(ROOT / "deploy" / "systemd" / unit)
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    exec_start = shlex.split(parser["Service"]["ExecStart"])
    if exec_start[:2] == ["/bin/sh", "-c"]:
        # PORT=$$((9100 + %i)) exec mesh ...  ($$ is systemd's literal $)
        match = re.fullmatch(r"PORT=\$\$\(\((\d+) \+ %i\)\) exec (.*)", exec_start[2])
        assert match, exec_start[2]
        exec_start = shlex.split(match.group(2))
    assert_cli_accepts(exec_start)
    if "@" in unit:
        assert "%i" in parser["Service"]["ExecStart"], "instances must get distinct metrics ports"
        assert int(parser["Service"]["TimeoutStopSec"]) > 30, (
            "stop timeout must exceed the drain timeout"
        )


@pytest.mark.parametrize("name", ["prometheus.yml", "prometheus-hosts.yml"])
def test_prometheus_configs__scrape_mesh_nodes(name: str) -> None:
    config = yaml.safe_load((ROOT / "deploy" / name).read_text())
    jobs = config["scrape_configs"]
    assert jobs and all(job["job_name"].startswith("mesh") for job in jobs)
    for job in jobs:
        targets = job.get("static_configs") or job.get("dns_sd_configs")
        assert targets, f"{job['job_name']} scrapes nothing"
    if name == "prometheus.yml":  # compose: the services it names must exist
        compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
        names = {n for job in jobs for sd in job["dns_sd_configs"] for n in sd["names"]}
        assert names <= set(compose["services"])
