"""Reading policies from YAML files (and YAML/JSON text)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from escalator.errors import PolicyError, describe_validation_error
from escalator.policy import Policy

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"


def load_policy(path: str | Path) -> Policy:
    """Load `path`; every problem becomes one `PolicyError` line: `file: field: reason`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: file not found; pass an existing policy file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the file ({exc.__class__.__name__})") from None
    return parse_policy_text(text, source=str(path))


def parse_policy_text(text: str, *, source: str = "<policy>") -> Policy:
    """Parse YAML (JSON is YAML too) holding either `escalation: {...}` or the mapping itself."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyError(f"{source}: {where}{problem}") from None
    return parse_policy_document(document, source=source)


def parse_policy_document(document: Any, *, source: str = "<policy>") -> Policy:
    if isinstance(document, dict) and "escalation" in document:
        extra = sorted(set(document) - {"escalation"})
        if extra:
            raise PolicyError(f"{source}: {extra[0]}: unknown top-level key; only 'escalation'")
        document = document["escalation"]
        prefix = "escalation."
    else:
        prefix = ""
    if not isinstance(document, dict):
        raise PolicyError(
            f"{source}: escalation: expected a mapping with 'tiers'; see policies/default.yaml"
        )
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        message = describe_validation_error(exc)
        raise PolicyError(f"{source}: {prefix}{message}") from None
