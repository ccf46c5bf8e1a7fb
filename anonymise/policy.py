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
from typing import Any

import yaml

from anonymise.lattice import PrivacyModel
from anonymise.quality import QualityModel
from kouiki.errors import ConfigError

CONFIG_DIR = Path(__file__).parents[1] / "config" / "anonymisation"

HIERARCHY_KINDS = ("interval", "date", "parents", "arx_csv", "flat")
DERIVE_KINDS = ("age",)
SPECIAL_KINDS = ("at_least", "rare_values")


class PolicyError(ConfigError):
    """A policy file that cannot be used as written."""

    kind = "匿名加工ポリシーの誤り / anonymisation policy error"


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
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise PolicyError(f"{path}: the policy must be a mapping")
    policy = policy_from_dict(data, path.parent)
    return Policy(**{**policy.__dict__, "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})


def policy_from_dict(data: dict[str, Any], base_dir: Path) -> Policy:
    """Build and check a policy from its parsed YAML."""
    _require(data, ["name", "direct_identifiers", "quasi_identifiers", "privacy"], "policy")
    quasi = tuple(_quasi_identifier(column, spec) for column, spec in dict(data["quasi_identifiers"]).items())
    sensitive = {column: _order(spec) for column, spec in dict(data.get("sensitive") or {}).items()}
    keep = tuple(_keep_rule(column, spec) for column, spec in dict(data.get("keep") or {}).items())
    special = tuple(_special_rule(rule) for rule in data.get("special_descriptions") or [])
    aggregate = dict(data.get("aggregate") or {})
    policy = Policy(
        name=str(data["name"]),
        title=str(data.get("title", data["name"])),
        reference_date=_as_date(data.get("reference_date", date.today())),
        direct_identifiers=tuple(str(column) for column in data["direct_identifiers"]),
        quasi_identifiers=quasi,
        sensitive=sensitive,
        keep=keep,
        special_descriptions=special,
        model=_privacy_model(dict(data["privacy"])),
        risk_threshold=float(data.get("risk_threshold", 0.2)),
        min_cell=int(aggregate.get("min_cell", 3)),
        aggregate_tables=tuple(_aggregate_spec(spec) for spec in aggregate.get("tables") or []),
        base_dir=base_dir,
        raw=data,
    )
    _check_overlaps(policy)
    return policy


def _quasi_identifier(column: str, spec: Any) -> QuasiIdentifierRule:
    if not isinstance(spec, dict) or "hierarchy" not in spec:
        raise PolicyError(f"quasi_identifiers.{column}: needs a 'hierarchy'")
    hierarchy = dict(spec["hierarchy"])
    if hierarchy.get("kind") not in HIERARCHY_KINDS:
        raise PolicyError(f"quasi_identifiers.{column}: hierarchy kind must be one of {HIERARCHY_KINDS}")
    if hierarchy["kind"] == "arx_csv" and "path" not in hierarchy:
        raise PolicyError(f"quasi_identifiers.{column}: arx_csv hierarchy needs a 'path'")
    if hierarchy["kind"] == "parents" and not hierarchy.get("columns"):
        raise PolicyError(f"quasi_identifiers.{column}: parents hierarchy needs 'columns'")
    derive = spec.get("derive")
    if derive is not None:
        derive = dict(derive)
        if derive.get("kind") not in DERIVE_KINDS or "from" not in derive:
            raise PolicyError(f"quasi_identifiers.{column}: derive needs kind in {DERIVE_KINDS} and 'from'")
    return QuasiIdentifierRule(column, hierarchy, derive)


def _order(spec: Any) -> tuple[str, ...] | None:
    if spec and isinstance(spec, dict) and spec.get("order"):
        return tuple(str(value) for value in spec["order"])
    return None


def _keep_rule(column: str, spec: Any) -> KeepRule:
    spec = dict(spec or {})
    top = dict(spec.get("top_coding") or {})
    return KeepRule(
        column,
        top_at=float(top["at"]) if "at" in top else None,
        top_percentile=float(top["percentile"]) if "percentile" in top else None,
        rounding=int(spec["rounding"]) if spec.get("rounding") else None,
    )


def _special_rule(rule: Any) -> dict[str, Any]:
    rule = dict(rule)
    if rule.get("kind") not in SPECIAL_KINDS:
        raise PolicyError(f"special_descriptions: kind must be one of {SPECIAL_KINDS}, got {rule.get('kind')!r}")
    if rule["kind"] == "at_least":
        _require(rule, ["column", "threshold"], "special_descriptions.at_least")
    else:
        _require(rule, ["columns", "min_count"], "special_descriptions.rare_values")
    return rule


def _aggregate_spec(spec: Any) -> AggregateSpec:
    spec = dict(spec)
    _require(spec, ["name", "dims"], "aggregate.tables")
    return AggregateSpec(str(spec["name"]), {str(column): int(level) for column, level in dict(spec["dims"]).items()})


def _privacy_model(spec: dict[str, Any]) -> PrivacyModel:
    _require(spec, ["k"], "privacy")
    try:
        return PrivacyModel(
            k=int(spec["k"]),
            l=int(spec["l"]) if spec.get("l") is not None else None,
            l_variant=str(spec.get("l_variant", "distinct")),
            t=float(spec["t"]) if spec.get("t") is not None else None,
            max_suppression=float(spec.get("max_suppression", 0.0)),
            quality=QualityModel(
                name=str(spec.get("quality_model", "loss")),
                gs_factor=float(spec.get("gs_factor", 0.5)),
                aggregate=str(spec.get("quality_aggregate") or ""),
            ),
            suppression=str(spec.get("suppression", "records")),
        )
    except ValueError as error:
        raise PolicyError(f"privacy: {error}") from error


def _check_overlaps(policy: Policy) -> None:
    published = list(policy.released_columns)
    repeated = {column for column in published if published.count(column) > 1}
    if repeated:
        raise PolicyError(f"columns listed in more than one role: {sorted(repeated)}")
    leaked = set(published) & set(policy.direct_identifiers)
    if leaked:
        raise PolicyError(f"direct identifiers cannot also be published: {sorted(leaked)}")
    if policy.model.needs_sensitive and not policy.sensitive:
        raise PolicyError("privacy.l / privacy.t need at least one sensitive attribute")
    for table in policy.aggregate_tables:
        unknown = set(table.dims) - set(policy.qi_columns)
        if unknown:
            raise PolicyError(
                f"aggregate table {table.name}: dimensions must be quasi-identifiers, not {sorted(unknown)}"
            )


def _require(mapping: dict[str, Any], keys: list[str], where: str) -> None:
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise PolicyError(f"{where}: missing {missing}")


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
