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

from anonymise.documents import file_sha256
from anonymise.personal import current_personal_file, personal_inbox, read_personal_text
from anonymise.staging import staging_folder
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
            latest_when_held = json.loads((home / "releases" / COUNTS / "latest.json").read_text(encoding="utf-8"))
            staged_counts = staging_folder(private, "care_certification") / f"{COUNTS}.csv"
            decision = {"approve_counts_sha256": [file_sha256(staged_counts)], "decided_by": "事務局 山田",
                        "reason": "年度末の定例公表。3人の増減は町字・年齢階級・性別の表では特定につながらないと判断"}
            (private / "decisions").mkdir(exist_ok=True)
            # the extract of the same change waits too (its own differencing check): the office decides both
            staged_extract = staging_folder(private, "care_certification") / "care_certification_anonymised.csv"
            (private / "decisions" / "care_certification_differencing.json").write_text(json.dumps(
                {**decision, "approve_extract_sha256": file_sha256(staged_extract)}, ensure_ascii=False),
                encoding="utf-8")
            (private / "decisions" / "care_certification_counts.json").write_text(
                json.dumps(decision, ensure_ascii=False), encoding="utf-8")
            decided = run_anonymisation(job, instance, QUIET)
        yield {"home": home, "first": first, "again": again, "changed": changed, "decided": decided,
               "decision": decision, "latest_when_held": latest_when_held}
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
    assert runs["latest_when_held"]["number"] == 1  # (until the office decides, below)
    log = [json.loads(line) for line in (runs["home"] / "private" / "extract_log.jsonl").read_text().splitlines()]
    blocked = [entry for entry in log if "small_change_between_releases" in json.dumps(entry)]
    assert blocked, "the hold is in the extract log with its reason"
    published = [entry for entry in log if entry.get("dataset_id") == COUNTS and "counts_audit" in entry]
    assert published and published[0]["counts_audit"]["pinned"] == {"a": 0, "b": 0, "c": 0}


def test_the_office_decision_publishes_that_exact_held_table_with_its_reason(runs: dict[str, Any]) -> None:
    decided = runs["decided"]
    assert counts_check(decided)["passed"] is True
    assert COUNTS in decided.releases, (decided.releases, decided.checks, decided)
    assert decided.releases[COUNTS]["release"] == 2
    verdict = json.loads((runs["home"] / "private" / "staging" / "care_certification" / "verified_counts.json")
                         .read_text(encoding="utf-8"))
    recorded = verdict["tables"][COUNTS]["office_decision"]
    assert recorded["reason"] == runs["decision"]["reason"] and recorded["decided_by"] == "事務局 山田"
    # the hold is still measured and shown beside the decision: the decision does not hide what it overrode
    assert any(r["code"] == "small_change_between_releases" for r in verdict["tables"][COUNTS]["reasons"])
