"""Reading policies from YAML files (and YAML/JSON text).

Policy files are read as YAML 1.2 (ruamel.yaml), so they mean what they say:

- No base-60 numbers: `first_response: 1:30` is the text "1:30", which the duration
  parser refuses as ambiguous (YAML 1.1, and so PyYAML, read it as 90 *seconds*).
- Only `true` and `false` are booleans; `yes`, `no`, `on` and `off` are text.
- `010` is ten (octal is written `0o10`); `1e3` is a number.
- A `%YAML` directive other than `%YAML 1.2` is refused rather than obeyed.
- Safe: no object tags. Only the core tags (str, int, float, bool, null, map, seq)
  and timestamps may appear; `!!python/object`, `!!binary`, `!!set`, custom tags and
  the like are errors.
- A key given twice in one mapping is an error (first occurrence named); `<<` merge
  keys work (`<<: *defaults`, or a list of them), and a key written next to `<<`
  overrides the merged one, as YAML specifies.
- JSON's escapes for characters beyond U+FFFF (a surrogate pair such as
  "\\ud83d\\ude00") are joined into the one character, as a JSON reader would; a lone
  half is an error.
- A date-shaped value that is no date (`2026-13-45`) stays text, so the policy's own
  validation names the field and says how to write a date.
- Aliases may not refer to themselves, and a document may expand to at most
  MAX_VALUES values, so a "billion laughs" file is refused instead of validated.

Every problem is one `PolicyError` line, `file:line:column: field: reason`, e.g.

    policies/x.yaml:7:24: escalation.tiers[0].sla.first_response: '1:30' is ambiguous ...

The line and column (both from 1) are those of the deepest node that exists for the
field pydantic names: the value itself when it is there, else the mapping that lacks
the field; for an unknown field, its key. YAML syntax errors give the line and column
the parser stopped at. Text parsed without a file name (`parse_policy_text(text)`)
reads `<policy>, line 7, column 24: field: reason`. A problem with no place in the text
(an empty file, a file that cannot be read) is `file: reason`.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from escalator.domain.errors import Loc, PolicyError, field_path, first_problem
from escalator.domain.policy import Policy

DEFAULT_POLICY_PATH = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
DEFAULT_SOURCE = "<policy>"
MAX_VALUES = 100_000

_TAG = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"{_TAG}{t}" for t in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _MAP, _SEQ, _MERGE = (f"{_TAG}{t}" for t in ("timestamp", "map", "seq", "merge"))
_DIRECTIVE = re.compile(r"^%YAML[ \t]+(\S*)", re.MULTILINE)
_SURROGATE = re.compile("[\ud800-\udfff]")

# YAML 1.2 allows an anchor name to be defined again (an alias means the latest one);
# ruamel warns about it on stderr, which would break the one-line promise.
warnings.filterwarnings("ignore", category=ReusedAnchorWarning)

Mark = tuple[int, int]  # (line, column), both from 0 as ruamel counts them


def load_policy(path: str | Path) -> Policy:
    """Load `path`; every problem is one `PolicyError` line: `file:line:col: field: reason`."""
    return parse_policy_text(_read(Path(path)), source=str(path))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: file not found; pass an existing policy file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the file ({exc.__class__.__name__})") from None


def parse_policy_text(text: str, *, source: str = DEFAULT_SOURCE) -> Policy:
    """Parse YAML 1.2 (JSON is YAML too): `escalation: {...}` or the mapping itself."""
    yaml, root = _compose(text, source)
    document = _Builder(yaml, source).build(root)
    return _validate(document, root, source)


def parse_policy_document(document: Any, *, source: str = DEFAULT_SOURCE) -> Policy:
    """Validate an already parsed document (plain dicts and lists); errors name no line."""
    return _validate(document, None, source)


# -- messages ------------------------------------------------------------------------


def _where(source: str, mark: Mark | None) -> str:
    if mark is None:
        return f"{source}: "
    line, column = mark[0] + 1, mark[1] + 1
    if source == DEFAULT_SOURCE:
        return f"{source}, line {line}, column {column}: "
    return f"{source}:{line}:{column}: "


def _mark(node: Node) -> Mark:
    return (node.start_mark.line, node.start_mark.column)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _refuse(source: str, mark: Mark | None, path: Loc, reason: str) -> PolicyError:
    field = field_path(path)
    return PolicyError(_where(source, mark) + (f"{field}: {reason}" if field else reason))


# -- YAML text -> node tree ------------------------------------------------------------


def _compose(text: str, source: str) -> tuple[YAML, Node | None]:
    """The document's node tree (None for an empty document), read as YAML 1.2."""
    for directive in _DIRECTIVE.finditer(text):
        if directive.group(1) != "1.2":
            line = text.count("\n", 0, directive.start())
            raise PolicyError(
                f"{_where(source, (line, 0))}%YAML {directive.group(1)}: policy files are "
                "read as YAML 1.2; remove the %YAML line"
            )
    yaml = YAML(typ="safe", pure=True)  # a fresh one each time: it keeps parser state
    try:
        return yaml, yaml.compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = _where(source, (mark.line, mark.column) if mark else None)
        problem = exc.problem or exc.context or "not valid YAML"
        if exc.context and exc.problem and "expected a single document" in exc.context:
            problem = "more than one YAML document; a policy file holds one (remove the ---)"
        raise PolicyError(f"{where}{_one_line(problem)}") from None
    except ReaderError as exc:
        position = min(max(exc.position, 0), len(text))
        line = text.count("\n", 0, position)
        column = position - (text.rfind("\n", 0, position) + 1)
        reason = (
            f"unacceptable character #x{exc.character:04x}"
            if isinstance(exc.character, int)
            else "unacceptable character"
        )
        raise PolicyError(
            f"{_where(source, (line, column))}{reason}; a policy is plain UTF-8 text"
        ) from None
    except RecursionError:
        raise PolicyError(f"{source}: not valid YAML (nested too deeply)") from None
    except Exception as exc:  # the pure-Python parser can raise odd errors (AssertionError)
        raise PolicyError(
            f"{source}: not valid YAML ({_one_line(exc) or type(exc).__name__})"
        ) from None


# -- node tree -> plain dicts and lists ------------------------------------------------


class _Builder:
    """Turns ruamel nodes into plain Python values (dict, list, str, int, float, bool,
    None, date, datetime), refusing what a policy must not contain."""

    def __init__(self, yaml: YAML, source: str) -> None:
        self._constructor = yaml.constructor
        self._source = source
        self._done: dict[int, tuple[Any, int]] = {}  # id(node) -> (value, values inside)
        self._building: set[int] = set()

    def build(self, root: Node | None) -> Any:
        if root is None:
            return None
        try:
            return self._value(root, ())[0]
        except RecursionError:
            raise PolicyError(f"{self._source}: not valid YAML (nested too deeply)") from None

    def _fail(self, node: Node, path: Loc, reason: str) -> PolicyError:
        return _refuse(self._source, _mark(node), path, reason)

    def _value(self, node: Node, path: Loc) -> tuple[Any, int]:
        """(value, how many values it holds, counting every alias expansion)."""
        key = id(node)
        if key in self._done:  # an alias: the same node again
            return self._done[key]
        if key in self._building:
            raise self._fail(
                node,
                path,
                "an alias here refers to a value that contains it; a policy must not loop",
            )
        self._building.add(key)
        if isinstance(node, MappingNode):
            result = self._mapping(node, path)
        elif isinstance(node, SequenceNode):
            result = self._sequence(node, path)
        else:
            result = (self.scalar(node, path), 1)
        self._building.discard(key)
        if result[1] > MAX_VALUES:
            raise self._fail(
                node,
                path,
                f"the document expands to more than {MAX_VALUES} values (through aliases); "
                "a policy needs far fewer",
            )
        self._done[key] = result
        return result

    def _mapping(self, node: MappingNode, path: Loc) -> tuple[dict, int]:
        if node.tag != _MAP:
            raise self._fail(node, path, _tag_refused(node.tag))
        result: dict = {}
        first: dict[Any, Node] = {}
        size = 1
        merged: list[MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged.extend(self._merge_sources(value_node, path))
                continue
            name = self._key(key_node, path)
            if name in first:
                raise self._fail(
                    key_node,
                    (*path, name),
                    f"duplicate key (first at line {first[name].start_mark.line + 1}, "
                    f"column {first[name].start_mark.column + 1}); give each key once",
                )
            first[name] = key_node
            value, count = self._value(value_node, (*path, name))
            result[name] = value
            size += count
        # Keys written here win over merged ones; of the merged mappings, earlier wins.
        for source in merged:
            values, count = self._value(source, path)
            size += count
            for name, value in values.items():
                result.setdefault(name, value)
        return result, size

    def _merge_sources(self, node: Node, path: Loc) -> list[MappingNode]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        if not all(isinstance(s, MappingNode) for s in sources):
            raise self._fail(
                node, path, "<< merges a mapping or a list of mappings, e.g. <<: *defaults"
            )
        return sources

    def _key(self, node: Node, path: Loc) -> Any:
        if not isinstance(node, ScalarNode):
            raise self._fail(node, path, "a key must be a plain value, not a list or mapping")
        return self.scalar(node, path)

    def _sequence(self, node: SequenceNode, path: Loc) -> tuple[list, int]:
        if node.tag != _SEQ:
            raise self._fail(node, path, _tag_refused(node.tag))
        items, size = [], 1
        for index, item in enumerate(node.value):
            value, count = self._value(item, (*path, index))
            items.append(value)
            size += count
        return items, size

    def scalar(self, node: Node, path: Loc) -> Any:
        tag, text = node.tag, node.value
        if tag == _STR:
            return self._text(node, path) if _SURROGATE.search(text) else text
        if tag in (_INT, _FLOAT) and ":" in text:
            return text  # base-60 (1:30) is YAML 1.1 only; as text, it gets a clear error
        if tag == _NULL and text in ("", "~", "null", "Null", "NULL"):
            return None
        if tag == _BOOL and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if tag in (_NULL, _BOOL):  # an explicit !!bool or !!null on other text
            raise self._fail(node, path, f"{text!r} is not a valid {tag.removeprefix(_TAG)}")
        if tag in (_INT, _FLOAT, _TIMESTAMP):
            try:
                return self._constructor.construct_object(node, deep=True)
            except (YAMLError, ValueError, OverflowError, TypeError, KeyError, IndexError):
                if tag == _TIMESTAMP:  # 2026-13-45: the field's own check names it
                    return text
                raise self._fail(node, path, f"{text!r} is not a valid number") from None
        raise self._fail(node, path, _tag_refused(tag))

    def _text(self, node: Node, path: Loc) -> str:
        # JSON writes a character beyond U+FFFF as two escapes ("\\ud83d\\ude00"), which
        # YAML reads as two halves; join them, as a JSON reader would.
        try:
            return node.value.encode("utf-16", "surrogatepass").decode("utf-16")
        except UnicodeDecodeError:
            raise self._fail(
                node, path, "holds half of a UTF-16 surrogate pair (a lone \\ud800-\\udfff escape)"
            ) from None


def _tag_refused(tag: str) -> str:
    shown = f"!!{tag.removeprefix(_TAG)}" if tag.startswith(_TAG) else tag
    return f"the tag {shown} is not allowed in a policy; remove it"


# -- pydantic error -> node position ---------------------------------------------------


def _child(node: Node, part: int | str, builder: _Builder) -> tuple[Node, Node] | None:
    """(key node, value node) of `part` in `node`, looking through << merges."""
    if isinstance(node, SequenceNode):
        if isinstance(part, int) and 0 <= part < len(node.value):
            return node.value[part], node.value[part]
        return None
    if not isinstance(node, MappingNode):
        return None
    merged = []
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            merged.extend(sources)
        elif isinstance(key_node, ScalarNode):
            try:
                if builder.scalar(key_node, ()) == part:
                    return key_node, value_node
            except PolicyError:
                continue
    for source in merged:
        if (found := _child(source, part, builder)) is not None:
            return found
    return None


def _locate(root: Node | None, loc: Loc, *, key: bool = False) -> Mark | None:
    """Where the deepest node that exists for `loc` starts; its key's start if `key`
    and the whole of `loc` was found."""
    if root is None:
        return None
    builder = _Builder(YAML(typ="safe", pure=True), DEFAULT_SOURCE)
    node, mark = root, _mark(root)
    for depth, part in enumerate(loc):
        found = _child(node, part, builder)
        if found is None:
            return mark
        key_node, node = found
        mark = _mark(key_node if key and depth == len(loc) - 1 else node)
    return mark


# -- plain document -> Policy ----------------------------------------------------------


def _validate(document: Any, root: Node | None, source: str) -> Policy:
    if isinstance(document, dict) and "escalation" in document:
        extra = [k for k in document if k != "escalation"]
        if extra:
            first = sorted(extra, key=str)[0]
            mark = _locate(root, (first,), key=True)
            raise PolicyError(
                f"{_where(source, mark)}{first}: unknown top-level key; only 'escalation'"
            )
        document = document["escalation"]
        base: Loc = ("escalation",)
    else:
        base = ()
    if not isinstance(document, dict):
        raise PolicyError(
            f"{_where(source, _locate(root, base))}escalation: expected a mapping with "
            "'tiers'; see policies/default.yaml"
        )
    try:
        return Policy.model_validate(document)
    except ValidationError as exc:
        problem = first_problem(exc)
        mark = _locate(
            root,
            (*base, *problem.loc, *problem.at),
            key=problem.kind == "extra_forbidden" or problem.on_key,
        )
        prefix = "escalation." if base else ""
        raise PolicyError(f"{_where(source, mark)}{prefix}{problem.describe()}") from None


# -- a policy with where its fields are written (`escalator policy check`) -----------


class LocatedPolicy:
    """A loaded policy and where its fields are written in the file.

    `locate(("tiers", 0, "notify"))` is the (line, column), both from 1, of that field
    as the file writes it (paths are the file's: `tiers[0]` is the first tier written,
    under `escalation:` if the file has it); for a field the file leaves out, the
    mapping that lacks it. `tier_positions[i]` is the file index of `policy.tiers[i]`
    (the policy sorts its tiers by level)."""

    def __init__(self, policy: Policy, root: Node | None, base: Loc, document: Any) -> None:
        self.policy = policy
        self._root = root
        self._base = base
        self.tier_positions = _tier_positions(policy, document)

    def locate(self, path: Loc) -> tuple[int, int] | None:
        mark = _locate(self._root, (*self._base, *path))
        return None if mark is None else (mark[0] + 1, mark[1] + 1)


def load_policy_with_locations(path: str | Path) -> LocatedPolicy:
    """`load_policy`, also keeping where each field is written; the same errors."""
    text, source = _read(Path(path)), str(path)
    yaml, root = _compose(text, source)
    document = _Builder(yaml, source).build(root)
    policy = _validate(document, root, source)
    base: Loc = ()
    if isinstance(document, dict) and "escalation" in document:
        document, base = document["escalation"], ("escalation",)
    return LocatedPolicy(policy, root, base, document)


def _tier_positions(policy: Policy, document: Any) -> tuple[int, ...]:
    """For each of the policy's tiers (by level), its index in the document's list."""
    written = document.get("tiers") if isinstance(document, dict) else None
    if not isinstance(written, list):
        return tuple(range(len(policy.tiers)))
    levels: dict[int, int] = {}
    for index, tier in enumerate(written):
        try:
            levels.setdefault(int(tier["level"]), index)
        except (TypeError, ValueError, KeyError):
            continue
    positions = tuple(levels.get(tier.level, -1) for tier in policy.tiers)
    if -1 in positions:  # cannot happen for a validated policy; never guess wrong
        return tuple(range(len(policy.tiers)))
    return positions
