"""The automation conditions of kouiki's real definitions, evaluated by Dagster's own evaluator on a real
instance (no runs executed; materializations are reported as the runs would record them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterInstance,
    evaluate_automation_conditions,
    instance_for_test,
)

from assets.partitions import MEMBER_CITIES
from pipelines.automation import LAKE_GROUPS, REGION_GROUPS
from pipelines.definitions import defs

KOMAE, YAIZU = "132195", "222127"
GRAPH = defs.resolve_asset_graph()
REGION = [n.key for n in GRAPH.asset_nodes if n.group_name in REGION_GROUPS]
LAKE = [n.key for n in GRAPH.asset_nodes if n.group_name in LAKE_GROUPS]
AED = AssetKey(["lake", "aed"])
RELEASES = AssetKey(["publish", "releases"])
# evaluate only the assets a test is about (the whole graph takes a while on a busy machine)
REGION_ONLY = AssetSelection.groups(*REGION_GROUPS)
LAKE_ONLY = AssetSelection.groups(*LAKE_GROUPS)


def evaluate(instance: DagsterInstance, selection: AssetSelection, cursor: Any = None) -> Any:
    return evaluate_automation_conditions(defs=defs, instance=instance, asset_selection=selection, cursor=cursor)


@pytest.fixture()
def instance() -> Iterator[DagsterInstance]:
    with instance_for_test() as inst:
        inst.add_dynamic_partitions(MEMBER_CITIES, [KOMAE, YAIZU])
        yield inst


def materialize(instance: DagsterInstance, key: AssetKey, partition: str | None = None) -> None:
    instance.report_runless_asset_event(AssetMaterialization(asset_key=key, partition=partition))


def test_region_is_built_once_then_follows_any_city_lake_update(instance: DagsterInstance) -> None:
    first = evaluate(instance, REGION_ONLY)
    # nothing built yet: the whole region once (over empty lake views), no lake partition
    assert {k for k in REGION if first.get_num_requested(k)} == set(REGION)
    for key in REGION:
        materialize(instance, key)
    quiet = evaluate(instance, REGION_ONLY, first.cursor)
    assert quiet.total_requested == 0

    materialize(instance, AED, KOMAE)                       # a city's AED partition was loaded
    after = evaluate(instance, REGION_ONLY, quiet.cursor)
    requested = {k for k in REGION if after.get_num_requested(k)}
    assert {AssetKey(["staging", "aed"]), AssetKey(["conformed", "aed"]), RELEASES} <= requested
    assert AssetKey(["staging", "population"]) not in requested    # untouched by AED


def test_an_update_during_a_region_run_is_not_lost(instance: DagsterInstance) -> None:
    for key in REGION:
        materialize(instance, key)
    cursor = evaluate(instance, REGION_ONLY).cursor
    materialize(instance, AED, KOMAE)
    requested = evaluate(instance, REGION_ONLY, cursor)
    assert requested.get_num_requested(RELEASES) == 1
    # that region run finishes (releases materialized) after a second city's AED partition was loaded
    materialize(instance, AED, YAIZU)
    for key in REGION:
        materialize(instance, key)
    again = evaluate(instance, REGION_ONLY, requested.cursor)
    assert again.get_num_requested(RELEASES) == 1


def test_a_city_partition_added_later_gets_its_lake_once_its_intake_exists(instance: DagsterInstance) -> None:
    cursor = evaluate(instance, LAKE_ONLY).cursor
    instance.add_dynamic_partitions(MEMBER_CITIES, ["011002"])          # a new member city
    cursor = evaluate(instance, LAKE_ONLY, cursor).cursor
    materialize(instance, AssetKey(["intake", "uploads"]), "011002")     # its intake, materialized alone
    result = evaluate(instance, LAKE_ONLY, cursor)
    assert all(result.get_requested_partitions(k) == {"011002"} for k in LAKE)
    materialize(instance, AssetKey(["intake", "uploads"]), YAIZU)        # existing cities: nothing more
    for key in LAKE:
        materialize(instance, key, "011002")
    assert evaluate(instance, LAKE_ONLY, result.cursor).total_requested == 0
