"""A newcomer's first hour: README.md's "Try it step by step", command by
command, as written, on a fresh copy of this working tree.

The commands come from the section's ``sh`` code blocks, in order, so a README
edit that breaks the path breaks this test. How the blocks read:

* A command runs in "the first shell": one bash session whose environment
  (``source``, ``eval "$(...)"``, ``export``) carries over to the next command.
* A command whose comment says ``in another shell`` runs until stopped, in a
  new shell: a fresh bash with none of the first shell's environment, which
  first runs the block that starts with ``# in each new shell``. So the README
  must say how a second shell gets ``cdc`` and the stack.
* A comment line ``# Ctrl-C in each of the other shells ...`` sends SIGINT to
  them, as Ctrl-C would; each must stop cleanly (exit 0).

Each command must exit 0 and print no ``error:`` line, no traceback and no
JSON log line among its human output; some must also say what a person is
meant to read (EXPECTED).

Two things differ from a person's machine, and only in the environment:
``CDC_HTTP_PORT=0`` (other test runs on this machine may hold 8080-8082),
and the copy's ``.venv`` is seeded with this environment's packages (a
``.pth`` file), so ``scripts/bootstrap``, run as written, installs only the
project itself instead of downloading every dependency again.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cdc.cli.setup_cmd import NEXT_STEP
from cdc.local import stack
from tests.services import ROOT

pytestmark = pytest.mark.integration

SECTION = "## Try it step by step"
ANOTHER_SHELL = "in another shell"
NEW_SHELL = "in each new shell"
CTRL_C = "Ctrl-C in"
# the path must go through these, in this order
REQUIRED = ("cdc stack up", "cdc setup", "cdc run", "cdc consume firestore",
            "cdc consume audit", "cdc backfill --wait", "cdc status", "cdc members show",
            "cdc audit")
# what a person reads, by the start of the command
EXPECTED = {
    "scripts/bootstrap": ("stderr", "bootstrap: installing member-cdc"),
    'eval "$(cdc stack up': ("stderr", "loaded schema.sql"),
    "cdc setup": ("stdout", NEXT_STEP),
    "cdc backfill --wait": ("stdout", "summary: created "),
    "cdc status": ("stdout", "all good"),
    "cdc members show": ("stdout", "(django id "),
    "cdc audit": ("stdout", "backfill"),
}
STARTED = {"cdc run": "replication started", "cdc consume": "consumer started"}
COMMAND_TIMEOUT_S = 300  # one command; generous, the machine is shared
START_TIMEOUT_S = 120


@dataclass
class Step:
    kind: str  # "run", "background", "ctrl-c"
    command: str = ""


@dataclass
class ReadmePath:
    steps: list[Step] = field(default_factory=list)
    new_shell: list[str] = field(default_factory=list)  # what each new shell runs first


def readme_path(text: str) -> ReadmePath:
    """The section's commands, in order, by the conventions above."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start:end if end > 0 else len(text)]
    path = ReadmePath()
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if lines and lines[0].startswith("#") and NEW_SHELL in lines[0]:
            path.new_shell = [line for line in lines if not line.startswith("#")]
            continue
        for line in lines:
            if line.startswith("#"):
                if CTRL_C in line:
                    path.steps.append(Step("ctrl-c"))
                continue
            commented = re.match(r"(.*?)\s+#\s(.*)$", line)
            command, comment = commented.groups() if commented else (line, "")
            kind = "background" if ANOTHER_SHELL in comment else "run"
            path.steps.append(Step(kind, command))
    return path


def test_the_readme_path_has_the_steps_a_newcomer_needs_in_order() -> None:
    path = readme_path((ROOT / "README.md").read_text())
    commands = [s.command for s in path.steps if s.command]

    positions = [next((i for i, c in enumerate(commands) if required in c), -1)
                 for required in REQUIRED]
    assert -1 not in positions, f"missing from the README path: {REQUIRED}, {commands}"
    assert positions == sorted(positions), f"out of order: {commands}"
    assert [s.command for s in path.steps if s.kind == "background"] == [
        "cdc run", "cdc consume firestore", "cdc consume audit"]
    assert any("cdc stack env" in line for line in path.new_shell)
    assert any(".venv" in line for line in path.new_shell), "how a new shell gets `cdc`"
    named = re.findall(r"`(cdc [a-z -]+?)`", NEXT_STEP)  # setup's last line agrees
    assert [c for c in commands if any(c.startswith(n) for n in named)] == named


# -- running it ---------------------------------------------------------------------

def base_env() -> dict[str, str]:
    """A person's shell on this machine: none of the test run's services or venv."""
    drop = ("PUBSUB_EMULATOR_HOST", "FIRESTORE_EMULATOR_HOST", "GOOGLE_CLOUD_PROJECT",
            "VIRTUAL_ENV", "PYTHONPATH", "PGPASSWORD")
    env = {k: v for k, v in os.environ.items()
           if k not in drop and not (k.startswith("CDC_") and k not in
                                     ("CDC_PG_BIN", "CDC_GCLOUD_PLATFORM"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if "/.venv/" not in p + "/")
    env["CDC_HTTP_PORT"] = "0"  # see the module's docstring
    return env


def fresh_copy(into: Path) -> Path:
    """The working tree's files (tracked and new, not ignored) as a new checkout."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    checkout = into / "checkout"
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    return checkout


def seed_venv(checkout: Path) -> None:
    """``.venv`` with this environment's packages on its path (see the docstring)."""
    subprocess.run([sys.executable, "-m", "venv", str(checkout / ".venv")], check=True)
    seeded = subprocess.run([str(checkout / ".venv/bin/python"), "-c",
                             "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    Path(seeded, "seeded-from-the-test-environment.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n")


class FirstShell:
    """One bash session: each command sees the environment the previous ones left."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self._envfile = cwd.parent / "shell.env"

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        script = f"{command}\n__rc=$?\nenv -0 > {self._envfile}\nexit $__rc\n"
        done = subprocess.run(["bash", "-c", script], cwd=self.cwd, env=self.env,
                              capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                              check=False)
        pairs = self._envfile.read_text().split("\0")
        self.env = dict(p.split("=", 1) for p in pairs if "=" in p)
        return done


@dataclass
class OtherShell:
    command: str
    process: subprocess.Popen[bytes]
    log: Path

    def said(self) -> str:
        return self.log.read_text(errors="replace")


def another_shell(checkout: Path, prepare: list[str], command: str) -> OtherShell:
    log = checkout.parent / f"{command.replace(' ', '_')}.log"
    script = "\n".join(["set -e", *prepare, f"exec {command}"])
    with log.open("wb") as out:
        process = subprocess.Popen(["bash", "-c", script], cwd=checkout, env=base_env(),
                                   stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    return OtherShell(command, process, log)


def wait_started(shell: OtherShell) -> None:
    marker = next(m for prefix, m in STARTED.items() if shell.command.startswith(prefix))
    deadline = time.monotonic() + START_TIMEOUT_S
    while marker not in shell.said():
        assert shell.process.poll() is None, f"{shell.command} exited:\n{shell.said()[-3000:]}"
        assert time.monotonic() < deadline, f"{shell.command} did not start:\n{shell.said()}"
        time.sleep(0.2)


def check(command: str, done: subprocess.CompletedProcess[str]) -> None:
    shown = f"$ {command}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
    assert done.returncode == 0, shown
    assert "Traceback" not in done.stderr, shown
    assert not [line for line in done.stderr.splitlines() if line.startswith("error:")], shown
    assert not [line for line in done.stderr.splitlines() if line.startswith("{")], \
        f"a JSON log line among the human output of a command a person runs:\n{shown}"
    for prefix, (stream, text) in EXPECTED.items():
        if command.startswith(prefix):
            assert text in (done.stdout if stream == "stdout" else done.stderr), shown


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="cdc-nc-"))  # short: Postgres's socket path
    yield path
    stack.stop(path / "checkout" / ".cdc-stack", remove=True)  # whatever the test left
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(900)
def test_a_newcomer_follows_the_readme_from_a_fresh_checkout(workdir: Path) -> None:
    checkout = fresh_copy(workdir)
    path = readme_path((checkout / "README.md").read_text())
    seed_venv(checkout)
    shell = FirstShell(checkout, base_env())
    others: list[OtherShell] = []
    try:
        for step in path.steps:
            if step.kind == "background":
                others.append(another_shell(checkout, path.new_shell, step.command))
                wait_started(others[-1])
            elif step.kind == "ctrl-c":
                for other in others:
                    other.process.send_signal(signal.SIGINT)
                for other in others:
                    assert other.process.wait(timeout=120) == 0, other.said()[-3000:]
                others = []
            else:
                check(step.command, shell.run(step.command))
                if step.command.startswith("source .venv/bin/activate"):
                    assert shutil.which("cdc", path=shell.env["PATH"]) == \
                        str(checkout / ".venv/bin/cdc")
                if "cdc stack up" in step.command:
                    assert shell.env.get("CDC_DATABASE_URL", "").startswith("postgresql://")
        assert not others, "the README never says to stop the other shells"
    finally:
        for other in others:
            if other.process.poll() is None:
                os.killpg(other.process.pid, signal.SIGKILL)
                other.process.wait(timeout=30)
