"""Who may see the dashboard. Pure.

Without ``CDC_DASHBOARD_TOKEN`` the dashboard binds to the loopback only
(127.0.0.1 by default), and anyone on the machine may read it. With a token
it may bind anywhere, and every request must carry the token, either

* as ``Authorization: Bearer <token>`` (scripts, ``curl``), or
* once, as ``?token=<token>`` in the address: the answer sets an HttpOnly,
  SameSite=Strict cookie and sends the browser to the same page without the
  token in its address bar (nor in its history).

The cookie holds an HMAC of the token, not the token. Every comparison is
constant-time (:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from cdc.errors import ConfigError

COOKIE = "cdc_dashboard"
TOKEN_VARIABLE = "CDC_DASHBOARD_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond this machine without a token (exit 2, with the fix)."""
    if not token and not is_loopback(host):
        raise ConfigError(
            f"the dashboard serves {host} only with a token",
            hint=f"set {TOKEN_VARIABLE} to a long random secret (e.g. `openssl rand -hex 32`), "
                 "or leave --host at 127.0.0.1")


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"cdc dashboard cookie", hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    set_cookie: str | None = None  # a Set-Cookie header to send (the token came in the query)


def judge(token: str | None, authorization: str | None, cookie_header: str | None,
          query: str) -> Verdict:
    """May this request see the dashboard? ``query`` is the raw query string."""
    if not token:
        return Verdict(True)
    bearer = authorization.removeprefix("Bearer ").strip() \
        if authorization and authorization.startswith("Bearer ") else None
    if bearer is not None and _same(bearer, token):
        return Verdict(True)
    given = parse_qs(query).get("token")
    if given and _same(given[0], token):
        return Verdict(True, f"{COOKIE}={cookie_value(token)}; HttpOnly; SameSite=Strict; "
                             "Path=/")
    cookie = _cookie(cookie_header)
    if cookie is not None and _same(cookie, cookie_value(token)):
        return Verdict(True)
    return Verdict(False)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _cookie(header: str | None) -> str | None:
    if not header:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None else None
