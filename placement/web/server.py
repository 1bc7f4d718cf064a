"""A small read-only HTTP server for the status page, run on a thread of the service actor.

It binds to 127.0.0.1 only (an operator on another machine tunnels, as for the Ray dashboard), answers
GET and nothing else, and every request must carry the token (`placement.web.auth`). Ray Serve would
bring a proxy and a controller actor for one page; the standard library's threaded server is enough.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from placement.web.auth import COOKIE, PageAuth

log = logging.getLogger(__name__)
HOST = "127.0.0.1"
_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:"}


class StatusPageServer:
    """Serves `render()` at `/` to requests with the token; `port` 0 picks a free one."""

    def __init__(self, render: Callable[[], str], auth: PageAuth, port: int) -> None:
        self._render, self._auth = render, auth
        try:
            self._server = ThreadingHTTPServer((HOST, port), self._handler())
        except OSError as exc:
            if port == 0:
                raise
            log.warning("status page: port %d is taken (%s); serving on a free port instead", port, exc)
            self._server = ThreadingHTTPServer((HOST, 0), self._handler())
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="placement-status-page", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_address[1]}/"

    def link(self) -> str:
        """The URL that logs a browser in (sets the cookie): for the operator who started the service."""
        return f"{self.url}?token={self._auth.token}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        render, auth = self._render, self._auth

        class Handler(BaseHTTPRequestHandler):
            server_version = "placement-status"

            def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
                url = urlsplit(self.path)
                if url.path != "/":
                    return self._reply(HTTPStatus.NOT_FOUND, "not found: the status page is at /")
                offered = parse_qs(url.query).get("token", [None])[0]
                if offered is not None:  # the link: set the cookie, then drop the token from the address bar
                    if not auth.check(offered):
                        return self._reply(HTTPStatus.FORBIDDEN, "forbidden: that token is not the cluster's")
                    return self._reply(HTTPStatus.SEE_OTHER, "", extra={
                        "Location": "/", "Set-Cookie": f"{COOKIE}={offered}; HttpOnly; SameSite=Strict; Path=/"})
                cookies = SimpleCookie(self.headers.get("Cookie") or "")
                if not auth.allows(self.headers.get("Authorization"), cookies[COOKIE].value if COOKIE in cookies
                                   else None):
                    return self._reply(HTTPStatus.UNAUTHORIZED,
                                       "unauthorized: send the cluster's token (Authorization: Bearer <token>), or "
                                       "open the link `placement up` printed", extra={"WWW-Authenticate": "Bearer"})
                try:
                    page = render()
                except Exception:
                    log.exception("status page failed to render")
                    return self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, "the page failed to render; see the "
                                       "service's log")
                self._reply(HTTPStatus.OK, page, content_type="text/html; charset=utf-8")

            def _refuse(self) -> None:
                self._reply(HTTPStatus.METHOD_NOT_ALLOWED, "read-only: only GET", extra={"Allow": "GET"})

            do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

            def _reply(self, status: HTTPStatus, body: str, content_type: str = "text/plain; charset=utf-8",
                       extra: dict[str, str] | None = None) -> None:
                data = body.encode()
                self.send_response(status)
                for name, value in {**_HEADERS, "Content-Type": content_type, "Content-Length": str(len(data)),
                                    **(extra or {})}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("status page: " + format, *args)

        return Handler
