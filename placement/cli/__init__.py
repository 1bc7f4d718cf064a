"""The `placement` command line: validate specs, list offers, print the spec schema, plan what-ifs.

Every command answers a failure with one line (or the file:line lines of
`placement.yamlio`) on stderr and a non-zero exit status, never a traceback:
1 for what the user gave or the service refused, 3 for a service or cluster that
cannot be reached, 130 when interrupted. PLACEMENT_DEBUG=1 shows tracebacks of
unexpected errors.

The commands live by group: `specs` (validate, schema, offers, estimate, plan), `cluster` (up, sky-setup,
down), `service` (submit, status, spend, load, explain, debt, cancel, logs), and `placement.replay.command`;
`common` holds the app, the consoles, the options and the error handling they share.
"""

from __future__ import annotations

# Each group registers its commands on `app` as it is imported, in the order `--help` lists them.
from placement.cli import specs  # noqa: F401, I001
from placement.cli import cluster  # noqa: F401, I001
from placement.cli import service  # noqa: F401, I001
from placement.cli.common import app
from placement.replay.command import replay  # the command lives with its package

app.command("replay")(replay)

__all__ = ["app", "main"]


def main() -> None:
    app()
