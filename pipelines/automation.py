"""Declarative automation: what makes an accepted upload reach its release with no command.

    upload_sensor (pipelines/sensors.py)   a city's new files or waiting uploads -> ingest_city for that city
    lake assets        per city partition: a missing lake partition once the city's intake exists
    models, releases   any lake partition or upstream model updated -> one region run (models, then releases)

The run queue (``$DAGSTER_HOME/dagster.yaml``, written by kouiki from ``config/automation.yaml``) queues runs
instead of failing them: one run at a time per city (the ``dagster/partition`` tag), one run writing the
warehouse (the ``kouiki/warehouse`` tag of region runs, and the ``duckdb_warehouse`` pool of model steps).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from dagster import (
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    Definitions,
    map_asset_specs,
)

from kouiki.errors import ConfigError
from kouiki.settings import Settings

AUTOMATION_ENV = "KOUIKI_AUTOMATION"
LAKE_GROUPS = ("lake",)
REGION_GROUPS = ("staging", "conformed", "marts", "publish")
WAREHOUSE_TAG = "kouiki/warehouse"
CITY_TAG = "dagster/partition"   # Dagster tags every run of a city partition with it
TRIGGER_TAG = "kouiki/trigger"   # runs the upload sensor started (for the UI's run list)


ZERO_ALLOWED = ("max_retries", "start_retries")   # settings that may be 0 (no retries); the others at least 1


class AutomationConfigError(ConfigError):
    """config/automation.yaml is unreadable or has a value out of range (one line: file, key, what to do)."""


@dataclass(frozen=True)
class AutomationSettings:
    upload_interval_seconds: int = 30
    automation_interval_seconds: int = 30
    members_interval_seconds: int = 60
    max_concurrent: int = 3
    per_city: int = 1
    warehouse_writers: int = 1
    max_retries: int = 2
    upload_attempts: int = 3
    code_server_start_timeout_seconds: int = 180
    code_server_request_timeout_seconds: int = 180
    start_retries: int = 5
    start_retry_delay_seconds: int = 30


def automation_file() -> Path:
    return Settings.from_env().automation


@cache
def load_settings(path: Path | None = None) -> AutomationSettings:
    """The automation settings (defaults for a missing file or key); raises AutomationConfigError."""
    path = path or automation_file()
    if not path.exists():
        return AutomationSettings()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AutomationConfigError(f"{path}: 読めません / cannot read: {exc}") from None
    values: dict[str, Any] = {}
    for section in ("sensors", "runs"):
        part = doc.get(section) or {}
        if not isinstance(part, dict):
            raise AutomationConfigError(f"{path}: {section} は key: value の並びにしてください / "
                                        f"{section} must be a mapping")
        values.update(part)
    known = AutomationSettings.__dataclass_fields__
    for key, value in values.items():
        if key not in known:
            raise AutomationConfigError(f"{path}: 不明な設定 {key} / unknown setting {key}; "
                                        f"known: {', '.join(known)}")
        least = 0 if key in ZERO_ALLOWED else 1
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise AutomationConfigError(f"{path}: {key} は正の整数にしてください / {key} must be a positive "
                                        f"integer, not {value!r}")
    return AutomationSettings(**values)


def lake_condition() -> AutomationCondition:
    """A city's lake partitions are loaded by the upload sensor's ingest_city runs (it knows from the catalog
    what waits); automation only builds a partition that is missing once its intake exists (a city whose
    intake was materialized alone, from the UI). Not ``eager``/``any_deps_updated``: with two cities loading at
    once Dagster checks "the run that updated intake also targeted the lake" against the intake's last
    materialization of any partition, so the other city's lake was loaded a second time for nothing."""
    return (AutomationCondition.on_missing() & ~AutomationCondition.in_progress()
            & ~AutomationCondition.any_deps_in_progress()).with_label("kouiki_lake")


def region_condition() -> AutomationCondition:
    """Models and releases, in one region run, when none of their inputs is being written:

    * a lake partition they read was updated since they were last requested. The memory is cleared when the
      asset is requested, not when it is materialized, and an update newer than the request wins (Dagster
      compares their timestamps): a second city's update that lands while a region run is going is never
      lost, it makes the next region run;
    * an upstream model is requested in the same tick (so the whole chain is one run);
    * it was never built: built with the next region run over the lake as it is (empty views included, as
      ``kouiki run`` does), so that a release never waits for a model nobody asked for. One whose last run
      failed waits for the next update instead of being retried every tick.

    Lake partitions that are missing do not hold anything back (a city that never sent some dataset must not
    stop everyone's releases); a missing upstream *model* that is not requested with it does."""
    lake_updated = AutomationCondition.any_deps_match(AutomationCondition.newly_updated()).allow(
        AssetSelection.groups(*LAKE_GROUPS)).with_label("a lake partition it reads was updated")
    remembered = lake_updated.since(AutomationCondition.newly_requested()).with_label(
        "lake updated since last requested")
    upstream = AutomationCondition.any_deps_match(AutomationCondition.will_be_requested()).with_label(
        "an upstream model is requested")
    never_built = (AutomationCondition.missing() & ~AutomationCondition.execution_failed()).with_label(
        "never built")
    # a model whose upstream model is missing and not requested with it would fail: wait (lake deps aside)
    model_missing = AutomationCondition.any_deps_missing().ignore(AssetSelection.groups(*LAKE_GROUPS))
    return (
        (remembered | upstream | never_built)
        & ~model_missing.with_label("an upstream model is missing")
        & ~AutomationCondition.any_deps_in_progress()
        & ~AutomationCondition.in_progress()
    ).with_label("kouiki_region")


def with_automation(assets: Iterable[object]) -> list[Any]:
    """The assets with their automation condition, chosen by group (so generated models get it too); anything
    that is not an AssetsDefinition is passed through."""

    def condition(spec: AssetSpec) -> AssetSpec:
        if spec.group_name in LAKE_GROUPS:
            return spec.replace_attributes(automation_condition=lake_condition())
        if spec.group_name in REGION_GROUPS:
            return spec.replace_attributes(automation_condition=region_condition())
        return spec

    items = list(assets)
    defined = [a for a in items if isinstance(a, AssetsDefinition)]
    return [*map_asset_specs(condition, defined), *(a for a in items if not isinstance(a, AssetsDefinition))]


def automated(stage: Definitions) -> Definitions:
    """A stage's definitions with each asset's automation condition (see ``with_automation``)."""
    return Definitions(assets=with_automation(stage.assets or []), asset_checks=stage.asset_checks)


def automation_sensors(settings: AutomationSettings) -> list[AutomationConditionSensorDefinition]:
    """Two sensors, so that region runs carry the warehouse tag (queued one at a time) and city runs do not."""
    return [
        AutomationConditionSensorDefinition(
            "lake_automation", target=AssetSelection.groups(*LAKE_GROUPS),
            default_status=DefaultSensorStatus.RUNNING,
            minimum_interval_seconds=settings.automation_interval_seconds,
            description="市ごとのレイク: 受付が更新されたら / a city's lake partitions after its intake"),
        AutomationConditionSensorDefinition(
            "region_automation", target=AssetSelection.groups(*REGION_GROUPS),
            default_status=DefaultSensorStatus.RUNNING, run_tags={WAREHOUSE_TAG: "writer"},
            minimum_interval_seconds=settings.automation_interval_seconds,
            description="地域全体: レイクが更新されたら SQLモデル → 公開 / models and releases after the lake"),
    ]
