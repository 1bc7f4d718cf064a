"""What every command group of the `placement` command line shares: the Typer app, the consoles, the options,
and how a failure becomes one error line and an exit status (see `placement.cli`).

`service_handle` and `ask` are the one boundary to the running service; the commands call them through this
module (`common.ask(...)`), so a test can put an engine in the service's place there.
"""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NoReturn, Optional, TypeVar

import click
import typer
from rich.console import Console
from rich.text import Text

from placement.errors import ServiceError, ServiceUnavailable
from placement.model import Tier

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Place ML jobs on on-prem nodes, a private pool or public clouds, under spend caps.")
# Piped output (CI logs, `| less`) gets a wide table rather than Rich's 80-column default.
_WIDTH = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 180
out = Console(highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False, width=_WIDTH)

Files = Annotated[list[Path], typer.Argument(help="Job spec files or directories (YAML, multi-document allowed).")]
InventoryOpt = Annotated[Optional[Path], typer.Option("--inventory", help="On-prem inventory and private pools "
                                                      "(default: configs/inventory.yaml).")]
CatalogOpt = Annotated[Optional[list[Path]], typer.Option("--catalog", help="SkyPilot catalog directory "
                                                          "(<cloud>/vms.csv); repeatable. Default: SkyPilot's own "
                                                          "catalogs where present, then the shipped snapshot.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


UNAVAILABLE_EXIT = 3


def print_error(message: str) -> None:
    """`error: <message>` on stderr, the message as plain text (brackets in it are not markup)."""
    err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


R = TypeVar("R")


def guarded(fn: Callable[[], R]) -> R:
    """Run a command body; every failure becomes its error line(s) and an exit status."""
    from placement.yamlio import ConfigError

    try:
        return fn()
    except (typer.Exit, click.exceptions.ClickException, click.exceptions.Abort):
        raise
    except ConfigError as exc:
        for error in exc.errors:
            print_error(str(error))
        err.print(f"{len(exc.errors)} error(s); nothing was accepted.")
        raise typer.Exit(1) from None
    except ServiceUnavailable as exc:
        fail(str(exc), UNAVAILABLE_EXIT)
    except ServiceError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except sqlite3.Error as exc:
        fail(f"the store: {exc}")
    except (OSError, ValueError) as exc:
        fail(str(exc) or type(exc).__name__)
    except Exception as exc:
        if os.environ.get("PLACEMENT_DEBUG"):
            raise
        first = str(exc).strip().splitlines()[:1]
        fail(f"unexpected {type(exc).__name__}{': ' + first[0] if first else ''} (PLACEMENT_DEBUG=1 shows "
              "the traceback)")


def handled(command: Callable[..., R]) -> Callable[..., R]:
    """A command whose failures `guarded` answers (for commands without a `guarded` body)."""
    @functools.wraps(command)
    def run(*args, **kwargs) -> R:
        return guarded(lambda: command(*args, **kwargs))
    return run


def tier_list(tiers: list[str] | None) -> list[Tier] | None:
    if not tiers:
        return None
    try:
        return [Tier(t) for t in tiers]
    except ValueError:
        raise ValueError(f"unknown tier in {tiers}; valid: {', '.join(t.value for t in Tier)}") from None


PolicyOpt = Annotated[str, typer.Option(help="Built-in policy name or a policy file.")]
EnvOpt = Annotated[Optional[list[str]], typer.Option("--env", help="KEY=VALUE for every task's envs (as `sky launch "
                                                     "--env`); KEY alone takes this shell's value. Repeatable.")]
EnvFileOpt = Annotated[Optional[Path], typer.Option("--env-file", help="A dotenv file of KEY=VALUE lines for every "
                                                    "task's envs; --env wins over it.")]


def env_values(env: list[str] | None, env_file: Path | None) -> dict[str, str]:
    """`--env-file` then `--env` values, as SkyPilot merges them (`--env` wins)."""
    values: dict[str, str] = {}
    if env_file is not None:
        from dotenv import dotenv_values

        if not env_file.is_file():
            raise ValueError(f"--env-file {env_file}: no such file")
        values |= {k: v or "" for k, v in dotenv_values(env_file).items()}
    for item in env or ():
        key, sep, value = item.partition("=")
        if not sep:
            if key not in os.environ:
                raise ValueError(f"--env {key}: no value given and none in this shell's environment; valid: "
                                 "KEY=VALUE, or KEY with KEY set in the shell")
            value = os.environ[key]
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"--env {item}: {key!r} is not an environment variable name; valid: letters, digits "
                             "and _, not starting with a digit (e.g. HF_TOKEN=...)")
        values[key] = value
    return values


AddressOpt = Annotated[Optional[str], typer.Option("--address", help="Ray cluster address (default: RAY_ADDRESS, "
                                                   "else the cluster `placement up` started).")]


def service_handle(address: str | None):
    """The running service (`placement.client.service`): attached to its Ray cluster, or ServiceUnavailable."""
    from placement.client import service

    return service(address)


def ask(method, *args):
    """Call the service; what it cannot or will not answer raises ServiceUnavailable / ServiceError."""
    from placement.client import call

    return call(method, *args)

