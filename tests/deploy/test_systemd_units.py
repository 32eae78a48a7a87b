"""deploy/systemd: the units pass `systemd-analyze verify`, are hardened, restart the
processes and give them time to stop cleanly, keep the password out of unit files,
and cdc-pgpass writes a passfile libpq can read."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.deploy.unit_verification import verify_units

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
CDC_UNITS = ["cdc-run@.service", "cdc-consume-firestore.service", "cdc-consume-audit.service",
             "cdc-consume-roster.service", "cdc-writeback.service"]
SERVED = [*CDC_UNITS, "cdc-dashboard.service"]


def directives(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        if "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    units = {path.name: path.read_text() for path in SYSTEMD.glob("*.service")}
    names = ["cdc-run@8080.service", "cdc-consume-firestore.service",
             "cdc-consume-audit.service", "cdc-consume-roster.service", "cdc-pgpass.service",
             "cdc-dashboard.service", "cdc-writeback.service"]
    assert verify_units(tmp_path, units, names) == ""


@pytest.mark.parametrize("unit", SERVED)
def test_each_process_runs_hardened_as_a_user_of_its_own(unit: str) -> None:
    found = directives(unit)
    for key, value in [("DynamicUser", "yes"), ("NoNewPrivileges", "yes"),
                       ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("CapabilityBoundingSet", "")]:
        assert found.get(key) == [value], key


@pytest.mark.parametrize("unit", CDC_UNITS)
def test_each_process_restarts_and_has_time_to_stop_cleanly(unit: str) -> None:
    found = directives(unit)
    assert found["Restart"] == ["always"]
    assert found["RestartPreventExitStatus"] == ["2"]  # a setting to fix: restarting won't help
    # cdc run drains for up to 30 s after SIGTERM (ReaderOptions.drain_timeout_s)
    assert int(found["TimeoutStopSec"][0]) >= 45
    assert "--http-port" in found["ExecStart"][0]


def test_the_two_readers_differ_only_by_their_port() -> None:
    found = directives("cdc-run@.service")
    assert found["ExecStart"] == ["/opt/member-cdc/bin/cdc run --http-port %i"]


@pytest.mark.parametrize("unit", ["cdc-run@.service", "cdc-writeback.service"])
def test_the_database_password_reaches_a_process_as_a_credential_never_in_a_unit(
        unit: str) -> None:
    found = directives(unit)
    assert found["LoadCredential"] == ["pgpass:/run/member-cdc/pgpass"]
    assert found["Environment"] == ["PGPASSFILE=%d/pgpass"]
    assert "cdc-pgpass.service" in found["After"][0]
    for path in SYSTEMD.glob("*.service"):
        text = path.read_text()
        assert not re.search(r"PGPASSWORD|postgres(ql)?://[^@\s]*:[^@\s]*@", text), path.name
    example = (SYSTEMD / "cdc.env.example").read_text()
    url = re.search(r'^CDC_DATABASE_URL="(\S+)"$', example, re.MULTILINE)
    assert url is not None
    assert "sslmode=verify-full" in url.group(1)
    assert re.match(r"postgresql://[^:@]+@", url.group(1)), "no password in the URL"


def test_cdc_pgpass_writes_an_escaped_passfile_only_its_owner_can_read(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$*" = "secrets versions access latest --secret=db-pw '
                    '--quiet" ] || { echo "unexpected: $*" >&2; exit 9; }\n'
                    "printf 'pa:ss\\\\wo rd\\n'\n")
    fake.chmod(0o755)
    passfile = tmp_path / "run" / "pgpass"
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    result = subprocess.run([str(SYSTEMD / "cdc-pgpass"), "db-pw", str(passfile)], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    # libpq: host:port:database:username:password, with \ and : escaped by a backslash
    assert passfile.read_text() == "*:*:*:*:pa\\:ss\\\\wo rd\n"
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    assert result.stdout + result.stderr == ""


def test_cdc_pgpass_refuses_an_empty_secret(tmp_path: Path) -> None:
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\nprintf '\\n'\n")
    fake.chmod(0o755)
    passfile = tmp_path / "pgpass"
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    result = subprocess.run([str(SYSTEMD / "cdc-pgpass"), "db-pw", str(passfile)], env=env,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "db-pw is empty" in result.stderr
    assert not passfile.exists()
