"""Every problem kouiki reports, in one shape: a :class:`Problem` (code, ja, en, hint, where) from one catalogue.

Reading a file (:class:`IntakeError`, :class:`Notice`), validating its rows (``kouiki.validation_errors``), the upload
service's refusals (``service.errors.ApiError``) and the portal's API errors (``portal.errors.ActionError``) all
take their codes and words from ``problems.yaml`` beside this module. Codes follow the spirit of Frictionless
(``encoding-error``, ``blank-row``, ``extra-label`` …) so that the same problem always has the same name in
reports, the API and the tests. This module is a leaf: it imports no other package of the project.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

CATALOGUE_FILE = Path(__file__).with_name("problems.yaml")
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)   # libyaml when present: the catalogue is read at import
JA_LIST_SEPARATOR = "、"   # joins a list shown in a Japanese message (", " in English)
DEFAULT_STATUS = 422   # the upload service's answer for a file it cannot read, unless the entry says otherwise


@dataclass(frozen=True)
class Words:
    """The same words in Japanese and English (may be str.format templates)."""

    ja: str
    en: str


@dataclass(frozen=True)
class Variant:
    """Other words for the same code, where the case differs (a 0-byte file, a workbook with no data …)."""

    message: Words
    hint: Words | None = None


@dataclass(frozen=True)
class ValidationTraits:
    """What validation needs beyond the words: how heavy the problem is and where it applies."""

    explanation: Words
    severity: Literal["error", "warning"]
    weight: int
    scope: Literal["file", "row", "cell"]


@dataclass(frozen=True)
class Entry:
    """One code of the catalogue."""

    title: Words
    message: Words | None = None
    hint: Words | None = None
    variants: Mapping[str, Variant] = field(default_factory=dict)
    status: int = DEFAULT_STATUS
    validation: ValidationTraits | None = None
    notice: bool = False
    # words a caller fills into this code's templates, chosen by a plain key (a file kind, an encoding): the
    # caller names the key, the catalogue gives the words in each language (see :func:`term`)
    terms: Mapping[str, Words] = field(default_factory=dict)


@cache
def catalogue() -> dict[str, Entry]:
    """Every code and its entry, from ``problems.yaml`` (read once; a malformed entry names its code)."""
    loaded = yaml.load(CATALOGUE_FILE.read_text(encoding="utf-8"), Loader=_LOADER)
    entries = {}
    for code, raw in loaded.items():
        try:
            entries[str(code)] = _entry(raw)
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{CATALOGUE_FILE}: entry {code!r}: {err!r}") from None
    return entries


# A plain reader rather than pydantic: every command imports this module, and `kouiki inspect` must stay light
# (tests/test_inspect_speed.py). A typo in a key fails the unknown-key check below, not silently.
def _entry(raw: dict[str, Any]) -> Entry:
    _known_keys(raw, {"title", "message", "hint", "variants", "status", "validation", "notice", "terms"})
    validation = raw.get("validation")
    if validation is not None:
        _known_keys(validation, {"explanation", "severity", "weight", "scope"})
        if validation["severity"] not in ("error", "warning") or validation["scope"] not in ("file", "row", "cell"):
            raise ValueError(f"severity or scope not known: {validation}")
        validation = ValidationTraits(_words(validation["explanation"]), validation["severity"],
                                      int(validation["weight"]), validation["scope"])
    variants = {}
    for name, variant in (raw.get("variants") or {}).items():
        _known_keys(variant, {"message", "hint"})
        variants[str(name)] = Variant(_words(variant["message"]), _optional_words(variant.get("hint")))
    terms = {str(name): _words(words) for name, words in (raw.get("terms") or {}).items()}
    return Entry(_words(raw["title"]), _optional_words(raw.get("message")), _optional_words(raw.get("hint")), variants,
                 int(raw.get("status", DEFAULT_STATUS)), validation, bool(raw.get("notice", False)), terms)


def _optional_words(raw: dict[str, Any] | None) -> Words | None:
    return None if raw is None else _words(raw)


def _words(raw: dict[str, Any]) -> Words:
    _known_keys(raw, {"ja", "en"})
    if not isinstance(raw["ja"], str) or not isinstance(raw["en"], str):
        raise ValueError(f"ja and en must be text: {raw}")
    return Words(raw["ja"], raw["en"])


def _known_keys(raw: dict[str, Any], keys: set[str]) -> None:
    if not isinstance(raw, dict) or set(raw) - keys:
        raise ValueError(f"expected a mapping with keys among {sorted(keys)}, got {raw!r}")


def entry(code: str) -> Entry:
    """The catalogue entry of ``code``; KeyError names the unknown code."""
    try:
        return catalogue()[code]
    except KeyError:
        raise KeyError(f"unknown problem code {code!r}: add it to {CATALOGUE_FILE.name}") from None


def term(code: str, name: str) -> Words:
    """The words of ``code``'s term ``name`` (e.g. ``term("unsupported-format", "png")``: PNG画像 / a PNG image)."""
    known = entry(code)
    try:
        return known.terms[name]
    except KeyError:
        raise KeyError(f"problem code {code!r} has no term {name!r}: add it to {CATALOGUE_FILE.name}") from None


def words_of(code: str, variant: str | None = None) -> tuple[Words, Words | None]:
    """The message and hint templates of ``code`` (in the words of ``variant``), not yet filled."""
    known = entry(code)
    if variant is not None and variant not in known.variants:
        raise KeyError(f"problem code {code!r} has no variant {variant!r}: add it to {CATALOGUE_FILE.name}")
    chosen = known.variants[variant] if variant else None
    message = chosen.message if chosen else known.message
    hint = chosen.hint if chosen and chosen.hint else known.hint
    if message is None:
        raise KeyError(f"problem code {code!r} has no message of its own: name one of {sorted(known.variants)}")
    return message, hint


@dataclass(frozen=True)
class Where:
    """Where a problem is: the file, the 1-based physical line (or sheet row), the byte offset, the column."""

    file: str | None = None
    line: int | None = None
    byte_offset: int | None = None
    column: str | None = None


@dataclass(frozen=True)
class Problem:
    """One problem, in words a city clerk can act on: what went wrong (ja, en), what to do (hint), where."""

    code: str
    ja: str
    en: str
    hint_ja: str = ""
    hint_en: str = ""
    where: Where = Where()

    @classmethod
    def of(cls, code: str, variant: str | None = None, /, *, where: Where | None = None,
           **fields: Any) -> Problem:
        """The problem ``code`` (in the words of ``variant``), its templates filled with ``fields``."""
        message, hint = words_of(code, variant)
        return cls(code, message.ja.format(**fields), message.en.format(**fields),
                   hint.ja.format(**fields) if hint else "", hint.en.format(**fields) if hint else "",
                   where or Where())

    @property
    def status(self) -> int:
        """The HTTP status the upload service answers this problem with."""
        return entry(self.code).status

    def to_dict(self) -> dict[str, Any]:
        """The problem as intake has always stored and answered it (catalog detail, API body)."""
        return {"code": self.code, "message_ja": self.ja, "message_en": self.en, "hint_ja": self.hint_ja,
                "hint_en": self.hint_en, "line": self.where.line, "byte_offset": self.where.byte_offset,
                "column": self.where.column}


@dataclass(frozen=True)
class Notice:
    """Something intake did or noticed that the uploader should know (not fatal)."""

    code: str                 # stable, e.g. "blank-row", "extra-label", "preamble"
    message_ja: str
    message_en: str
    line: int | None = None   # 1-based physical line in the file, when it applies
    column: str | None = None
    count: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, code: str, variant: str | None = None, /, *, line: int | None = None, column: str | None = None,
           count: int = 1, details: dict[str, Any] | None = None, **fields: Any) -> Notice:
        """The notice ``code`` (in the words of ``variant``), its message templates filled with ``fields``.

        The templates may also use ``{line}``, ``{column}`` and ``{count}``, the notice's own fields. A notice
        has no hint: it tells what reading did, so only the message is used (a code shared with validation, such
        as blank-row, keeps its notice words in a variant beside the validation words)."""
        message, _ = words_of(code, variant)
        filled = {"line": line, "column": column, "count": count, **fields}
        return cls(code, message.ja.format(**filled), message.en.format(**filled), line, column, count,
                   details or {})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProblemError(Exception):
    """An error that carries a :class:`Problem`, with its words as attributes (the shape every caller reads)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.en)
        self.problem = problem

    @property
    def code(self) -> str:
        return self.problem.code

    @property
    def message_ja(self) -> str:
        return self.problem.ja

    @property
    def message_en(self) -> str:
        return self.problem.en

    @property
    def hint_ja(self) -> str:
        return self.problem.hint_ja

    @property
    def hint_en(self) -> str:
        return self.problem.hint_en



class IntakeError(ProblemError):
    """A file that cannot be read at all: carries the :class:`Problem` saying what, where and how to fix it."""

    def __reduce__(self) -> tuple[Any, ...]:   # pickles (a run's worker process) with its problem
        return (IntakeError, (self.problem,))

    @property
    def line(self) -> int | None:
        return self.problem.where.line

    @property
    def byte_offset(self) -> int | None:
        return self.problem.where.byte_offset

    @property
    def column(self) -> str | None:
        return self.problem.where.column

    def to_dict(self) -> dict[str, Any]:
        return self.problem.to_dict()
