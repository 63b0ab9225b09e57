"""The deployment files (Dockerfile, .dockerignore, .env.example, docker-compose.yml), checked
without a Docker engine: structure, names that must match the code, and commands that must exist."""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic import AliasChoices
from sqlalchemy.engine import make_url

from digest.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

SERVICES = {"postgres", "redis", "mailpit", "init", "web", "worker", "beat"}
APP_SERVICES = {"init", "web", "worker", "beat"}
# The only ways the deployment starts the app: each is a CLI the test suite also drives.
ALLOWED_APP_COMMANDS = {
    ("digest", "serve"),
    ("digest", "init-db"),
    ("celery", "-A", "workers.celery_app", "worker"),
    ("celery", "-A", "workers.celery_app", "beat"),
}
DIGEST_NAME = re.compile(r"\bDIGEST_[A-Z0-9_]+\b")


# --- helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def _argv(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _sp, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _dockerfile_cmd() -> list[str]:
    (cmd,) = [args for word, args in _dockerfile_instructions() if word == "CMD"]
    parsed = json.loads(cmd)
    assert isinstance(parsed, list)
    return [str(word) for word in parsed]


def _env_example() -> dict[str, str]:
    """The variables .env.example sets (not the commented-out ones), refusing duplicates."""
    values: dict[str, str] = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: not NAME=value: {line!r}"
            assert name not in values, f".env.example sets {name} twice"
            values[name] = value
    return values


def settings_env_names() -> set[str]:
    """Every environment variable Settings reads, from its fields, aliases and prefix."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    by_name = bool(Settings.model_config.get("populate_by_name"))
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names |= {choice.upper() for choice in alias.choices if isinstance(choice, str)}
        if alias is None or by_name:
            names.add(f"{prefix}{field_name}".upper())
    return names


def _pyproject_dependencies() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = set()
    for requirement in project["dependencies"]:
        found = re.match(r"[A-Za-z0-9._-]+", requirement)
        assert found, requirement
        names.add(found.group(0).lower().replace("_", "-"))
    return names


# --- docker-compose.yml -------------------------------------------------------------------------


def test_compose_has_exactly_the_stack_services(compose: dict[str, Any]) -> None:
    assert set(_services(compose)) == SERVICES


@pytest.mark.parametrize(
    ("service", "repository", "tag"),
    [("postgres", "postgres", "16"), ("redis", "redis", "7"), ("mailpit", "axllent/mailpit", None)],
)
def test_backing_services_use_the_expected_images(
    compose: dict[str, Any], service: str, repository: str, tag: str | None
) -> None:
    image_repository, _colon, image_tag = str(_services(compose)[service]["image"]).partition(":")
    assert image_repository == repository
    if tag is not None:
        assert image_tag == tag


def test_beat_runs_exactly_one_replica(compose: dict[str, Any]) -> None:
    beat = _services(compose)["beat"]
    assert beat["deploy"]["replicas"] == 1
    assert "scale" not in beat
    assert "# Exactly ONE beat" in COMPOSE_FILE.read_text(encoding="utf-8")


def test_redis_keeps_queued_tasks(compose: dict[str, Any]) -> None:
    command = " ".join(_argv(_services(compose)["redis"]["command"]))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(str(v).endswith(":/data") for v in _services(compose)["redis"]["volumes"])


@pytest.mark.parametrize(
    ("service", "probe"),
    [("postgres", "pg_isready"), ("redis", "redis-cli ping"), ("mailpit", "/mailpit readyz")],
)
def test_backing_services_have_healthchecks(compose: dict[str, Any], service: str, probe: str) -> None:
    assert probe in " ".join(_argv(_services(compose)[service]["healthcheck"]["test"]))


@pytest.mark.parametrize(("service", "mount"), [("postgres", "/var/lib/postgresql/data"), ("redis", "/data")])
def test_data_lives_in_named_volumes(compose: dict[str, Any], service: str, mount: str) -> None:
    volumes = {str(v).split(":")[0]: str(v).split(":")[1] for v in _services(compose)[service]["volumes"]}
    (name,) = [name for name, target in volumes.items() if target == mount]
    assert name in compose["volumes"]


@pytest.mark.parametrize(("service", "ports"), [("web", {"8000:8000"}), ("mailpit", {"8025:8025", "1025:1025"})])
def test_published_ports(compose: dict[str, Any], service: str, ports: set[str]) -> None:
    assert {str(p) for p in _services(compose)[service]["ports"]} == ports


def test_app_services_share_one_image_and_the_env_file(compose: dict[str, Any]) -> None:
    services = _services(compose)
    builds = {json.dumps(services[s]["build"], sort_keys=True) for s in APP_SERVICES}
    images = {services[s]["image"] for s in APP_SERVICES}
    assert builds == {json.dumps(".")} and len(images) == 1
    for name in APP_SERVICES:
        env_file = services[name]["env_file"]
        assert (env_file if isinstance(env_file, list) else [env_file]) == [".env"], name
        assert "environment" not in services[name], f"{name}: configuration belongs in .env"


@pytest.mark.parametrize(
    ("service", "needs"),
    [
        ("init", {"postgres": "service_healthy"}),
        (
            "web",
            {"postgres": "service_healthy", "redis": "service_healthy", "init": "service_completed_successfully"},
        ),
        (
            "worker",
            {
                "postgres": "service_healthy",
                "redis": "service_healthy",
                "init": "service_completed_successfully",
                "mailpit": "service_healthy",
            },
        ),
        (
            "beat",
            {"postgres": "service_healthy", "redis": "service_healthy", "init": "service_completed_successfully"},
        ),
    ],
)
def test_start_order(compose: dict[str, Any], service: str, needs: dict[str, str]) -> None:
    depends = _services(compose)[service]["depends_on"]
    assert {name: spec["condition"] for name, spec in depends.items()} == needs


def test_init_runs_once_and_only_web_keeps_the_http_healthcheck(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert services["init"]["restart"] == "no"
    assert {s for s in APP_SERVICES if services[s].get("healthcheck", {}).get("disable")} == {"init", "worker", "beat"}


@pytest.mark.parametrize(
    ("service", "argv"),
    [
        ("init", ["digest", "init-db"]),
        ("web", ["digest", "serve", "--host", "0.0.0.0", "--port", "8000"]),
        ("worker", ["celery", "-A", "workers.celery_app", "worker", "--loglevel=INFO"]),
        ("beat", ["celery", "-A", "workers.celery_app", "beat", "--loglevel=INFO"]),
    ],
)
def test_app_service_commands(compose: dict[str, Any], service: str, argv: list[str]) -> None:
    assert _argv(_services(compose)[service]["command"]) == argv


def _app_commands(compose: dict[str, Any]) -> list[list[str]]:
    commands = [_argv(_services(compose)[s]["command"]) for s in sorted(APP_SERVICES)]
    return [*commands, _dockerfile_cmd()]


def _matching_prefix(argv: list[str]) -> tuple[str, ...]:
    matches = [p for p in ALLOWED_APP_COMMANDS if tuple(argv[: len(p)]) == p]
    assert len(matches) == 1, f"{shlex.join(argv)} is not one of the allowed app commands"
    return matches[0]


def test_every_app_command_is_an_allowed_one(compose: dict[str, Any]) -> None:
    used = {_matching_prefix(argv) for argv in _app_commands(compose)}
    assert used == ALLOWED_APP_COMMANDS


def _options(command: Any) -> set[str]:
    """A click command's option strings (typer vendors its own click, so no isinstance checks)."""
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def _check_options(argv: list[str], *commands: Any) -> None:
    known = set().union(*(_options(c) for c in commands))
    for word in argv:
        if word.startswith("-"):
            assert word.split("=")[0] in known, f"{shlex.join(argv)}: unknown option {word}"


def test_digest_subcommands_exist_with_the_options_used(compose: dict[str, Any]) -> None:
    from digest.cli import app

    group: Any = typer.main.get_command(app)
    assert "init-db" in group.commands
    # `digest serve` is the web app's entry point (digest/web); web and the image's CMD run it.
    assert "serve" in group.commands, "digest serve is not registered in digest.cli"
    for argv in _app_commands(compose):
        if argv[0] == "digest":
            _check_options(argv[2:], group.commands[argv[1]])


def test_celery_commands_exist_with_the_options_used(compose: dict[str, Any]) -> None:
    from celery import Celery
    from celery.bin.celery import celery as celery_cli

    import workers.celery_app

    assert isinstance(workers.celery_app.app, Celery)
    for argv in _app_commands(compose):
        if argv[0] == "celery":
            _check_options(argv[1:], celery_cli, celery_cli.commands[argv[3]])


def test_the_app_can_reach_the_services_named_in_env_example(compose: dict[str, Any]) -> None:
    env = _env_example()
    database = make_url(env["DIGEST_DATABASE_URL"])
    postgres = _services(compose)["postgres"]["environment"]
    assert (database.drivername, database.host, database.port) == ("postgresql+psycopg", "postgres", 5432)
    assert (database.username, database.password, database.database) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert env["DIGEST_BROKER_URL"] == "redis://redis:6379/0"
    assert env["DIGEST_SMTP_URL"] == "smtp://mailpit:1025"
    assert {"postgres", "redis", "mailpit"} <= set(_services(compose))


def test_the_database_and_broker_drivers_are_declared_dependencies() -> None:
    """The image installs [project].dependencies only: the drivers the URLs name must be there."""
    env = _env_example()
    driver = make_url(env["DIGEST_DATABASE_URL"]).drivername.partition("+")[2]
    declared = _pyproject_dependencies()
    assert driver in declared, f"{driver} (DIGEST_DATABASE_URL) is not in [project].dependencies"
    assert "redis" in declared


# --- .env.example and the DIGEST_* names everywhere ---------------------------------------------


def test_settings_env_names_are_computed_from_the_model() -> None:
    names = settings_env_names()
    assert {"DIGEST_FROM", "DIGEST_DATABASE_URL", "DIGEST_SECRET_KEY", "DIGEST_SOURCES"} <= names
    assert "DIGEST_TYPO" not in names


@pytest.mark.parametrize("path", [ENV_EXAMPLE, COMPOSE_FILE, DOCKERFILE], ids=lambda p: p.name)
def test_every_digest_variable_is_a_settings_field(path: Path) -> None:
    valid = settings_env_names()
    used = set(DIGEST_NAME.findall(path.read_text(encoding="utf-8")))
    unknown = {name: get_close_matches(name, valid, n=1) for name in used - valid}
    assert not unknown, f"{path.name}: not Settings fields (did you mean?): {unknown}"


def test_env_example_sets_what_the_stack_needs_and_loads() -> None:
    env = _env_example()
    needed = {
        "DIGEST_DATABASE_URL",
        "DIGEST_BROKER_URL",
        "DIGEST_SMTP_URL",
        "DIGEST_FROM",
        "DIGEST_BASE_URL",
        "DIGEST_SECRET_KEY",
    }
    assert needed <= set(env)
    settings = Settings(_env_file=ENV_EXAMPLE)
    assert settings.database_url == "postgresql+psycopg://digest:digest@postgres:5432/digest"
    assert settings.broker_url == "redis://redis:6379/0"
    assert settings.smtp is not None and (settings.smtp.host, settings.smtp.port) == ("mailpit", 1025)
    assert settings.base_url == "http://localhost:8000"
    assert settings.from_address == env["DIGEST_FROM"]
    assert settings.secret_key != Settings.model_fields["secret_key"].default
    assert "secrets.token_urlsafe" in ENV_EXAMPLE.read_text(encoding="utf-8")  # how to make a real one


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile_base_port_and_default_command() -> None:
    instructions = _dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    assert ("EXPOSE", "8000") in instructions
    assert _dockerfile_cmd() == ["digest", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_dockerfile_runs_as_a_non_root_user() -> None:
    instructions = _dockerfile_instructions()
    users = [(i, args) for i, (word, args) in enumerate(instructions) if word == "USER"]
    assert users, "no USER line: the container would run as root"
    last_index, last_user = users[-1]
    assert last_user.split(":")[0] not in ("root", "0")
    cmd_index = next(i for i, (word, _args) in enumerate(instructions) if word == "CMD")
    assert last_index < cmd_index


def test_dockerfile_healthcheck_uses_python_not_curl() -> None:
    (check,) = [args for word, args in _dockerfile_instructions() if word == "HEALTHCHECK"]
    assert "http://127.0.0.1:8000/healthz" in check
    assert "urllib.request" in check
    assert "curl" not in check and "wget" not in check


def test_dockerfile_installs_dependencies_before_copying_the_source() -> None:
    instructions = _dockerfile_instructions()
    copies = [(i, args.split()) for i, (word, args) in enumerate(instructions) if word == "COPY"]
    whole = next(i for i, words in copies if words[0] == ".")
    pip_runs = [i for i, (word, args) in enumerate(instructions) if word == "RUN" and "pip install" in args]
    assert pip_runs and pip_runs[0] < whole, "dependencies must be installed before COPY . (cached layer)"
    before = [words for i, words in copies if i < whole]
    assert before == [["pyproject.toml", "./"]], "only pyproject.toml may be copied before the dependencies"
    # After the source: the package itself, editable so PROJECT_ROOT / "email_templates" is /app/email_templates.
    assert any(i > whole and "pip install --no-deps -e ." in instructions[i][1] for i in pip_runs)


def test_dockerfile_dependency_list_is_exactly_pyprojects(tmp_path: Path) -> None:
    """Run the Dockerfile's own tomllib one-liner on the real pyproject.toml."""
    run = next(args for word, args in _dockerfile_instructions() if word == "RUN" and "tomllib" in args)
    found = re.search(r'python -c "([^"]+)"', run)
    assert found
    (tmp_path / "pyproject.toml").write_bytes((ROOT / "pyproject.toml").read_bytes())
    out = subprocess.run(
        [sys.executable, "-c", found.group(1)], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    expected = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert out.splitlines() == expected


# --- .dockerignore ------------------------------------------------------------------------------


def _ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _ignored(name: str) -> bool:
    ignored = False
    for pattern in _ignore_patterns():
        negated = pattern.startswith("!")
        if fnmatch.fnmatchcase(name, pattern.lstrip("!")):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    "name",
    [
        *(".venv", "outbox", "demo.sqlite3", "digest.sqlite3", "test-output", ".git"),
        *(".mypy_cache", ".ruff_cache", ".pytest_cache", ".env"),
    ],
)
def test_dockerignore_keeps_local_state_and_secrets_out(name: str) -> None:
    assert _ignored(name)


@pytest.mark.parametrize("name", ["pyproject.toml", "README.md", "digest", "workers", "email_templates"])
def test_dockerignore_keeps_what_the_image_needs(name: str) -> None:
    assert (ROOT / name).exists()
    assert not _ignored(name)
