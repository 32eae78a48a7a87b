"""``/livez``, ``/readyz``, ``/healthz`` and ``/metrics`` over HTTP, shared by
the reader and the consumers.

* ``/readyz``: 200 while the process does its work (the reader streams, a
  consumer settles batches), 503 with the reason otherwise. A readiness probe.
* ``/livez``: 200 while the process is alive, also when it is not ready: a
  standby ``cdc run`` waiting for the slot is alive, and restarting it would
  not help. A liveness probe.
* ``/healthz``: the same as ``/readyz``, as it always was.

The reason is redacted (cdc/telemetry/redaction.py): a failure's text may quote a
document path such as ``members/<kennitala>``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from cdc.errors import ConfigError
from cdc.telemetry.redaction import redact

# returns (healthy, one-line reason)
HealthCheck = Callable[[], tuple[bool, str]]


class HealthServer:
    """Serves the two endpoints on a daemon thread until :meth:`stop`."""

    def __init__(self, port: int, check: HealthCheck, registry: CollectorRegistry = REGISTRY,
                 host: str = "0.0.0.0", live: HealthCheck = lambda: (True, "alive")) -> None:
        handler = _handler({"/readyz": check, "/healthz": check, "/livez": live}, registry)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as exc:
            raise ConfigError(f"cannot serve /healthz and /metrics on {host}:{port}: "
                              f"{exc.strerror or exc}",
                              hint="is another cdc process using the port? pick a free one "
                                   "with --http-port (CDC_HTTP_PORT), or 0 for any") from exc
        self._thread = threading.Thread(target=self._server.serve_forever, name="http",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(checks: dict[str, HealthCheck],
             registry: CollectorRegistry) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            check = checks.get(self.path.split("?", 1)[0])
            if check is not None:
                ok, reason = check()
                self._send(200 if ok else 503, "text/plain", (redact(reason) + "\n").encode())
            elif self.path.startswith("/metrics"):
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, status: int, ctype: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler
