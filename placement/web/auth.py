"""Who may read the status page: whoever holds the cluster's token.

With Ray's token authentication on (Ray 2.60's default for a local cluster), the page accepts the
cluster's own token, loaded the way Ray loads it (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token).
With it off (a cluster started without a token, the tests), the page is still not open: it makes its own
token, kept in a file only its owner may read beside the store, so a restarted service keeps the link.
A request carries the token as `Authorization: Bearer <token>`, or as the cookie that the `?token=` link sets.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

COOKIE = "placement-status-token"


def cluster_token() -> str | None:
    """The cluster's token if Ray's token authentication is on, else None."""
    from ray._raylet import AuthenticationMode, AuthenticationTokenLoader, get_authentication_mode

    if get_authentication_mode() != AuthenticationMode.TOKEN:
        return None
    loader = AuthenticationTokenLoader.instance()
    return loader.get_raw_token(ignore_auth_mode=True) if loader.has_token(ignore_auth_mode=True) else None


def own_token(path: Path) -> str:
    """The page's own token, made once (owner read/write only) and read back after a restart."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(token)
    return token


class PageAuth:
    """Checks a request's token against one secret, in constant time."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("the status page needs a non-empty token")
        self.token = token

    def allows(self, authorization: str | None, cookie_token: str | None) -> bool:
        offered = None
        if authorization and authorization.startswith("Bearer "):
            offered = authorization.removeprefix("Bearer ").strip()
        elif cookie_token:
            offered = cookie_token
        return self.check(offered)

    def check(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())
