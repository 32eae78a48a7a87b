"""The dashboard's HTTP side: the page, its static files and ``/api/status``.

Read-only: GET (and HEAD) only. Every file it serves ships inside the
package (cdc/dashboard/static/, no CDN). The collecting is
cdc/dashboard/collector.py's; who may look is cdc/dashboard/access.py's.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import orjson

from cdc.dashboard import access
from cdc.dashboard.collector import Collector
from cdc.errors import ConfigError

STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/dashboard.css": ("dashboard.css", "text/css; charset=utf-8"),
    "/static/uPlot.iife.min.js": ("uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/static/uPlot.min.css": ("uPlot.min.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def static_file(name: str) -> bytes:
    return (resources.files("cdc.dashboard") / "static" / name).read_bytes()


class DashboardServer:
    """Serves on a daemon thread until :meth:`stop`."""

    def __init__(self, host: str, port: int, collector: Collector, token: str | None) -> None:
        access.check_bind(host, token)
        files = {path: (static_file(name), ctype) for path, (name, ctype) in STATIC.items()}
        handler = _handler(collector, token, files)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve the dashboard on {host}:{port}: "
                              f"{exc.strerror or exc}",
                              hint="is another process using the port? pick a free one with "
                                   "--port (CDC_DASHBOARD_PORT)") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="dashboard",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> DashboardServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(collector: Collector, token: str | None,
             files: dict[str, tuple[bytes, str]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def version_string(self) -> str:
            return "cdc-dashboard"

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _answer(self, head: bool) -> None:
            url = urlsplit(self.path)
            verdict = access.judge(token, self.headers.get("Authorization"),
                                   self.headers.get("Cookie"), url.query)
            if not verdict.allowed:
                self._send(401, "text/plain; charset=utf-8",
                           b"this dashboard needs its token: open it as /?token=... once, "
                           b"or send Authorization: Bearer ...\n", head,
                           {"WWW-Authenticate": "Bearer"})
            elif verdict.set_cookie:  # drop the token from the address bar
                self._send(303, "text/plain; charset=utf-8", b"", head,
                           {"Set-Cookie": verdict.set_cookie, "Location": url.path or "/"})
            elif url.path == "/api/status":
                body = orjson.dumps(collector.status())
                self._send(200, "application/json", body, head)
            elif url.path in files:
                body, ctype = files[url.path]
                self._send(200, ctype, body, head)
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found\n", head)

        def _send(self, status: int, ctype: str, body: bytes, head: bool,
                  extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            headers: dict[str, Any] = {**SECURITY_HEADERS, "Content-Type": ctype,
                                       "Content-Length": str(len(body)), **(extra or {})}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # no access log: the query may hold the token

    return Handler
