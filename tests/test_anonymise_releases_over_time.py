"""Releases over time, through the real Dagster job on synthetic data: between two runs one person is added, one
changed and one removed. Differencing the two public extracts (and their changes.json) must identify nobody: the
classes that would isolate them are withheld whole. When that would exceed the suppression limit (a large
change), the release is held with its reason and the previous one stays latest; an office decision for the exact
staged file publishes it (recorded). k people added to one class with diverse care levels publish as they are."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from dagster import instance_for_test

from anonymise.documents import file_sha256
from anonymise.personal import current_personal_file, personal_inbox, read_personal_text
from anonymise.policy import load_policy
from assets.anonymise import AnonymisationRun, run_anonymisation
from pipelines.definitions import defs

KOMAE = "132195"
EXTRACT = "care_certification_anonymised"
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
POLICY = load_policy("care_certification")


class Home:
    """One kouiki home with 狛江市's synthetic 2,000-record file and a Dagster instance for several runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.private = root / "private"
        members = root.parent / f"{root.name}-members.yaml"
        entry = {"code": KOMAE, "name": "狛江市", "personal_datasets": ["care_certification"],
                 "synthetic_personal_rows": 2_000}
        members.write_text(yaml.safe_dump({"members": [entry]}, allow_unicode=True), encoding="utf-8")
        self.env = {"KOUIKI_HOME": str(root), "DAGSTER_HOME": str(root / "dagster"), "KOUIKI_MEMBERS": str(members)}

    def run(self, mp: pytest.MonkeyPatch, instance: Any) -> AnonymisationRun:
        for key, value in self.env.items():
            mp.setenv(key, value)
        return run_anonymisation(defs.resolve_job_def("anonymise_personal"), instance, QUIET)

    def source(self) -> pl.DataFrame:
        file = current_personal_file(self.private, KOMAE, "care_certification")
        assert file is not None
        return read_personal_text(file)

    def send(self, records: pl.DataFrame, name: str) -> None:
        """The city sends a new list (a new file in its private inbox)."""
        records.write_csv(personal_inbox(self.private, KOMAE, "care_certification") / name)

    def latest(self) -> int:
        pointer = self.root / "releases" / EXTRACT / "latest.json"
        return int(json.loads(pointer.read_text(encoding="utf-8"))["number"])

    def release(self, number: int) -> pl.DataFrame:
        return pl.read_csv(self.root / "releases" / EXTRACT / str(number) / f"{EXTRACT}.csv", infer_schema=False)

    def verdict(self) -> Path:
        return self.private / "staging" / "care_certification" / "verified_extract.json"

    def documents(self) -> list[Path]:
        """The 加工方法等情報 of this city, oldest first."""
        folder = self.private / "processing" / "care_certification" / KOMAE
        return sorted(folder.glob("*.json"), key=lambda path: path.stat().st_mtime)

    def log(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in (self.private / "extract_log.jsonl").read_text().splitlines()]


def add_change_remove(source: pl.DataFrame) -> pl.DataFrame:
    """One person removed (row 10), one changed (row 20: another care level and amount), one added (a new person
    like row 30 but born on another day, with their own identifiers)."""
    changed_level = "要介護5" if source["要介護度"][20] != "要介護5" else "要支援1"
    rows = source.with_row_index("_i")
    rows = rows.with_columns(
        pl.when(pl.col("_i") == 20).then(pl.lit(changed_level)).otherwise(pl.col("要介護度")).alias("要介護度"),
        pl.when(pl.col("_i") == 20).then(pl.lit("251000")).otherwise(pl.col("月額サービス利用額"))
        .alias("月額サービス利用額"),
    ).filter(pl.col("_i") != 10).drop("_i")
    newcomer = source.slice(30, 1).with_columns(
        氏名=pl.lit("新規　転入者"), 氏名カナ=pl.lit("シンキ　テンニュウシャ"), 個人番号=pl.lit("987654321093"),
        被保険者番号=pl.lit("0099887766"), 生年月日=pl.lit("1941-06-02"), 要介護度=pl.lit("要介護2"),
    )
    return pl.concat([rows, newcomer])


def many_changed(source: pl.DataFrame) -> pl.DataFrame:
    """One person in forty gets another care level: a change or two in nearly every class, each a group of one or
    two (a large change is safe: twenty changes in a class of fifty form groups of twenty)."""
    levels = ["要支援1", "要支援2", "要介護1", "要介護2", "要介護3", "要介護4", "要介護5"]
    rotated = {level: levels[(i + 1) % len(levels)] for i, level in enumerate(levels)}
    index = pl.int_range(pl.len())
    return source.with_columns(
        pl.when(index % 40 == 0).then(pl.col("要介護度").replace(rotated)).otherwise(pl.col("要介護度"))
        .alias("要介護度")
    )


def diverse_group_added(source: pl.DataFrame, k: int) -> pl.DataFrame:
    """k new people sharing row 30's published attributes (same birth date, 町字, sex, certification date) but
    with k different care levels: to an attacker they are a group of k, diverse in care level."""
    levels = ["要支援1", "要支援2", "要介護1", "要介護2", "要介護3", "要介護4", "要介護5"][:k]
    template = source.slice(30, 1)
    people = [
        template.with_columns(氏名=pl.lit(f"追加　{i}郎"), 氏名カナ=pl.lit(f"ツイカ　{i}ロウ"),
                              個人番号=pl.lit(None, dtype=pl.String), 被保険者番号=pl.lit(f"00777000{i:02d}"),
                              要介護度=pl.lit(level))
        for i, level in enumerate(levels)
    ]
    return pl.concat([source, *people])


def isolated_by_difference(old: pl.DataFrame, new: pl.DataFrame, k: int, l: int) -> list[tuple[str, ...]]:  # noqa: E741
    """The attacker, written independently of anonymise.differencing: match rows by content within each class of
    the published quasi-identifiers; an added, removed or kept group of 1..k-1 rows (or < l care levels) in a
    class singles out whoever the attacker knows joined, left or stayed."""
    qis = list(POLICY.qi_columns)
    found = []
    for key in set(old.select(qis).rows()) | set(new.select(qis).rows()):
        before = _rows_in(old, qis, key)
        after = _rows_in(new, qis, key)
        for group in (after - before, before - after, before & after):
            size = sum(group.values())
            levels = {row[old.columns.index("要介護度")] for row in group}
            if 0 < size < k or (size and len(levels) < l):
                found.append(key)
    return found


def _rows_in(frame: pl.DataFrame, qis: list[str], key: tuple[str, ...]) -> Counter[tuple[str, ...]]:
    mask = pl.all_horizontal([pl.col(c) == v for c, v in zip(qis, key, strict=True)])
    return Counter(frame.filter(mask).rows())


def no_row_keys(changes: dict[str, Any]) -> None:
    text = json.dumps(changes)
    assert not re.search(r"[0-9a-f]{32}", text) and "row:" not in text
    assert all(not keys for keys in changes.get("keys", {}).values())


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run 1 publishes; run 2 (one added, one changed, one removed) publishes with classes withheld; run 3 (one
    in forty changed, spread over nearly every class) is held; run 4, after the office's decision on that exact
    staged file, publishes it."""
    home = Home(tmp_path_factory.mktemp("history") / "home")
    mp = pytest.MonkeyPatch()
    mp.delenv("KOUIKI_CATALOG_URL", raising=False)
    mp.delenv("KOUIKI_ANONYMISATION_POLICIES", raising=False)
    try:
        with instance_for_test() as instance:
            first = home.run(mp, instance)
            home.send(add_change_remove(home.source()), "update_2.csv")
            second = home.run(mp, instance)
            verdict_second = json.loads(home.verdict().read_text(encoding="utf-8"))
            home.send(many_changed(home.source()), "update_3.csv")
            third = home.run(mp, instance)
            latest_after_third = home.latest()
            staged = home.private / "staging" / "care_certification" / f"{EXTRACT}.csv"
            decision = {"approve_extract_sha256": file_sha256(staged), "decided_by": "データ事務局 山田",
                        "reason": "要介護度の見直しを公表する（試験）"}
            (home.private / "decisions").mkdir()
            (home.private / "decisions" / "care_certification_differencing.json").write_text(
                json.dumps(decision, ensure_ascii=False), encoding="utf-8")
            fourth = home.run(mp, instance)
        yield {"home": home, "first": first, "second": second, "third": third, "fourth": fourth,
               "verdict_second": verdict_second, "latest_after_third": latest_after_third}
    finally:
        mp.undo()


def check(run: AnonymisationRun, name: str) -> dict[str, Any]:
    return next(c for c in run.checks if c["check"] == name)


def test_the_first_release_is_published_with_totals_only_changes(history: dict[str, Any]) -> None:
    home = history["home"]
    assert history["first"].ok
    folder = home.root / "releases" / EXTRACT / "1"
    changes = json.loads((folder / "changes.json").read_text(encoding="utf-8"))
    no_row_keys(changes)
    assert changes["rows"] == home.release(1).height
    assert json.loads((folder / "metadata.json").read_text(encoding="utf-8"))["changes"]["added"] is None


def test_one_added_changed_and_removed_person_is_identified_by_no_difference(history: dict[str, Any]) -> None:
    """The acceptance: release 2 is published and the attacker's difference with release 1 (multisets of rows
    per class) isolates nobody; changes.json holds totals only; the classes withheld are recorded privately."""
    home = history["home"]
    assert history["second"].ok, check(history["second"], "extract_verified")["reasons"]
    assert isolated_by_difference(home.release(1), home.release(2), POLICY.model.k, POLICY.model.l or 1) == []
    changes = json.loads((home.root / "releases" / EXTRACT / "2" / "changes.json").read_text(encoding="utf-8"))
    no_row_keys(changes)
    assert (changes["previous_rows"], changes["rows"]) == (home.release(1).height, home.release(2).height)
    differencing = history["verdict_second"]["differencing"]
    assert differencing["compared_with_releases"] == [1] and differencing["unsafe_classes"] == {}
    withheld = [json.loads(p.read_text(encoding="utf-8"))["releases_over_time"] for p in home.documents()]
    [used] = [w for w in withheld if w["withheld"]]
    assert used["classes"] >= 1 and used["compared_with"] == [1]
    # the withheld people are named privately, by their row in the stored source file
    assert len(set(used["rows"])) == used["records"] and max(used["rows"]) < home.source().height


def test_a_change_too_large_to_withhold_holds_the_release_with_its_reason(history: dict[str, Any]) -> None:
    home = history["home"]
    extract = check(history["third"], "extract_verified")
    assert not extract["passed"] and not history["third"].ok
    [reason] = extract["reasons"]
    assert reason["code"] == "history.differencing"
    assert "release 1" in reason["en"] and "release 2" in reason["en"] and "held" in reason["en"]
    assert "保留" in reason["ja"]
    assert history["latest_after_third"] == 2  # the previous release stays latest
    # the log also holds the count table's own holds (small_change_between_releases): find the extract's
    blocked = [e for e in home.log()
               if any(r["code"] == "history.differencing" for r in e.get("blocked_reasons") or [])]
    assert blocked, "the extract's hold is in the log with its reason"


def test_an_office_decision_publishes_that_exact_file_and_is_recorded(history: dict[str, Any]) -> None:
    home = history["home"]
    assert check(history["fourth"], "extract_verified")["passed"] and home.latest() == 3
    verdict = json.loads(home.verdict().read_text(encoding="utf-8"))
    assert verdict["differencing"]["office_decision"]["decided_by"] == "データ事務局 山田"
    # what the office accepted is real: the difference with release 2 does single classes out
    assert isolated_by_difference(home.release(2), home.release(3), POLICY.model.k, POLICY.model.l or 1)
    entry = [e for e in home.log() if e.get("release_number") == 3 and e.get("dataset_id") == EXTRACT][-1]
    assert entry["levels"][KOMAE]  # the generalisation is recorded privately for the next comparison


def test_rows_are_shuffled_and_the_seed_is_kept_private(history: dict[str, Any]) -> None:
    home = history["home"]
    published = home.release(1)
    assert published.rows() != published.sort(published.columns).rows()
    documents = home.documents()
    seeds = {path: json.loads(path.read_text(encoding="utf-8"))["row_order"]["seed"] for path in documents}
    assert len(documents) >= 3 and None not in seeds.values()
    by_source = {path.name.split("_levels")[0]: seed for path, seed in seeds.items()}
    assert len(set(by_source.values())) == len(by_source)  # one seed per source file, a new one for a new file
    for path in documents:
        assert path.stat().st_mode & 0o777 == 0o400
    published_text = [p.read_text(encoding="utf-8", errors="ignore") for p in (home.root / "releases").rglob("*")
                      if p.is_file()]
    for seed in by_source.values():
        assert not any(str(seed) in text for text in published_text)


def test_the_processing_information_has_the_five_standards(history: dict[str, Any]) -> None:
    home = history["home"]
    info = json.loads(home.documents()[0].read_text(encoding="utf-8"))
    standards = info["processing_standards"]
    assert [s["standard"] for s in standards] == [1, 2, 3, 4, 5]
    assert {"氏名", "住所", "電話番号"} <= set(standards[0]["done"]["deleted_columns"])
    assert set(standards[1]["done"]["deleted_columns"]) == {"個人番号", "被保険者番号"}
    assert standards[1]["values_affected"] > 0
    assert standards[3]["done"]["local_suppression"]["records"] == len(info["suppressed_records"]["rows"])
    assert all("第31条" in s["basis"] for s in standards)
    assert "withheld_for_differencing" in standards[4]["done"]


@pytest.fixture(scope="module")
def safe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = Home(tmp_path_factory.mktemp("safe") / "home")
    mp = pytest.MonkeyPatch()
    mp.delenv("KOUIKI_CATALOG_URL", raising=False)
    mp.delenv("KOUIKI_ANONYMISATION_POLICIES", raising=False)
    try:
        with instance_for_test() as instance:
            first = home.run(mp, instance)
            home.send(diverse_group_added(home.source(), POLICY.model.k), "update_2.csv")
            second = home.run(mp, instance)
        yield {"home": home, "first": first, "second": second}
    finally:
        mp.undo()


def test_k_diverse_newcomers_in_one_class_are_published_and_identify_nobody(safe: dict[str, Any]) -> None:
    home = safe["home"]
    assert safe["first"].ok
    assert safe["second"].ok, check(safe["second"], "extract_verified")["reasons"]
    assert home.latest() == 2
    assert isolated_by_difference(home.release(1), home.release(2), POLICY.model.k, POLICY.model.l or 1) == []
    assert home.release(2).height == home.release(1).height + POLICY.model.k
    verdict = json.loads(home.verdict().read_text(encoding="utf-8"))
    assert verdict["differencing"]["compared_with_releases"] == [1] and not verdict["differencing"]["held"]
