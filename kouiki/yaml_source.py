"""Configuration YAML read with its line numbers, and pydantic's errors turned into one line naming the key.

The member registry, the schema registry and the anonymisation policies are checked by pydantic models (their
modules); this module is what they share: one parse that keeps both the values and the node tree (so every key
has a line), the key path as the office reads it (``variants[current].columns[名称].type``: list items named by
their ``name`` / ``variant`` when they have one), and the words of pydantic's error types.

Pydantic itself is imported by the functions that need it, never here: ``kouiki inspect`` reads the schema
registry from ``kouiki.file_cache`` and must not pay for it (tests/test_inspect_speed.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union, get_args, get_origin

import yaml

try:  # the C loader is ~10x faster; both behave the same here
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

Loc = Sequence[str | int]
# list items are shown by one of these keys (``columns[名称]``), else by their index (``key_columns[1]``)
ITEM_NAME_KEYS = ("name", "variant")


class StrictLoader(_BaseLoader):
    """Safe YAML loader that refuses duplicate keys (plain PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


@dataclass(frozen=True)
class YamlDocument:
    """A YAML document's values (``data``) and its node tree (``root``, for line numbers)."""

    data: Any
    root: yaml.Node | None

    def node_at(self, loc: Loc) -> tuple[yaml.Node | None, int | None]:
        """The node at ``loc`` (or the deepest one that exists) and the line (1-based) of its key or item."""
        node, line = self.root, (self.root.start_mark.line + 1 if self.root is not None else None)
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                found = next(((k, v) for k, v in node.value if _same_key(k, part)), None)
                if found is None:
                    return node, line
                node, line = found[1], found[0].start_mark.line + 1
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return node, line
        return node, line

    def line_of(self, loc: Loc) -> int | None:
        """Line of the key (or list item) at ``loc``; for a missing key, the line of the mapping that lacks it."""
        return self.node_at(loc)[1]


def _same_key(key: yaml.Node, part: str | int) -> bool:
    return isinstance(key, yaml.ScalarNode) and key.value == str(part)


def parse(text: str, loader: type[Any] = StrictLoader) -> YamlDocument:
    """One parse of ``text`` into values and nodes. Raises ``yaml.MarkedYAMLError`` (with its mark) when the
    text is not YAML or repeats a key."""
    reader = loader(text)
    try:
        root = reader.get_single_node()
        data = reader.construct_document(root) if root is not None else None
    finally:
        reader.dispose()
    return YamlDocument(data=data, root=root)


def key_path(data: Any, loc: Loc, *, named: bool = True) -> str:
    """``loc`` as the office reads it: ``variants[current].columns[名称].type``, ``policy.strict_columns[0]``
    (``named=False``: list items by their index, ``members[0]``)."""
    text, value = "", data
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            item = value[part] if isinstance(value, list) and 0 <= part < len(value) else None
            label = _item_label(item) if named else None
            text += f"[{label if label is not None else part}]"
            value = item
        else:
            text += f"{'.' if text else ''}{part}"
            value = value.get(part) if isinstance(value, dict) else None
    return text


def _item_label(item: Any) -> str | None:
    if isinstance(item, dict):
        for key in ITEM_NAME_KEYS:
            label = item.get(key)
            if isinstance(label, str) and label.strip():
                return label
    return None


# ------------------------------------------------------------------------------------------ pydantic's errors


def as_text(value: Any) -> Any:
    """Before-validator of a text field: numbers and dates as written (``version: 2025-06-01``); a YAML boolean
    is refused with the reason (an unquoted NO is read as false)."""
    if isinstance(value, bool):
        raise ValueError(f"read as {value}: YAML turns unquoted NO/YES/ON/OFF into true/false; quote it, "
                         f'e.g. "NO"')
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"expected text, got {value!r}; quote it")
    return value


def first_problem(error: ValidationError, model: type[BaseModel],
                  templates: dict[str, str] | None = None) -> tuple[tuple[str | int, ...], str]:
    """(loc, problem) of the first error pydantic found, worded for the office.

    ``templates`` rewords a choice error by field name, e.g. ``{"type": "unknown type {input!r}; use one of
    {choices}"}``; other choices read ``'hide': use one of publish, withhold``."""
    found = error.errors(include_url=False)[0]
    return clean_loc(found["loc"]), problem_words(found, model, templates or {})


def clean_loc(loc: Loc) -> tuple[str | int, ...]:
    """pydantic's loc without its validator steps (``function-after[…]``, ``[key]``); a key YAML read as a
    boolean or number as text."""
    parts: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part == "[key]"):
            continue
        parts.append(str(part) if isinstance(part, bool) else part)
    return tuple(parts)


def problem_words(found: Any, model: type[BaseModel], templates: dict[str, str]) -> str:
    kind, value, ctx = found["type"], found.get("input"), found.get("ctx") or {}
    loc = list(clean_loc(found["loc"]))
    field_name = next((p for p in reversed(loc) if isinstance(p, str)), "")
    if kind == "missing":
        return "キーがありません / missing (required key) — 書き足してください / add it"
    if kind == "extra_forbidden":
        allowed = allowed_keys(model, loc[:-1])
        return (f"使えないキーです / unknown key; allowed: {', '.join(sorted(allowed))} — 綴りを確かめてください / "
                "check the spelling")
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", found["msg"]))
    if kind in ("literal_error", "enum"):
        choices = ", ".join(str(c).strip("'") for c in str(ctx.get("expected", "")).replace(" or ", ", ")
                            .split(", "))
        template = templates.get(field_name, "{input!r}: use one of {choices}")
        return f"使えない値です / {template.format(input=value, choices=choices)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"true か false で書いてください / expected true or false, got {value!r}"
    if kind in ("list_type", "tuple_type"):
        return "一覧で書いてください / expected a list, e.g. [a, b]"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"「キー: 値」で書いてください / expected a mapping (key: value), got {type(value).__name__}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"整数で書いてください / expected a whole number, got {value!r}"
    if kind in ("float_type", "float_parsing"):
        return f"数値で書いてください / expected a number, got {value!r}"
    if kind in ("string_type",):
        return f"文字列にしてください / expected text, got {value!r}; quote it"
    return str(found["msg"])


def allowed_keys(model: type[BaseModel], loc: Loc) -> set[str]:
    """The keys the model at ``loc`` (below ``model``) accepts: its fields, by their YAML names."""
    current: Any = model
    for part in loc:
        current = _inner_model(current, part)
        if current is None:
            return set()
    fields = getattr(current, "model_fields", {})
    return {f.alias or name for name, f in fields.items()}


def _inner_model(model: Any, part: str | int) -> Any:
    """The model one step below ``model`` along ``part`` (a field name or a list index / mapping key)."""
    if isinstance(part, str) and hasattr(model, "model_fields"):
        by_yaml_name = {f.alias or name: f for name, f in model.model_fields.items()}
        if part in by_yaml_name:
            return _unwrap(by_yaml_name[part].annotation)
    if get_origin(model) in (list, tuple, dict):
        args = [a for a in get_args(model) if a is not Ellipsis]
        return _unwrap(args[-1]) if args else None
    return None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` → X (the models' optional fields)."""
    if get_origin(annotation) in (Union, type(int | None)):
        args = [a for a in get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    return annotation
