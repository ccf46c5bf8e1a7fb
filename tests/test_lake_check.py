"""The blocking lake check blocks only what is truly wrong: a refused upload of one city (a header-only file,
next to a good file of another city) is a WARN reported with the city, not a failed run, and the other
city's rows reach the lake. (Once intake refuses header-only files itself, the lake never sees it and the
check passes: either way the run succeeds.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dagster import AssetCheckEvaluation, AssetCheckKey, AssetCheckSeverity, AssetKey, instance_for_test

from assets.partitions import MEMBER_CITIES
from expectations.registry import default_registry
from intake.inbox import detect_upload
from intake.landing import land_file
from kouiki import catalog
from kouiki.settings import Paths
from service.testing import write_members

REPO = Path(__file__).resolve().parents[1]
KOMAE, YAIZU = "132195", "222127"
KOMAE_AED = REPO / "demo" / "uploads" / KOMAE / "komae_132195_aed.csv"
YAIZU_AED = REPO / "demo" / "uploads" / YAIZU / "yaizu_222127_aed.csv"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not KOMAE_AED.exists(), reason="needs demo/uploads")]


def land(paths: Paths, city: str, source: Path) -> str:
    landed = land_file(paths, city, source)
    upload = catalog.get_upload(paths.catalog_url, landed.upload_id)
    assert upload is not None
    detect_upload(paths, default_registry(), upload, dataset_hint="aed")
    return landed.upload_id


def test_a_refused_upload_is_a_warning_and_the_run_succeeds(kouiki_home: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.definitions import defs

    monkeypatch.setenv("KOUIKI_MEMBERS", str(write_members(tmp_path / "m.yaml", [(KOMAE, "狛江市"),
                                                                                  (YAIZU, "焼津市")])))
    paths = Paths(kouiki_home).ensure()
    good = land(paths, YAIZU, YAIZU_AED)
    header_only = tmp_path / "komae_aed.csv"
    header_only.write_text(KOMAE_AED.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    bad = land(paths, KOMAE, header_only)

    job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={AssetKey(["lake", "aed"])})
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(MEMBER_CITIES, [KOMAE, YAIZU])
        result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
            "dagster/asset_partition_range_start": KOMAE, "dagster/asset_partition_range_end": YAIZU})
        check = instance.get_latest_asset_check_evaluation_record(AssetCheckKey(AssetKey(["lake", "aed"]),
                                                                                "valid_rows"))
    statuses = {u.upload_id: u.status for u in catalog.list_uploads(paths.catalog_url)}
    assert statuses[good] in ("accepted", "quarantined")
    assert result.success, "a refused upload must not fail the run"
    assert check is not None and check.event is not None and check.event.dagster_event is not None
    evaluation = check.event.dagster_event.event_specific_data
    assert isinstance(evaluation, AssetCheckEvaluation)
    refused_at_intake = catalog.get_upload(paths.catalog_url, bad)
    assert refused_at_intake is not None
    if refused_at_intake.dataset_id is None:   # intake refused the header-only file: the lake never saw it
        assert statuses[bad] == "unreadable" and evaluation.passed
        assert (refused_at_intake.detail or {})["error"]["code"] == "no-data-rows"
    elif statuses[bad] in ("rejected", "unreadable"):
        assert not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
        refused = evaluation.metadata["refused_cities"].value
        assert isinstance(refused, dict) and KOMAE in refused
    else:   # refused at intake: the lake never saw it, nothing to report for the run
        assert evaluation.passed
    assert (paths.local_lake / "staged" / "aed" / f"city={YAIZU}").is_dir()
    assert evaluation.metadata["city_names"].value == {YAIZU: "焼津市"}     # names beside the partitions' codes
    shutil.rmtree(paths.tmp, ignore_errors=True)
