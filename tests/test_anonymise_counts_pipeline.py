"""Releases over time in Dagster: the count table is published, then the city's file changes by one person added,
one changed and one removed; the new count table, audited with the earlier release, is held with its reason and
the previous release stays the latest."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from dagster import instance_for_test

from anonymise.personal import current_personal_file, personal_inbox, read_personal_text
from assets.anonymise import run_anonymisation
from pipelines.definitions import defs

KOMAE = "132195"
COUNTS = "care_certification_counts"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def changed_file(records: pl.DataFrame, target: Path) -> None:
    """The same list with one person added (a copy of the first with a new number), the second person's 町字
    changed to another, and the third removed."""
    added = records.head(1).with_columns(pl.lit("9999999999").alias("被保険者番号"), pl.lit("").alias("個人番号"))
    other = records.filter(pl.col("町字") != records["町字"][1])["町字"][0]
    second = records.slice(1, 1).with_columns(pl.lit(other).alias("町字"))
    pl.concat([records.head(1), second, records.slice(3), added]).write_csv(target)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("home")
    members = home.parent / "counts-members.yaml"
    entry = {"code": KOMAE, "name": "狛江市", "personal_datasets": ["care_certification"],
             "synthetic_personal_rows": 2_000}
    members.write_text(yaml.safe_dump({"members": [entry]}, allow_unicode=True), encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setenv("KOUIKI_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    mp.setenv("KOUIKI_MEMBERS", str(members))
    mp.delenv("KOUIKI_CATALOG_URL", raising=False)
    mp.delenv("KOUIKI_ANONYMISATION_POLICIES", raising=False)
    job = defs.resolve_job_def("anonymise_personal")
    private = home / "private"
    try:
        with instance_for_test() as instance:
            first = run_anonymisation(job, instance, QUIET)
            again = run_anonymisation(job, instance, QUIET)
            current = current_personal_file(private, KOMAE, "care_certification")
            assert current is not None
            inbox = personal_inbox(private, KOMAE, "care_certification")
            changed_file(read_personal_text(current), inbox / "care_certification_132195_2025-05.csv")
            changed = run_anonymisation(job, instance, QUIET)
        yield {"home": home, "first": first, "again": again, "changed": changed}
    finally:
        mp.undo()


def counts_check(run: Any) -> dict[str, Any]:
    return next(c for c in run.checks if c["check"] == "counts_verified")


def test_the_first_release_and_an_unchanged_rerun_pass(runs: dict[str, Any]) -> None:
    assert counts_check(runs["first"])["passed"] is True
    assert runs["first"].releases[COUNTS]["release"] == 1
    assert counts_check(runs["again"])["passed"] is True  # audited with release 1: nothing changed, nothing held
    assert runs["again"].releases[COUNTS] == {"release": 1, "rows": runs["first"].releases[COUNTS]["rows"],
                                              "new": False}


def test_a_change_of_three_people_is_held_with_its_reason(runs: dict[str, Any]) -> None:
    changed = runs["changed"]
    check = counts_check(changed)
    assert check["passed"] is False
    reasons = {reason["code"]: reason for reason in check["reasons"]}
    held = reasons["small_change_between_releases"]
    assert "release 1" in held["en"] and "保留" in held["ja"]
    assert COUNTS not in changed.releases  # the count table is held (the extract has its own verdict)
    latest = json.loads((runs["home"] / "releases" / COUNTS / "latest.json").read_text(encoding="utf-8"))
    assert latest["number"] == 1
    log = [json.loads(line) for line in (runs["home"] / "private" / "extract_log.jsonl").read_text().splitlines()]
    blocked = [entry for entry in log if "small_change_between_releases" in json.dumps(entry)]
    assert blocked, "the hold is in the extract log with its reason"
    published = [entry for entry in log if entry.get("dataset_id") == COUNTS and "counts_audit" in entry]
    assert published and published[0]["counts_audit"]["pinned"] == {"a": 0, "b": 0, "c": 0}
