"""ARX's quality models (utility metrics) for full-domain generalisation with record suppression.

Each model gives one loss per quasi-identifier (0 = untouched), combined into one number by an aggregate
function; the lattice search minimises that number. Definitions follow ARX 3.9
(org.deidentifier.arx.metric.v2), with N records, S of them suppressed, and a QI at level l of a hierarchy
whose top level is h (levels 0 … h) with L leaves:

- precision (MetricMDNMPrecision, Sweeney's Prec): ((N − S)·g·l/h + S·s) / N. With the default gs-factor
  this is the mean generalisation level over all cells, a suppressed record counting as fully generalised.
- loss (MetricMDNMLoss, Iyengar's LM): a kept record whose label covers c leaves costs g·c/L, a suppressed
  one c/L + s·(1 − c/L); the sum is normalised as (sum − g·N/L) / (N − g·N/L). With the default gs-factor
  a cell costs (c − 1)/(L − 1) and a suppressed cell 1.
- nu_entropy (MetricMDNUNMEntropy, non-uniform entropy, in bits): g·Σ_v a_v·log2(b_v / a_v) over the
  input, a_v the count of original value v and b_v the count of its generalised label, plus
  s·Σ c·log2(S / c) over the generalised labels of the suppressed records (c records each).

The gs-factor (0 … 1, default 0.5) weighs generalisation against suppression: g = 1 and s = 2·gs below 0.5,
g = 1 − 2·(gs − 0.5) and s = 1 above. Aggregates (ARX's defaults: loss → geometric, precision → arithmetic,
nu_entropy → sum): arithmetic mean, geometric mean ((Π(1 + v))^(1/n) − 1) or sum.

Every per-QI loss here is at least its `lower_bound` (all records kept, or the cheaper of keeping and
suppressing for the records the limit allows), which depends on the levels alone and grows with them: the
lattice search prunes with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODELS = ("loss", "precision", "nu_entropy")
AGGREGATES = ("arithmetic", "geometric", "sum")
ARX_DEFAULT_AGGREGATE = {"loss": "geometric", "precision": "arithmetic", "nu_entropy": "sum"}


@dataclass(frozen=True)
class QualityModel:
    """The utility metric the search optimises. The default is ARX's own default: Loss, gs-factor 0.5,
    geometric mean."""

    name: str = "loss"
    gs_factor: float = 0.5
    aggregate: str = ""  # "" = ARX's default for the model

    def __post_init__(self) -> None:
        if self.name not in MODELS:
            raise ValueError(f"quality_model must be one of {MODELS}, got {self.name!r}")
        if not 0 <= self.gs_factor <= 1:
            raise ValueError(f"gs_factor must be in [0, 1], got {self.gs_factor}")
        if not self.aggregate:
            object.__setattr__(self, "aggregate", ARX_DEFAULT_AGGREGATE[self.name])
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"quality_aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")

    @property
    def generalisation_factor(self) -> float:
        return 1.0 if self.gs_factor <= 0.5 else 1.0 - 2.0 * (self.gs_factor - 0.5)

    @property
    def suppression_factor(self) -> float:
        return 2.0 * self.gs_factor if self.gs_factor < 0.5 else 1.0

    def combine(self, values: np.ndarray) -> float:
        """The aggregate of the per-QI losses (what the search compares)."""
        if len(values) == 0:
            return 0.0
        if self.aggregate == "sum":
            return float(values.sum())
        if self.aggregate == "geometric":
            return float(np.exp(np.log1p(values).mean()) - 1.0)
        return float(values.mean())

    def combine_rows(self, values: np.ndarray) -> np.ndarray:
        """`combine` of every row of a nodes × QIs matrix."""
        if values.shape[1] == 0:
            return np.zeros(values.shape[0])
        if self.aggregate == "sum":
            return values.sum(axis=1)
        if self.aggregate == "geometric":
            return np.exp(np.log1p(values).mean(axis=1)) - 1.0
        return values.mean(axis=1)

    def describe(self) -> dict[str, object]:
        return {"model": self.name, "gs_factor": self.gs_factor, "aggregate": self.aggregate}


@dataclass(frozen=True)
class AttributeCosts:
    """What the quality models need of one quasi-identifier, per level; none of it depends on the node."""

    height: int  # number of levels (top level = height − 1)
    leaves: int  # hierarchy leaves (ARX's domain size)
    shares: tuple[np.ndarray, ...]  # per level: share of the leaves each code covers
    share_sums: np.ndarray  # per level: Σ over all records of the share of their label
    entropy: np.ndarray  # per level: non-uniform entropy (bits) of generalising every record to it
    entropy_max: float  # non-uniform entropy of generalising everything to one value (ARX's maximum)


def attribute_costs(leaf_codes: np.ndarray, parents: tuple[np.ndarray, ...], shares: tuple[np.ndarray, ...]) -> (
    AttributeCosts
):
    """Per-level sums for one QI from the records' leaf codes and the hierarchy's code maps."""
    leaves = len(parents[0])
    leaf_counts = np.bincount(leaf_codes, minlength=leaves).astype(np.float64)
    present = leaf_counts > 0
    share_sums, entropy = [], []
    for level, parent in enumerate(parents):
        share_sums.append(float((leaf_counts * shares[level][parent]).sum()))
        label_counts = np.bincount(parent, weights=leaf_counts, minlength=len(shares[level]))
        a, b = leaf_counts[present], label_counts[parent[present]]
        entropy.append(float((a * np.log2(b / a)).sum()))
    records = leaf_counts.sum()
    a = leaf_counts[present]
    entropy_max = float((a * np.log2(records / a)).sum()) if records else 0.0
    return AttributeCosts(len(parents), leaves, shares, np.array(share_sums), np.array(entropy), entropy_max)


def lower_bounds(quality: QualityModel, costs: AttributeCosts, records: int, limit: int) -> np.ndarray:
    """Per level: a lower bound of this QI's loss at any node with at most `limit` records suppressed."""
    g, s = quality.generalisation_factor, quality.suppression_factor
    levels = np.arange(costs.height, dtype=np.float64)
    if quality.name == "precision":
        kept = g * levels / max(costs.height - 1, 1)
        return ((records - limit) * kept + limit * np.minimum(kept, s)) / records if records else kept * 0
    if quality.name == "loss":
        # A suppressed record costs c/L + s·(1 − c/L) ≥ g·c/L, so keeping everything is the cheapest case.
        return _normalise_loss(g * costs.share_sums, g, costs.leaves, records)
    return g * costs.entropy


def _normalise_loss(total: np.ndarray | float, g: float, leaves: int, records: int) -> np.ndarray:
    floor = g * records / leaves
    span = records - floor
    if span <= 0:
        return np.zeros_like(np.asarray(total, dtype=np.float64))
    return np.maximum((np.asarray(total, dtype=np.float64) - floor) / span, 0.0)


def attribute_loss(
    quality: QualityModel,
    costs: AttributeCosts,
    level: int,
    records: int,
    suppressed_codes: np.ndarray,
    suppressed_counts: np.ndarray,
) -> float:
    """This QI's loss at `level` when the records with these codes (at `level`) and counts are suppressed."""
    g, s = quality.generalisation_factor, quality.suppression_factor
    suppressed = float(suppressed_counts.sum())
    if quality.name == "precision":
        if not records:
            return 0.0
        kept = g * level / max(costs.height - 1, 1)
        return ((records - suppressed) * kept + suppressed * s) / records
    if quality.name == "loss":
        out_share = float((suppressed_counts * costs.shares[level][suppressed_codes]).sum())
        kept_share = costs.share_sums[level] - out_share
        out_cost = suppressed if s == 1.0 else out_share + s * (suppressed - out_share)
        return float(_normalise_loss(g * kept_share + out_cost, g, costs.leaves, records))
    value = g * float(costs.entropy[level])
    if suppressed:
        counts = np.bincount(suppressed_codes, weights=suppressed_counts)
        counts = counts[counts > 0]
        value += s * float((counts * np.log2(suppressed / counts)).sum())
    return value


def normalised_entropy(values: np.ndarray, costs: list[AttributeCosts]) -> float:
    """ARX's quality-model view of non-uniform entropy: Σ loss / Σ maximum, in [0, 1]."""
    maximum = sum(cost.entropy_max for cost in costs)
    return float(values.sum() / maximum) if maximum > 0 else 0.0
