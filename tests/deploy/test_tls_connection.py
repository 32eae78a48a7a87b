"""The connection docs/deploy.md sets up, against a real Postgres: TLS with
sslmode=verify-full, a pg_hba.conf that lets cdc_reader in only over TLS, and the
password only in the passfile that deploy/systemd/cdc-pgpass writes.

The cluster is this test's own (TLS, its own pg_hba.conf); the emulators are the
session's.
"""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cdc.local import stack
from tests.services import SCHEMA_SQL, Services
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pa:ss\\wo rd"  # a passfile escapes both : and \


@dataclass
class TlsPostgres:
    port: int
    ca: Path
    admin_url: str


def make_certificates(directory: Path) -> None:
    """A CA, and a server certificate it signed for localhost and 127.0.0.1."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=test CA", "-keyout", "ca.key", "-out", "ca.crt")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt")


def as_postgres_files(data: Path, names: list[str]) -> None:
    for name in names:
        (data / name).chmod(0o600)
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(data / name, entry.pw_uid, entry.pw_gid)


@pytest.fixture
def tls_postgres(tmp_path: Path) -> Iterator[TlsPostgres]:
    state = tmp_path / "stack"
    state.mkdir()
    port = stack.free_port()
    stack.start_postgres(state, port)
    try:
        data = stack.data_dir(state)
        make_certificates(data)
        as_postgres_files(data, ["server.key", "server.crt"])
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE members")
        members = f"postgresql://postgres@127.0.0.1:{port}/members"
        with psycopg.connect(members, autocommit=True) as conn:
            conn.execute(SCHEMA_SQL)
        setup = subprocess.run(
            [str(stack.PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", members,
             "-f", str(ROOT / "sql" / "setup.sql")], capture_output=True, text=True,
            check=False)
        assert setup.returncode == 0, setup.stderr
        # the lines docs/deploy.md asks for: cdc_reader only over TLS, for its database
        (data / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "hostssl members cdc_reader 127.0.0.1/32 scram-sha-256\n")
        with psycopg.connect(members, autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER ROLE cdc_reader PASSWORD {}").format(sql.Literal(PASSWORD)))
            conn.execute("ALTER SYSTEM SET ssl = on")
            conn.execute("SELECT pg_reload_conf()")
        wait_for(lambda: _ssl_on(members), 30, "ssl = on after the reload")
        yield TlsPostgres(port, data / "ca.crt", members)
    finally:
        stack.stop_postgres(state)


def _ssl_on(url: str) -> bool:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW ssl").fetchone()
    return row is not None and row[0] == "on"


def write_passfile(tmp_path: Path) -> Path:
    """cdc-pgpass with a stand-in gcloud that returns the secret."""
    fake = tmp_path / "bin" / "gcloud"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' '{PASSWORD}'\n")
    fake.chmod(0o755)
    passfile = tmp_path / "run" / "pgpass"
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    subprocess.run([str(ROOT / "deploy" / "systemd" / "cdc-pgpass"), "cdc-db-password",
                    str(passfile)], env=env, check=True)
    return passfile


def cdc_env(url: str, passfile: Path, topic: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDC_", "PG"))}
    return {**env, "CDC_DATABASE_URL": url, "PGPASSFILE": str(passfile), "CDC_TOPIC": topic}


def healthz(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


def test_the_reader_streams_over_verify_full_tls_with_the_password_from_cdc_pgpass(
        tls_postgres: TlsPostgres, services: Services, tmp_path: Path) -> None:
    passfile = write_passfile(tmp_path)
    url = (f"postgresql://cdc_reader@localhost:{tls_postgres.port}/members"
           f"?sslmode=verify-full&sslrootcert={tls_postgres.ca}")
    env = cdc_env(url, passfile, f"tls-{os.getpid()}")
    setup = subprocess.run([sys.executable, "-m", "cdc", "setup"], env=env,
                           capture_output=True, text=True, timeout=120, check=False)
    assert setup.returncode == 0, setup.stderr
    port = stack.free_port()
    reader = subprocess.Popen([sys.executable, "-m", "cdc", "run", "--http-port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: healthz(port).startswith("streaming"), 60, "a streaming reader")
        with psycopg.connect(tls_postgres.admin_url) as conn:
            row = conn.execute(
                "SELECT s.ssl FROM pg_stat_replication r JOIN pg_stat_ssl s USING (pid)"
                " WHERE r.usename = 'cdc_reader'").fetchone()
        assert row == (True,), "the replication connection is not encrypted"
    finally:
        reader.send_signal(signal.SIGTERM)
        assert reader.wait(timeout=90) == 0
    assert PASSWORD not in (reader.stderr.read().decode() if reader.stderr else "")


def test_a_server_whose_certificate_names_another_host_gets_no_connection(
        tls_postgres: TlsPostgres, tmp_path: Path) -> None:
    passfile = write_passfile(tmp_path)
    # the right address, the wrong name: verify-full refuses before sending the password
    url = (f"postgresql://cdc_reader@db.example.org:{tls_postgres.port}/members"
           f"?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={tls_postgres.ca}")
    result = subprocess.run([sys.executable, "-m", "cdc", "status"],
                            env=cdc_env(url, passfile, "unused"), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "does not match host name" in result.stderr
    assert PASSWORD not in result.stdout + result.stderr


def test_cdc_reader_without_tls_is_refused(tls_postgres: TlsPostgres, tmp_path: Path) -> None:
    passfile = write_passfile(tmp_path)
    url = f"postgresql://cdc_reader@localhost:{tls_postgres.port}/members?sslmode=disable"
    result = subprocess.run([sys.executable, "-m", "cdc", "status"],
                            env=cdc_env(url, passfile, "unused"), capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "no pg_hba.conf entry" in result.stderr
