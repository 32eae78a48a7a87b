"""`systemd-analyze verify`, offline: no running systemd is needed, only a root with
the system's own units, the units to check, and a stand-in for each program they
start (verify refuses an ExecStart= that is not executable)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def exec_programs(unit_text: str) -> list[str]:
    return [line.partition("=")[2].split()[0] for line in unit_text.splitlines()
            if line.startswith("ExecStart=")]


def verify_units(tmp_path: Path, units: dict[str, str], names: list[str]) -> str:
    """Everything systemd-analyze says about ``names`` (empty: nothing to find).

    ``units`` maps file names to their text; ``names`` are the units to verify
    (a template's instance, e.g. ``cdc-run@8080.service``).
    """
    tool = shutil.which("systemd-analyze")
    if tool is None or not SYSTEM_UNITS.is_dir():
        pytest.fail("systemd-analyze is missing: apt-get install systemd", pytrace=False)
    root = tmp_path / "root"
    shutil.copytree(SYSTEM_UNITS, root / SYSTEM_UNITS.relative_to("/"), symlinks=True)
    unit_dir = root / "etc" / "systemd" / "system"
    unit_dir.mkdir(parents=True)
    for name, text in units.items():
        (unit_dir / name).write_text(text)
        for program in exec_programs(text):
            stand_in = root / program.lstrip("/")
            stand_in.parent.mkdir(parents=True, exist_ok=True)
            stand_in.write_text("#!/bin/sh\n")
            stand_in.chmod(0o755)
    result = subprocess.run([tool, "verify", f"--root={root}", *names], cwd=unit_dir,
                            capture_output=True, text=True, timeout=120, check=False)
    # unknown keys and bad values are only warnings: any output is a finding
    return f"exit {result.returncode}: {result.stdout}{result.stderr}" if (
        result.returncode or result.stdout or result.stderr) else ""
