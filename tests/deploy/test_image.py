"""The Dockerfile, .dockerignore and docker-compose.yml follow the image's rules, and
the project installs the way the Dockerfile installs it.

No Docker engine runs here, so the image itself is built by scripts/check-image
(Podman); these tests check what can be checked without one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(
        line for line in dockerfile.splitlines() if not line.lstrip().startswith("#")))
    found = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def stages() -> list[list[tuple[str, str]]]:
    parsed = instructions((ROOT / "Dockerfile").read_text())
    starts = [i for i, (word, _) in enumerate(parsed) if word == "FROM"]
    return [parsed[a:b] for a, b in zip(starts, [*starts[1:], len(parsed)], strict=True)]


def args_of(stage: list[tuple[str, str]], word: str) -> list[str]:
    return [rest for w, rest in stage if w == word]


def test_the_image_builds_in_one_stage_and_runs_from_a_slim_python_3_11_in_another() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in dockerfile
    build, final = stages()
    assert args_of(build, "FROM") == ["${PYTHON_IMAGE} AS build"]
    assert args_of(final, "FROM") == ["${PYTHON_IMAGE}"]
    assert any(rest.startswith("--from=build /opt/member-cdc") for rest in args_of(final, "COPY"))


def test_the_image_runs_cdc_as_a_user_that_is_not_root() -> None:
    final = stages()[-1]
    users = args_of(final, "USER")
    assert users, "the final stage sets no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    last = max(i for i, (word, _) in enumerate(final) if word == "USER")
    assert all(word != "RUN" for word, _ in final[last:]), "a RUN after USER runs as that user"
    assert args_of(final, "ENTRYPOINT") == ['["cdc"]']


def test_the_image_installs_the_project_without_dev_dependencies() -> None:
    build = stages()[0]
    installs = [rest for rest in args_of(build, "RUN") if " install " in rest]
    assert installs and all(re.search(r"install \.( |$)", rest) for rest in installs)
    assert not any("[" in rest or "-e " in rest for rest in installs)
    assert not args_of(stages()[-1], "RUN") or all(
        "pip" not in rest for rest in args_of(stages()[-1], "RUN"))


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern that matches the path or a parent decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    verdict = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[(.*?)\\\]", r"[\1]", regex)
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            verdict = not negate
    return verdict


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".git/HEAD", "tests/unit/test_lsn.py", "bench/machine.py",
    "cdc/__pycache__/lsn.cpython-311.pyc", "consumers/members/__pycache__/store.cpython-311.pyc",
    ".mypy_cache/3.11/cdc/lsn.meta.json", ".pytest_cache/v/cache/lastfailed",
    ".ruff_cache/CACHEDIR.TAG", "cdc/.hypothesis/examples/x", ".hypothesis/examples/x",
    "docs/deploy.md", "deploy/systemd/cdc-run@.service",
])
def test_the_build_context_leaves_out(path: str) -> None:
    assert ignored(path, dockerignore())


@pytest.mark.parametrize("path", [
    "pyproject.toml", "README.md", "cdc/cli/__init__.py",
    "cdc/contract/schema/change-event.schema.json", "consumers/runner.py",
])
def test_the_build_context_keeps(path: str) -> None:
    assert not ignored(path, dockerignore())


def test_compose_builds_its_cdc_services_from_the_dockerfile() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    assert "dockerfile_inline" not in compose
    assert re.search(r"build:\s*\n\s+context: \.\s*\n\s+dockerfile: Dockerfile\n", compose)
    # the image's entrypoint is cdc: a command that starts with cdc would run `cdc cdc ...`
    assert not re.search(r'command: \["cdc"', compose)


def build_context(target: Path) -> Path:
    """The files the builder receives: the repository less what .dockerignore leaves out."""
    patterns = dockerignore()
    # no pattern lets a file back in below a left-out top-level entry (.venv, .git, ...)
    kept = [top for top in ROOT.iterdir() if not ignored(top.name, patterns)]
    for path in [*kept, *(p for top in kept if top.is_dir() for p in top.rglob("*"))]:
        relative = path.relative_to(ROOT).as_posix()
        if path.is_file() and not ignored(relative, patterns):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)
    return target


def test_the_project_installs_and_runs_as_the_dockerfile_installs_it(tmp_path: Path) -> None:
    """`python -m venv --without-pip`, then `pip --python <venv> install .` from the
    build context, as the build stage does; `cdc --help` must then run."""
    context = build_context(tmp_path / "context")
    assert not (context / "tests").exists() and not (context / ".git").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install",
         "--quiet", "."], cwd=context, env=env, capture_output=True, text=True, timeout=600,
        check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    cdc = venv / "bin" / "cdc"
    shown = subprocess.run([str(cdc), "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("Usage: cdc")
    for command in ("run", "consume", "setup", "status", "backfill", "dlq"):
        assert re.search(rf"^\s+{command}\s", shown.stdout, re.MULTILINE), command
    dev = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         "import importlib.util as u; print([m for m in ('pytest', 'mypy', 'ruff', "
         "'hypothesis', 'pip') if u.find_spec(m)])"],
        capture_output=True, text=True, check=True)
    assert dev.stdout.strip() == "[]"
