"""Crash safety of the lake, the releases and the catalog: a real process is ended at each named step boundary
(``KOUIKI_CRASH_AT``, as abrupt as SIGKILL), then recovery must leave exactly the state an uninterrupted run
leaves. The whole ``kouiki run`` is killed at random and at every boundary by ``bench/crash_harness.py``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import polars as pl
import pytest

from kouiki import catalog, lake
from kouiki.crashpoints import CRASH_EXIT_CODE
from kouiki.settings import REPO_ROOT, Paths
from publish.recover import recover_dataset, recover_releases

PUBLISH_SCRIPT = textwrap.dedent("""
    import sys
    import duckdb, polars as pl
    from pathlib import Path
    from expectations.registry import default_registry
    from publish.release import publish_dataset

    root, url, rows = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    df = pl.DataFrame({"全国地方公共団体コード": ["132195"] * rows, "ID": [str(i) for i in range(rows)],
                       "名称": [f"施設{i}" for i in range(rows)], "_city_code": ["132195"] * rows,
                       "_upload_id": ["132195-u"] * rows})
    con = duckdb.connect()
    con.register("df", df.to_arrow())
    con.execute("CREATE TABLE aed AS SELECT * FROM df")
    result = publish_dataset(con, default_registry().get("aed"), "aed", root, url)
    print(result.number, result.published)
""")

LAKE_SCRIPT = textwrap.dedent("""
    import sys
    import polars as pl
    from kouiki import lake
    lake.write_partition(pl.DataFrame({"x": list(range(int(sys.argv[2])))}), sys.argv[1], "staged", "aed", "132195")
""")


def _python(script: str, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOUIKI_CRASH")}
    if crash_at:
        env["KOUIKI_CRASH_AT"] = crash_at
    return subprocess.run([sys.executable, "-c", script, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def _publish(root: Path, url: str, rows: int) -> tuple[int, bool]:
    """PUBLISH_SCRIPT in this process (the runs that do not crash)."""
    from expectations.registry import default_registry
    from publish.release import publish_dataset

    df = pl.DataFrame({"全国地方公共団体コード": ["132195"] * rows, "ID": [str(i) for i in range(rows)],
                       "名称": [f"施設{i}" for i in range(rows)], "_city_code": ["132195"] * rows,
                       "_upload_id": ["132195-u"] * rows})
    con = duckdb.connect()
    con.register("df", df.to_arrow())
    con.execute("CREATE TABLE aed AS SELECT * FROM df")
    result = publish_dataset(con, default_registry().get("aed"), "aed", root, url)
    return result.number, result.published


def _state(root: Path, url: str) -> dict[str, object]:
    """What a reader sees: release folders, latest.json's number, catalog rows; no leftovers."""
    dataset = root / "aed"
    return {
        "folders": sorted(p.name for p in dataset.iterdir()),
        "latest": json.loads((dataset / "latest.json").read_text(encoding="utf-8"))["number"],
        "catalog": sorted(catalog.release_numbers(url, "aed")),
    }


# ------------------------------------------------------------------------------------------------- lake

def test_a_crash_mid_write_leaves_the_old_partition_readable_and_its_leftover_is_removed(tmp_path: Path) -> None:
    lake_root = tmp_path / "lake"
    lake.write_partition(pl.DataFrame({"x": list(range(81))}), lake_root, "staged", "aed", "132195")
    for point in ("lake.written", "lake.renamed"):
        crashed = _python(LAKE_SCRIPT, str(lake_root), "137", crash_at=point)
        assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    # the crash before the rename left a temporary file: readers' glob never sees it (no "No magic bytes",
    # no rows counted twice), and the next run removes it
    leftovers = lake.leftovers(lake_root)
    assert len(leftovers) == 1 and not leftovers[0].endswith(".parquet")
    (Path(lake.partition_dir(lake_root, "staged", "aed", "132195")) / f".tmp-{'0' * 32}.parquet").write_bytes(
        b"half a file of an older version")
    assert len(lake.leftovers(lake_root)) == 2
    assert lake.remove_leftovers(lake_root) and lake.leftovers(lake_root) == []
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{lake.dataset_glob(lake_root, 'staged', 'aed')}')")
    assert rows.fetchone() == (137,)   # the write after the rename point is complete


def test_a_live_writers_temporary_file_is_not_a_leftover(tmp_path: Path) -> None:
    folder = Path(lake.partition_dir(tmp_path, "staged", "aed", "132195"))
    folder.mkdir(parents=True)
    (folder / f".data.parquet.{os.getpid()}.{'a' * 32}.tmp").write_bytes(b"being written")
    assert lake.leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------- releases

@pytest.mark.parametrize("point", ["publish.files_written", "publish.renamed", "publish.latest_written",
                                   "publish.recorded"])
def test_a_crash_at_any_publication_step_recovers_to_the_uninterrupted_state(tmp_path: Path, point: str) -> None:
    expected_root, root = tmp_path / "expected", tmp_path / "crashed"
    expected_url, url = f"sqlite:///{tmp_path / 'expected.sqlite'}", f"sqlite:///{tmp_path / 'crashed.sqlite'}"
    for rows in (3, 5):
        _publish(expected_root, expected_url, rows)
    _publish(root, url, 3)
    crashed = _python(PUBLISH_SCRIPT, str(root), url, "5", crash_at=point)
    assert crashed.returncode == CRASH_EXIT_CODE, crashed.stderr
    # the rerun (publish_dataset recovers first) ends where the uninterrupted run ended
    assert _publish(root, url, 5) == (2, point == "publish.files_written")
    assert _state(root, url) == _state(expected_root, expected_url) == {
        "folders": ["1", "2", "latest.json"], "latest": 2, "catalog": [1, 2]}


def test_an_orphan_release_folder_is_recorded_and_a_lost_catalog_row_re_added(tmp_path: Path) -> None:
    root, url = tmp_path / "releases", f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    _publish(root, url, 3)
    assert _python(PUBLISH_SCRIPT, str(root), url, "4", crash_at="publish.renamed").returncode == CRASH_EXIT_CODE
    recovery = recover_dataset(root / "aed", url)
    assert any("latest.json" in line and "2" in line for line in recovery.repaired), recovery
    assert any(line.startswith(str(root / "aed" / "2")) for line in recovery.repaired), recovery
    assert _state(root, url) == {"folders": ["1", "2", "latest.json"], "latest": 2, "catalog": [1, 2]}
    meta = json.loads((root / "aed" / "2" / "metadata.json").read_text(encoding="utf-8"))
    with catalog.begin(url) as conn:
        published = conn.execute(catalog.releases.select().where(catalog.releases.c.number == 2)).mappings().one()
    assert published["content_hash"] == meta["content_hash"] and published["rows"] == 4
    assert recover_dataset(root / "aed", url).repaired == []   # idempotent


def test_a_corrupt_latest_json_is_named_in_one_line_and_rebuilt_without_stopping_publication(
        tmp_path: Path) -> None:
    root, url = tmp_path / "releases", f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    _publish(root, url, 3)
    pointer = root / "aed" / "latest.json"
    pointer.write_text('{"number": 1, "content_ha', encoding="utf-8")
    recovery = recover_releases(root, url)
    line = next(line for line in recovery.repaired if str(pointer) in line)
    assert "\n" not in line and "line 1" in line
    assert json.loads(pointer.read_text(encoding="utf-8"))["number"] == 1
    pointer.write_bytes(b"\xff\xfe garbage")
    published = _python(PUBLISH_SCRIPT, str(root), url, "4")
    assert published.returncode == 0 and published.stdout.split() == ["2", "True"], published.stderr
    assert str(pointer) in published.stderr and "Traceback" not in published.stderr


def test_a_release_whose_metadata_is_corrupt_is_reported_and_kept_out_of_latest(tmp_path: Path) -> None:
    root, url = tmp_path / "releases", f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    for rows in (3, 4):
        _publish(root, url, rows)
    metadata = root / "aed" / "2" / "metadata.json"
    metadata.write_text("{", encoding="utf-8")
    recovery = recover_dataset(root / "aed", url)
    assert [p for p in recovery.problems if str(metadata) in p and "\n" not in p]
    assert json.loads((root / "aed" / "latest.json").read_text(encoding="utf-8"))["number"] == 1


# ------------------------------------------------------------------------------------- landing & catalog

def _land(paths: Paths, city: str, name: str, text: str, via: str = "inbox") -> str:
    from intake.landing import land_file

    source = paths.home.parent / "src" / name
    source.parent.mkdir(exist_ok=True)
    source.write_text(text, encoding="utf-8")
    return land_file(paths, city, source, via=via).upload_id


def test_a_lost_catalog_is_rebuilt_from_landing_and_never_republishes_superseded_data(tmp_path: Path) -> None:
    """An old inbox file picked up again after the catalog is lost keeps its first time and its decision,
    so it never supersedes the correction that came after it."""
    from intake.landing import record_refusal, restore_uploads

    paths = Paths(tmp_path / "home").ensure()
    old = _land(paths, "132195", "aed.csv", "ID,名称\n1,旧\n")
    new = _land(paths, "132195", "aed_fixed.csv", "ID,名称\n1,新\n", via="api")
    refused = _land(paths, "132195", "aed_formula.csv", "ID,名称\n1,=cmd()\n", via="api")
    stored = next(u.stored_path for u in catalog.list_uploads(paths.catalog_url) if u.upload_id == refused)
    record_refusal(paths, stored, "rejected", {"error": {"code": "formula-cell"}, "refused": True})
    for upload_id, decision in ((old, "accept"), (new, "quarantine")):   # as the lake load records them
        lake.write_partition(pl.DataFrame({"upload_id": [upload_id], "dataset_id": ["aed"], "decision": [decision],
                                           "rows": [1], "rows_accepted": [1], "rows_quarantined": [0]}),
                             paths.lake, "history", "aed", "132195", file_name=f"{upload_id}.parquet")
    before = {u.upload_id: u for u in catalog.list_uploads(paths.catalog_url)}
    catalog.forget_engines()
    (paths.home / "catalog.sqlite").unlink()
    # the inbox is picked up again before anything else
    assert _land(paths, "132195", "aed.csv", "ID,名称\n1,旧\n") == old
    restored = restore_uploads(paths)
    assert sorted(line.rsplit(" ", 1)[-1] for line in restored) == sorted([new, refused])
    after = {u.upload_id: u for u in catalog.list_uploads(paths.catalog_url)}
    assert [u.upload_id for u in catalog.list_uploads(paths.catalog_url)] == [old, new, refused]   # oldest first
    # bytes the upload service refused stay refused: the pipeline never takes them up
    assert after[refused].status == "rejected" and (after[refused].detail or {}).get("refused") is True
    for uid in (old, new):
        assert after[uid].received_at == before[uid].received_at
        assert after[uid].original_name == before[uid].original_name
    assert (after[old].status, after[new].status) == ("accepted", "quarantined")   # nothing to process again
    assert after[new].source == "api"


# ------------------------------------------------------------------------------------------------- doctor

def test_doctor_names_each_corruption_in_one_line_and_repairs_what_it_can(tmp_path: Path) -> None:
    from commands.doctor import doctor

    paths = Paths(tmp_path / "home").ensure()
    upload = _land(paths, "132195", "aed.csv", "ID,名称\n1,a\n")
    _publish(paths.releases, paths.catalog_url, 3)
    assert doctor(paths, None, fix=False).problems == []
    landed = next(p for p in (paths.landing / "132195").iterdir() if p.suffix == ".csv")
    landed.chmod(0o644)
    landed.write_text("ID,名称\n1,tampered\n", encoding="utf-8")
    csv = paths.releases / "aed" / "1" / "aed.csv"
    csv.write_text(csv.read_text(encoding="utf-8").replace("施設1", "施設9"), encoding="utf-8")  # same size
    (paths.releases / "aed" / "latest.json").write_text("not json", encoding="utf-8")
    (paths.releases / "aed" / ".incomplete-2-999999999").mkdir()
    db = paths.home / "catalog.sqlite"
    catalog.forget_engines()
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(db.read_bytes()[:4096] + b"\0garbage" * 512)
    report = doctor(paths, None, fix=False)
    lines = [p.line() for p in report.problems]
    for name in (str(landed), str(csv), str(paths.releases / "aed" / "latest.json"), str(db),
                 str(paths.releases / "aed" / ".incomplete-2-999999999")):
        assert [line for line in lines if line.startswith(name)], (name, lines)
    assert all("\n" not in line for line in lines)
    repaired = doctor(paths, None, fix=True)
    left = [p.line() for p in repaired.problems]
    # the tampered landed file and the altered release file need a backup; everything else is repaired
    assert sorted(p.file for p in repaired.problems) == sorted([str(landed), str(csv)]), left
    assert any("catalog" in line for line in repaired.repaired)
    assert {u.upload_id for u in catalog.list_uploads(paths.catalog_url)} == {upload}
    assert catalog.release_numbers(paths.catalog_url, "aed") == {1}
