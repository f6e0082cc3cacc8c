"""The live dashboard server (standard library ``http.server``), bound to 127.0.0.1 by default.

Routes (GET/HEAD only):

* ``/``: the page; ``/plotly.min.js``: plotly.js from the installed ``plotly`` package;
* ``/api/version``: a cheap change marker the page polls;
* ``/api/front.json``, ``/api/views.json``: the two parts of the payload (rebuilt only
  when the study changed); their ``Server-Timing`` header gives the server's time per
  stage (read, shape, figures, json, total) in milliseconds;
* ``/api/trial/<number>.json``: one trial's detail.

A store that cannot be read at a moment (a database error) answers 503 and the page
retries; the server never writes to the store.
"""

from __future__ import annotations

import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from plotly.io.json import to_json_plotly

from hadanas._logging import get_logger
from hadanas.dashboards._app import Dashboard
from hadanas.dashboards._page import page_html

__all__ = ["DashboardServer", "make_server", "is_loopback"]

log = get_logger(__name__)


def is_loopback(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


class _Handler(BaseHTTPRequestHandler):
    server: DashboardServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if ctype != "text/javascript" else "max-age=86400")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json_error(self, status: int, message: str) -> None:
        self._send(status, to_json_plotly({"error": message}).encode(), "application/json")

    def do_HEAD(self) -> None:  # noqa: N802 (stdlib name)
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        path = urlsplit(self.path).path
        app = self.server.app
        if not self.server.host_allowed(self.headers.get("Host", "")):
            # a page elsewhere that rebinds its DNS name to 127.0.0.1 must not read the study
            self._json_error(403, "this dashboard answers only to the address it is bound to")
            return
        try:
            if path in ("/", "/index.html"):
                self._send(200, self.server.page, "text/html; charset=utf-8")
            elif path == "/plotly.min.js":
                self._send(200, self.server.plotly_js(), "text/javascript")
            elif path == "/api/version":
                self._send(200, to_json_plotly(app.version()).encode(), "application/json")
            elif path in ("/api/front.json", "/api/views.json"):
                t0 = time.perf_counter()
                version, body, timings = app.front() if path == "/api/front.json" else app.views()
                timings["total"] = time.perf_counter() - t0
                st = ", ".join(f"{k};dur={v * 1000:.1f}" for k, v in timings.items() if k != "cached")
                if "cached" in timings:
                    st += ', cache;desc="unchanged study"'
                self._send(200, body, "application/json", {"Server-Timing": st})
            elif path.startswith("/api/trial/") and path.endswith(".json"):
                raw = path[len("/api/trial/"): -len(".json")]
                if not raw.isdigit():
                    self._json_error(404, f"no trial '{raw}'")
                    return
                try:
                    body = app.trial(int(raw))
                except KeyError:
                    self._json_error(404, f"no trial {raw} in study '{app.study}'")
                    return
                self._send(200, body, "application/json")
            else:
                self._json_error(404, f"no such page: {path}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # a store error must not kill the server: the page retries
            log.warning("dashboard request %s failed: %s: %s", path, type(exc).__name__, exc)
            try:
                self._json_error(int(HTTPStatus.SERVICE_UNAVAILABLE),
                                 f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            except OSError:
                pass


class DashboardServer(ThreadingHTTPServer):
    """A threading HTTP server around one :class:`Dashboard`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, app: Dashboard, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.page = page_html(f"hadanas — {app.study}", None,
                              {"live": True, "interval_ms": int(app.interval_s * 1000)},
                              None).encode()
        self._plotly: bytes | None = None
        self._plotly_lock = threading.Lock()
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def plotly_js(self) -> bytes:
        with self._plotly_lock:
            if self._plotly is None:
                from plotly.offline import get_plotlyjs

                self._plotly = get_plotlyjs().encode()
            return self._plotly

    def host_allowed(self, host_header: str) -> bool:
        """On a loopback address, only requests naming a loopback host (DNS rebinding)."""
        if not is_loopback(str(self.server_address[0])):
            return True
        host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
        return host.strip("[]") in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        h = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{h}:{port}/"


def make_server(app: Dashboard, host: str = "127.0.0.1", port: int = 0) -> DashboardServer:
    """A server for ``app`` (port 0 picks a free port; see ``.url``). Call ``serve_forever``."""
    return DashboardServer(app, host, port)
