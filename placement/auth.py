"""Ray token authentication, kept where Ray itself looks for it.

Ray 2.60 reads its token from `RAY_AUTH_TOKEN`, else the file named by
`RAY_AUTH_TOKEN_PATH`, else `~/.ray/auth_token`; a process sends it (gRPC and
the dashboard's HTTP API) only when `RAY_AUTH_MODE=token` is in its
environment. `ray start` turns auth on only if a token file already exists, so
the CLI makes sure one does (mode 0600, written with O_EXCL so a file planted
by someone else is never trusted) and turns token mode on for itself and
every Ray process it starts. `RAY_AUTH_MODE=disabled`, set by the operator,
is respected: it is their explicit choice.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

MODE_ENV, TOKEN_ENV, TOKEN_PATH_ENV = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"


class AuthError(RuntimeError):
    """The token cannot be made or trusted; the message says which file and why."""


def token_path() -> Path:
    return Path(os.environ.get(TOKEN_PATH_ENV) or Path.home() / ".ray" / "auth_token").expanduser()


def auth_disabled() -> bool:
    return os.environ.get(MODE_ENV, "").lower() == "disabled"


def ensure_token() -> Path | None:
    """Make sure a token exists (generating a 256-bit one, mode 0600) and token mode is on in this process.

    Returns the token file, or None where the token comes from `RAY_AUTH_TOKEN` or auth is disabled.
    A token file that others can read is refused, not silently used.
    """
    if auth_disabled():
        return None
    os.environ[MODE_ENV] = "token"
    _refresh_ray_config()
    if os.environ.get(TOKEN_ENV):
        return None
    path = token_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise AuthError(f"the Ray token file {path} can be read by others (mode {mode:o}); "
                            f"run `chmod 600 {path}`") from None
        if not path.read_text().strip():
            raise AuthError(f"the Ray token file {path} is empty; remove it and run `placement up` again")
        return path
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32))
    return path


def token() -> str:
    """The token this process presents (for a client that builds its own HTTP request)."""
    return os.environ.get(TOKEN_ENV) or token_path().read_text().strip()


def _refresh_ray_config() -> None:
    """Ray caches its config (auth mode included) at import; a process that imported it first must re-read it."""
    import sys

    if "ray._raylet" in sys.modules:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()
