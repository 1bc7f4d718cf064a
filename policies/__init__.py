"""Placement policies: the model (`policies.model`) and the built-in policy files."""

from __future__ import annotations

from pathlib import Path

from policies.model import Policy

BUILTIN_DIR = Path(__file__).parent / "builtin"


def builtin_policy_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def load_policy(name_or_path: str | Path) -> Policy:
    """A built-in policy by name (`balanced`, `cost-first`, ...) or a policy file by path.

    Raises `placement.yamlio.ConfigError` (file, line, field) for a bad file, and
    `FileNotFoundError` naming the built-ins for an unknown name.
    """
    from placement.yamlio import ConfigError, FieldError, load_documents, parse_model

    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = BUILTIN_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise FileNotFoundError(
                f"no policy named {str(name_or_path)!r}; built-in policies: {', '.join(builtin_policy_names())}, "
                "or give the path of a policy file")
    documents = load_documents(path)
    if len(documents) != 1:
        raise ConfigError([FieldError(str(path), None, None, "", "a policy file holds exactly one YAML document",
                                      given=f"{len(documents)} documents", valid="one mapping with a `name:`")])
    return parse_model(Policy, documents[0])


__all__ = ["Policy", "load_policy", "builtin_policy_names", "BUILTIN_DIR"]
