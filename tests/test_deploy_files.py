"""No Docker engine runs here, so the Dockerfile and compose file are checked by reading them.

The checks: the services exist and are wired to each other, every environment variable they set is a
real setting, and every `mupredict` command they run exists in the CLI.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import cli
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CLI_COMMANDS = {
    command.name or (command.callback.__name__ if command.callback else "")
    for command in cli.registered_commands
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def _commands(service: dict[str, Any]) -> list[list[str]]:
    command = service["command"]
    text = " ".join(command) if isinstance(command, list) else command
    if isinstance(command, list) and command[:2] == ["sh", "-c"]:
        text = command[2]
    return [shlex.split(part) for part in re.split(r"&&|;", text)]


def _mupredict_subcommands(service: dict[str, Any]) -> list[str]:
    return [argv[1] for argv in _commands(service) if argv and argv[0] == "mupredict"]


def test_services_and_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "api", "worker"}
    assert "healthcheck" in services["postgres"]
    assert "pgdata" in compose["volumes"]
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_api_migrates_then_serves(compose: dict[str, Any]) -> None:
    assert _mupredict_subcommands(compose["services"]["api"]) == ["migrate", "serve"]


def test_worker_reserves_a_gpu_and_runs_the_worker(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    assert _mupredict_subcommands(worker) == ["worker"]
    assert worker["command"][-2:] == ["--gpus", "all"], "the worker supervises one process per visible GPU"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"] and devices[0]["count"] == 1
    assert "container_name" not in worker, "a fixed container name would break --scale worker=N"
    assert re.search(r"/cu\d+$", worker["build"]["args"]["TORCH_INDEX_URL"]), "the worker needs a CUDA torch"


def test_every_command_exists_in_the_cli(compose: dict[str, Any]) -> None:
    used = {
        sub
        for service in compose["services"].values()
        if "command" in service
        for sub in _mupredict_subcommands(service)
    }
    dockerfile_cmd = re.search(r"^CMD \[(.*)\]$", (ROOT / "Dockerfile").read_text(), re.M)
    assert dockerfile_cmd is not None
    used.add(dockerfile_cmd.group(1).split(",")[1].strip().strip('"'))
    assert used <= CLI_COMMANDS, f"commands missing from the CLI: {used - CLI_COMMANDS}"


def test_environment_names_real_settings(compose: dict[str, Any]) -> None:
    fields = {f"MUPREDICT_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "worker"):
        env = compose["services"][name]["environment"]
        assert env["MUPREDICT_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in env["MUPREDICT_DATABASE_URL"], "the host must be the compose service name"
        assert set(env) <= fields, f"{name} sets unknown settings: {set(env) - fields}"
    dockerfile_env = set(re.findall(r"(MUPREDICT_[A-Z_]+)=", (ROOT / "Dockerfile").read_text()))
    assert dockerfile_env <= fields


def test_dockerfile_builds_torch_from_a_build_argument() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^ARG TORCH_INDEX_URL=", text, re.M)
    assert '--index-url "${TORCH_INDEX_URL}"' in text
    for package in ("app", "trainer", "predictor", "migrations"):
        assert re.search(rf"^COPY {package} ", text, re.M), f"the image must contain {package}/"


def test_every_setting_is_documented_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = [
        f"MUPREDICT_{n.upper()}" for n in Settings.model_fields if f"`MUPREDICT_{n.upper()}`" not in readme
    ]
    assert missing == [], f"settings missing from the README's configuration table: {missing}"
