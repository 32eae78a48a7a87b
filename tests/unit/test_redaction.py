"""The redaction layer: no password, kennitala, e-mail or row value gets through."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from urllib.parse import quote

import jsonschema
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from cdc.contract.events import json_schema
from cdc.telemetry import redaction
from cdc.telemetry.redaction import mask_kennitala, redact, register_dsn

# what a password may hold: the characters that break naive DSN parsing included
PASSWORD_CHARS = st.sampled_from(list("abcXYZ019%@:/'\" \\=&?#[]{}ðþ"))
passwords = st.text(PASSWORD_CHARS, min_size=6, max_size=24).filter(lambda p: p.strip() == p)
hosts = st.sampled_from(["db.example", "127.0.0.1", "[::1]", "[::1", "[zz]x", "h:abc",
                         "[2001:db8::1]:5432"])
users = st.sampled_from(["cdc_reader", "u", "ja%20n"])
wrappers = st.sampled_from([
    "{dsn}",
    'end of string reached when looking for matching "]" in IPv6 host address in URI: "{dsn}"',
    "cannot connect to the source database: {dsn} — check CDC_DATABASE_URL",
    "{dsn}\nsecond line {dsn}",
])
kennitalas = st.text(st.sampled_from("0123456789"), min_size=10, max_size=10)


@contextlib.contextmanager
def fresh_secrets() -> Iterator[None]:
    """Registered secrets live for the process: keep the tests' own out of the others."""
    saved = set(redaction._SECRETS)
    redaction._SECRETS.clear()
    try:
        yield
    finally:
        redaction._SECRETS.clear()
        redaction._SECRETS.update(saved)


def uri(user: str, password: str, host: str, encode: bool) -> str:
    secret = quote(password, safe="") if encode else password
    return f"postgresql://{user}:{secret}@{host}/members?sslmode=prefer"


def ambiguous(password: str) -> bool:
    """A raw password with a space and a URI scheme in it: only registration removes it."""
    return " " in password and re.search(r"[A-Za-z][A-Za-z0-9+.\-]*://", password) is not None


@given(users, passwords, hosts, st.booleans(), wrappers)
def test_a_dsn_password_in_any_text_never_survives(user: str, password: str, host: str,
                                                   encode: bool, wrapper: str) -> None:
    dsn = uri(user, password, host, encode)
    text = wrapper.format(dsn=dsn)
    assume(password not in text.replace(dsn, ""))
    assume(encode or not ambiguous(password))
    out = redact(text)
    assert password not in out
    assert quote(password, safe="") not in out


@given(users, passwords, hosts, st.booleans(), wrappers)
def test_a_registered_dsn_password_never_survives_in_any_text(
        user: str, password: str, host: str, encode: bool, wrapper: str) -> None:
    dsn = uri(user, password, host, encode)
    text = wrapper.format(dsn=dsn)
    assume(password not in text.replace(dsn, ""))
    with fresh_secrets():
        register_dsn(dsn)
        out = redact(text)
    assert password not in out
    assert quote(password, safe="") not in out


@given(passwords, st.sampled_from(["host=h port=5432 password={pw} dbname=members",
                                   "password = {pw}",
                                   "connection info: password={pw} user=cdc_reader"]))
def test_a_conninfo_password_quoted_the_libpq_way_never_survives(password: str,
                                                                 form: str) -> None:
    escaped = password.replace("\\", "\\\\").replace("'", "\\'")
    text = form.format(pw=f"'{escaped}'")
    assume(password not in form)
    out = redact(text)
    assert password not in out and escaped not in out


@given(st.text(st.sampled_from("abcXYZ019_-!"), min_size=6, max_size=24))
def test_an_unquoted_conninfo_password_never_survives(password: str) -> None:
    assert password not in redact(f"host=h password={password} dbname=members")


@given(users, passwords, hosts, st.booleans())
def test_a_registered_dsn_password_is_removed_even_when_libpq_quotes_it_alone(
        user: str, password: str, host: str, encode: bool) -> None:
    dsn = uri(user, password, host, encode)
    token = quote(password, safe="") if encode else password
    with fresh_secrets():
        register_dsn(dsn)
        for text in (f'invalid percent-encoded token: "{token}"',
                     f"password {password} refused", f"failed to resolve host '{password}'"):
            out = redact(text)
            assert password not in out
            assert quote(password, safe="") not in out


def test_the_host_libpq_reads_out_of_an_unencoded_at_sign_is_masked() -> None:
    with fresh_secrets():
        register_dsn("postgresql://u:first@secondpart@db.example/members")
        out = redact("failed to resolve host 'secondpart@db.example': Name or service not known")
    assert "secondpart" not in out and "first" not in out


def test_pgpassword_is_registered_with_the_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "from-the-environment")
    with fresh_secrets():
        register_dsn("host=db.example dbname=members")
        assert "from-the-environment" not in redact("auth failed: from-the-environment")


def test_a_user_name_alone_is_no_secret() -> None:
    assert redact("write postgresql://cdc_reader@db.example:5432/members") == (
        "write postgresql://cdc_reader@db.example:5432/members")


@given(kennitalas, st.sampled_from(["members/{k}", "{k6}-{k4}", "Document \"projects/p/databases/"
                                    "(default)/documents/members/{k}\" not found", "ssn={k}"]))
def test_a_kennitala_is_masked_in_a_document_path_and_anywhere_else(kennitala: str,
                                                                    form: str) -> None:
    text = form.format(k=kennitala, k6=kennitala[:6], k4=kennitala[6:])
    out = redact(text)
    assert kennitala not in out.replace("-", "")
    assert f"{kennitala[:6]}-****" in out


def test_event_ids_are_not_mistaken_for_kennitalas() -> None:
    assert mask_kennitala("event 00000016B374D848-0000000003") == (
        "event 00000016B374D848-0000000003")


def test_an_email_address_keeps_only_its_domain_but_a_service_account_stays() -> None:
    assert redact("duplicate key: (email)=(jon.jonsson@example.is)") == (
        "duplicate key: (email)=(****@example.is)")
    sa = "cdc@my-project.iam.gserviceaccount.com lacks pubsub.topics.publish"
    assert redact(sa) == sa


rows = st.fixed_dictionaries({
    "id": st.integers(1, 10**6),
    "ssn": kennitalas,
    # a non-ASCII letter: no rule text of the schema can contain the value by chance
    "name": st.builds("{}ð{}".format, st.text(min_size=2, max_size=12),
                      st.text(max_size=12)),
    "street_address": st.builds("{}þ{}".format, st.text(min_size=2, max_size=12),
                                st.text(max_size=12)),
})


@given(rows, st.sampled_from(["before", "key", "commit_time", "seq", "op", "xid"]))
def test_a_jsonschema_message_of_an_older_dead_letter_loses_the_row_it_quoted(
        row: dict[str, object], spoiled: str) -> None:
    body: dict[str, object] = {
        "id": "0000000000000001-0000000000", "op": "c", "schema": "public",
        "table": "membership_comrade", "key": {"id": row["id"]}, "before": None,
        "after": row, "lsn": "0/1", "seq": 0, "xid": 1,
        "commit_time": "2026-01-01T00:00:00.000000Z"}
    body[spoiled] = row if spoiled != "key" else [row]
    error = next(iter(jsonschema.Draft202012Validator(json_schema()).iter_errors(body)))
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    out = redact(f"event fails the JSON Schema: {where}: {error.message}")
    for value in (row["name"], row["street_address"], row["ssn"]):
        assert str(value) not in out
    assert out.startswith(f"event fails the JSON Schema: {where}: <value> ")
