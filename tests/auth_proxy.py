"""An authenticating reverse proxy on loopback, as an operator puts in front of a token-protected Ray dashboard
(KubeRay's and Ray's docs do the same with the `X-Ray-Authorization` header): a headless browser cannot type the
token into the dashboard's login prompt, so the tests reach the real dashboard through this instead. It forwards
GET requests and answers as the dashboard answered; nothing else is allowed through."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-encoding", "content-length"}


@contextmanager
def authenticating_proxy(upstream: str, token: str) -> Iterator[str]:
    """Serve `http://127.0.0.1:<port>` forwarding to `upstream` (host:port) with the token; yields the base URL."""

    class Forward(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            request = urllib.request.Request(f"http://{upstream}{self.path}",
                                             headers={"X-Ray-Authorization": f"Bearer {token}",
                                                      "Accept": self.headers.get("Accept", "*/*")})
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, headers, body = answer.status, answer.headers.items(), answer.read()
            except urllib.error.HTTPError as error:
                status, headers, body = error.code, error.headers.items(), error.read()
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
