"""Anonymisation policies as data: config/anonymisation/<name>.yaml.

A policy names the direct identifiers to delete, the quasi-identifiers with their generalisation
hierarchies (built from the data, or read from ARX-format CSV files next to the policy), the
sensitive attributes, other columns to publish with top coding / rounding, the 特異な記述 rules, the
privacy model and the limits used by verification and by aggregate tables. See
config/anonymisation/care_certification.yaml for a commented example.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from anonymise.lattice import PrivacyModel
from kouiki.errors import ConfigError
from kouiki.problems import Where
from kouiki.yaml_source import YamlDocument, first_problem, key_path, parse

if TYPE_CHECKING:   # pydantic is imported when a policy is read
    from anonymise.policy_file import KeepSpec

CONFIG_DIR = Path(__file__).parents[1] / "config" / "anonymisation"


class PolicyError(ConfigError):
    """A policy file that cannot be used as written (or, with code policy-input-error, records it cannot use)."""

    problem_code = "policy-error"


@dataclass(frozen=True)
class QuasiIdentifierRule:
    column: str
    hierarchy: dict[str, Any]
    derive: dict[str, Any] | None = None

    @property
    def source_column(self) -> str:
        return str(self.derive["from"]) if self.derive else self.column


@dataclass(frozen=True)
class KeepRule:
    """A published non-QI column, with optional top coding (at a value or a percentile) and rounding."""

    column: str
    top_at: float | None = None
    top_percentile: float | None = None
    rounding: int | None = None


@dataclass(frozen=True)
class AggregateSpec:
    """A publication table: counts by these QI columns, each at the given hierarchy level."""

    name: str
    dims: dict[str, int]


@dataclass(frozen=True)
class Policy:
    name: str
    title: str
    reference_date: date
    direct_identifiers: tuple[str, ...]
    quasi_identifiers: tuple[QuasiIdentifierRule, ...]
    sensitive: dict[str, tuple[str, ...] | None]
    keep: tuple[KeepRule, ...]
    special_descriptions: tuple[dict[str, Any], ...]
    model: PrivacyModel
    risk_threshold: float
    min_cell: int
    aggregate_tables: tuple[AggregateSpec, ...]
    base_dir: Path
    sha256: str = ""
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def qi_columns(self) -> tuple[str, ...]:
        return tuple(rule.column for rule in self.quasi_identifiers)

    @property
    def released_columns(self) -> tuple[str, ...]:
        return (*self.qi_columns, *self.sensitive, *(rule.column for rule in self.keep))


def load_policy(name_or_path: str | Path, config_dir: Path = CONFIG_DIR) -> Policy:
    """Read a policy by name (config/anonymisation/<name>.yaml) or by path, and check it."""
    path = Path(name_or_path)
    if not path.suffix:
        path = config_dir / f"{name_or_path}.yaml"
    if not path.is_file():
        raise PolicyError(f"ポリシーファイルがありません / policy file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        doc = parse(text)
    except yaml.MarkedYAMLError as exc:
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark else ""
        raise PolicyError(f"{path}{line}: YAML の書き方が誤っています / YAML syntax error: {exc.problem} — "
                          "その行を直してください / fix that line") from None
    if not isinstance(doc.data, dict):
        raise PolicyError(f"{path}: the policy must be a mapping")
    policy = policy_from_dict(doc.data, path.parent, _Source(path, doc))
    return Policy(**{**policy.__dict__, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})


@dataclass(frozen=True)
class _Source:
    """The file a policy was read from, for messages with its line."""

    file: Path
    doc: YamlDocument


def _fail(source: _Source | None, data: dict[str, Any], loc: tuple[str | int, ...], problem: str) -> NoReturn:
    key = key_path(data, loc)
    if source is None:
        raise PolicyError(f"{key}: {problem}" if key else problem)
    line = source.doc.line_of(loc)
    raise PolicyError(f"{source.file}{f':{line}' if line else ''}: {f'{key}: ' if key else ''}{problem}",
                      where=Where(str(source.file), line))


def policy_from_dict(data: dict[str, Any], base_dir: Path, source: _Source | None = None) -> Policy:
    """Build and check a policy from its parsed YAML (``anonymise.policy_file`` says what it may hold)."""
    from pydantic import ValidationError

    from anonymise.policy_file import PolicyFile

    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as exc:
        _fail(source, data, *first_problem(exc, PolicyFile))
    aggregate = spec.aggregate
    policy = Policy(
        name=spec.name,
        title=spec.title or spec.name,
        reference_date=spec.reference_date or date.today(),
        direct_identifiers=tuple(spec.direct_identifiers),
        quasi_identifiers=tuple(
            QuasiIdentifierRule(column, qi.hierarchy.model_dump(exclude_unset=True),
                                qi.derive.model_dump(by_alias=True) if qi.derive else None)
            for column, qi in spec.quasi_identifiers.items()),
        sensitive={column: tuple(s.order) if s and s.order else None for column, s in spec.sensitive.items()},
        keep=tuple(_keep_rule(column, k) for column, k in spec.keep.items()),
        special_descriptions=tuple(rule.model_dump(exclude_unset=True) for rule in spec.special_descriptions),
        model=spec.privacy.model(),
        risk_threshold=spec.risk_threshold,
        min_cell=aggregate.min_cell if aggregate else 3,
        aggregate_tables=tuple(AggregateSpec(t.name, dict(t.dims)) for t in (aggregate.tables if aggregate else [])),
        base_dir=base_dir,
        raw=data,
    )
    _check_overlaps(policy, source, data)
    return policy


def _keep_rule(column: str, spec: KeepSpec | None) -> KeepRule:
    top = spec.top_coding if spec else None
    return KeepRule(column, top_at=top.at if top else None, top_percentile=top.percentile if top else None,
                    rounding=spec.rounding if spec and spec.rounding else None)


def _check_overlaps(policy: Policy, source: _Source | None, data: dict[str, Any]) -> None:
    """What needs the whole policy: each column in one role, no identifier published, aggregate dimensions."""
    published = list(policy.released_columns)
    repeated = {column for column in published if published.count(column) > 1}
    if repeated:
        _fail(source, data, (), f"columns listed in more than one role: {sorted(repeated)} — "
              "一つの役割にしてください / keep each column in one role")
    leaked = set(published) & set(policy.direct_identifiers)
    if leaked:
        _fail(source, data, ("direct_identifiers",), f"direct identifiers cannot also be published: {sorted(leaked)}")
    if policy.model.needs_sensitive and not policy.sensitive:
        _fail(source, data, ("privacy",), "privacy.l / privacy.t need at least one sensitive attribute")
    for i, table in enumerate(policy.aggregate_tables):
        unknown = set(table.dims) - set(policy.qi_columns)
        if unknown:
            _fail(source, data, ("aggregate", "tables", i, "dims"),
                  f"aggregate table {table.name}: dimensions must be quasi-identifiers, not {sorted(unknown)}")
