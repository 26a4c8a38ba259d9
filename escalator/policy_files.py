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


class _DuplicateKey(yaml.MarkedYAMLError):
    """A mapping names the same key twice."""


class _PolicyLoader(yaml.SafeLoader):
    """yaml.SafeLoader, stricter where PyYAML is silent or crashes.

    - A key given twice in one mapping is an error: PyYAML keeps the last one, so a
      second `notify:` would silently drop the first list of recipients.
    - A date-shaped value that is no date (`2026-13-45`) stays a string, so the
      policy's own validation names the field; PyYAML raises a bare ValueError.
    """

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: set = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # `<<: *defaults`: its keys may be overridden here
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable; construct_mapping reports it
                    continue
                if duplicate:
                    raise _DuplicateKey(
                        problem=f"duplicate key {key!r}; give each key once",
                        problem_mark=key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_timestamp(self, node):
        try:
            return super().construct_yaml_timestamp(node)
        except ValueError:
            return self.construct_scalar(node)


_PolicyLoader.add_constructor("tag:yaml.org,2002:timestamp", _PolicyLoader.construct_yaml_timestamp)


def parse_policy_text(text: str, *, source: str = "<policy>") -> Policy:
    """Parse YAML (JSON is YAML too) holding either `escalation: {...}` or the mapping itself."""
    try:
        document = yaml.load(text, Loader=_PolicyLoader)  # a SafeLoader: no object tags
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyError(f"{source}: {where}{problem}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        # PyYAML's constructors can raise these for odd scalars; never a traceback.
        raise PolicyError(f"{source}: not valid YAML ({' '.join(str(exc).split())})") from None
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
