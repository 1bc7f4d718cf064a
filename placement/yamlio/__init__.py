"""Safe YAML loading with source lines, and pydantic validation with file:line errors.

Job specs, policy files and inventory files all load through here, so a user sees
one kind of error everywhere, one line each:

    configs/jobs/a.yaml:12 (document 2): resources.accelerators: unknown GPU 'A1000'
    (given: 'A1000:8'); valid: a GPU name such as A100, H100, L4 ... Did you mean 'A100'?

Validators raise `Invalid` to fill in the parts of such a line; any other pydantic
error is translated (`parse_model`).

The package: `errors` (`FieldError`, `ConfigError`, `Invalid`: values the pure core may raise),
`loading` (safe YAML with lines and limits), `validation` (`parse_model`).
"""

from placement.yamlio.errors import ConfigError, FieldError, FieldPath, Invalid, PathKey, closest, format_path, show
from placement.yamlio.loading import (MAX_ALIASES, MAX_DEPTH, MAX_EXPANDED_BYTES, MAX_FILE_BYTES, MAX_NODES, Document,
                                      LimitError, check_data_limits, load_documents)
from placement.yamlio.validation import parse_model

__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_EXPANDED_BYTES", "MAX_FILE_BYTES", "MAX_NODES", "ConfigError", "Document",
           "FieldError", "FieldPath", "Invalid", "LimitError", "PathKey", "check_data_limits", "closest",
           "format_path", "load_documents", "parse_model", "show"]
