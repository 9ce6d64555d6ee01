"""docker/: the compose file and the Dockerfiles, checked without a Docker engine.

What a `docker compose config` and a build would catch first, plus the security defaults: every
published port on the host's loopback only, secrets only from the environment, token auth on.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined; comments and blank lines dropped."""
    out, pending = [], ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        word, _, rest = pending.strip().partition(" ")
        out.append((word, rest.strip()))
        pending = ""
    assert not pending, f"{path.name}: the last instruction ends in a line continuation"
    return out


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_dockerfile_parses_and_copies_existing_files(name):
    steps = instructions(DOCKER / name)
    assert steps and steps[0][0] == "FROM"
    for word, rest in steps:
        assert word in INSTRUCTIONS, f"{name}: unknown instruction {word!r}"
        assert rest, f"{name}: {word} without arguments"
        if word == "COPY":
            *sources, _ = rest.split()
            for src in sources:
                assert (ROOT / src).exists(), f"{name}: COPY {src}: no such path in the build context (repo root)"
    users = [rest for word, rest in steps if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), f"{name}: runs as root"
    runs = " ".join(rest for word, rest in steps if word == "RUN")
    torch_index = "whl/cpu" if name.endswith("cpu") else "whl/cu"
    assert f"download.pytorch.org/{torch_index}" in runs  # torch from PyTorch's index, before sweeper
    assert runs.index("download.pytorch.org") < runs.index("pip install .")


def test_base_images(compose):
    assert instructions(DOCKER / "Dockerfile.cpu")[0][1].startswith("python:3.11-slim")
    assert instructions(DOCKER / "Dockerfile.cuda")[0][1].startswith("nvidia/cuda:")


def test_services_and_the_files_they_reference(compose):
    services = compose["services"]
    assert {"postgres", "head", "worker", "dashboard"} <= set(services)
    for name, svc in services.items():
        build = svc.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context == ROOT
            assert (context / build["dockerfile"]).is_file(), (name, build)
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (DOCKER / source).resolve().exists(), (name, volume)
            else:
                assert source in compose["volumes"], (name, volume)  # a named volume, declared
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        if name != "worker-gpu":
            assert "healthcheck" in svc, f"{name} has no healthcheck"
    assert "replicas" in services["worker"]["deploy"]  # scalable
    assert "dashboard" in services["dashboard"]["command"]
    assert any("tune" in v for v in services["worker"]["volumes"])  # Tune storage shared by every node


def test_every_published_port_is_on_loopback(compose):
    published = []
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            spec = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            published.append((name, spec))
            assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec!r} beyond the host's loopback"
    assert published  # the dashboards are reachable from the host
    assert not compose["services"]["postgres"].get("ports")  # the database is not published by default
    assert all("6379" not in spec for _, spec in published)  # nor Ray's GCS: its clients run code


def test_secrets_come_from_the_environment_and_token_auth_is_on(compose):
    text = (DOCKER / "compose.yaml").read_text()
    env = compose["services"]["head"]["environment"]
    assert env["RAY_AUTH_MODE"] == "token"
    for key in ("RAY_AUTH_TOKEN",):
        assert re.fullmatch(r"\$\{RAY_AUTH_TOKEN:\?[^}]*\}", env[key]), env[key]  # required, no default
    assert re.search(r"POSTGRES_PASSWORD: \$\{POSTGRES_PASSWORD:\?", text)
    assert compose["services"]["dashboard"]["environment"]["SWEEPER_DASHBOARD_TOKEN"].startswith(
        "${SWEEPER_DASHBOARD_TOKEN:?")
    assert "docker/.env" in (ROOT / ".gitignore").read_text().splitlines()
