"""Where an upload stands for its city: real releases (publish_dataset on DuckDB) and a real catalog; the state,
the release number, rows read / published / withheld and the top reasons; and the run summary's wording."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from rich.console import Console

from expectations.registry import default_registry
from kouiki import catalog
from kouiki.publication import ReleaseIndex, publication
from publish.release import publish_dataset

AED = default_registry().get("aed")
KOMAE, YAIZU = "132195", "222127"


def aed_rows(upload_id: str, city: str, n: int) -> list[dict[str, Any]]:
    return [{"全国地方公共団体コード": city, "ID": str(i), "名称": f"施設{i}", "緯度": 35.6, "経度": 139.5,
             "_city_code": city, "_upload_id": upload_id} for i in range(n)]


def publish(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]], root: Path, url: str) -> int:
    df = pl.DataFrame(rows, schema={"全国地方公共団体コード": pl.String, "ID": pl.String, "名称": pl.String,
                                    "緯度": pl.Float64, "経度": pl.Float64, "_city_code": pl.String,
                                    "_upload_id": pl.String})
    con.register("df", df.to_arrow())
    con.execute("CREATE OR REPLACE TABLE aed AS SELECT * FROM df")
    con.unregister("df")
    return publish_dataset(con, AED, "aed", root, url).number


def add(url: str, upload_id: str, city: str, status: str, **detail: Any) -> catalog.UploadRow:
    catalog.add_upload(url, {"upload_id": upload_id, "city_code": city, "sha256": upload_id.ljust(64, "0"),
                             "original_name": f"{upload_id}.csv", "size": 1, "stored_path": f"landing/{upload_id}",
                             "received_at": datetime.now(UTC), "source": "api", "status": status,
                             "dataset_id": "aed"})
    catalog.set_upload_status(url, upload_id, status, detail=detail)
    row = catalog.get_upload(url, upload_id)
    assert row is not None
    return row


@pytest.fixture()
def home(tmp_path: Path) -> tuple[duckdb.DuckDBPyConnection, Path, str]:
    return duckdb.connect(), tmp_path / "releases", f"sqlite:///{tmp_path / 'catalog.sqlite'}"


def test_states_follow_the_catalog_and_the_releases(home: tuple[duckdb.DuckDBPyConnection, Path, str]) -> None:
    con, root, url = home
    komae = add(url, "132195-aaaa", KOMAE, "accepted", rows=3, rows_accepted=3, rows_quarantined=0,
                failures_by_code={})
    yaizu = add(url, "222127-bbbb", YAIZU, "quarantined", rows=5, rows_accepted=4, rows_quarantined=1,
                failures_by_code={"format-error": 3, "unique-error": 1, "missing-cell": 0},
                errors_by_code={"unique-error": 1}, rows_with_warnings=3)
    index = ReleaseIndex(root)
    assert publication(komae, index).state == "validated"          # accepted, no release yet

    first = publish(con, aed_rows(komae.upload_id, KOMAE, 3) + aed_rows(yaizu.upload_id, YAIZU, 4), root, url)
    pub = publication(komae, index)
    assert (pub.state, pub.release, pub.rows_read, pub.rows_published, pub.rows_withheld) == (
        "published", first, 3, 3, 0)
    assert pub.label_ja == f"公開済み（第{first}版）" and pub.label_en == f"published (release {first})"
    part = publication(yaizu, index)
    assert (part.state, part.rows_published, part.rows_withheld) == ("partly_published", 4, 1)
    assert [(r.code, r.count, r.title_ja) for r in part.reasons] == [("unique-error", 1, "IDの重複")]  # withheld
    assert [(r.code, r.count) for r in part.warnings] == [("format-error", 3)] and part.rows_with_warnings == 3

    # Komae sends a corrected file: the new one is in release 2, the old one reads "replaced"
    newer = add(url, "132195-cccc", KOMAE, "accepted", rows=2, rows_accepted=2, rows_quarantined=0)
    second = publish(con, aed_rows(newer.upload_id, KOMAE, 2) + aed_rows(yaizu.upload_id, YAIZU, 4), root, url)
    assert second == first + 1
    assert (publication(newer, index).state, publication(newer, index).release) == ("published", second)
    old = publication(komae, index)
    assert (old.state, old.release) == ("superseded", first) and "差し替え済み" in old.label_ja


def test_refused_waiting_and_withheld_uploads(home: tuple[duckdb.DuckDBPyConnection, Path, str]) -> None:
    _, root, url = home
    index = ReleaseIndex(root)
    waiting = add(url, "132195-dddd", KOMAE, "landed")
    assert publication(waiting, index).label_ja == "受付済み（処理待ち）"
    unreadable = add(url, "132195-eeee", KOMAE, "unreadable",
                     error={"code": "encoding-error", "message_ja": "…", "message_en": "…"})
    pub = publication(unreadable, index)
    assert pub.label_ja.startswith("受付不可") and [r.code for r in pub.reasons] == ["encoding-error"]
    rejected = add(url, "132195-ffff", KOMAE, "rejected", rows=10, rows_accepted=0, rows_quarantined=10,
                   failures_by_code={"unique-error": 7, "format-error": 9, "missing-cell": 2, "range-error": 1})
    pub = publication(rejected, index)
    assert (pub.state, pub.rows_published, pub.label_ja) == ("refused", 0, "受付不可")
    assert [r.code for r in pub.reasons] == ["format-error", "unique-error", "missing-cell"]   # top three
    withheld = add(url, "132195-9999", KOMAE, "quarantined", rows=4, rows_accepted=0, rows_quarantined=4)
    assert publication(withheld, index).state == "withheld"


def test_run_summary_says_published_and_no_run_failed_for_a_published_city(
        home: tuple[duckdb.DuckDBPyConnection, Path, str], tmp_path: Path) -> None:
    from commands.cli import uploads_table
    from kouiki.members import Member
    from kouiki.settings import Paths
    from pipelines.main_run import CityOutcome, MainOutcome

    con, _, _ = home
    paths = Paths(tmp_path / "home").ensure()
    url = paths.catalog_url
    komae = add(url, "132195-aaaa", KOMAE, "accepted", rows=3, rows_accepted=3, rows_quarantined=0)
    refused = add(url, "222127-bbbb", YAIZU, "rejected", rows=2, rows_accepted=0, rows_quarantined=2,
                  failures_by_code={"unique-error": 2})
    number = publish(con, aed_rows(komae.upload_id, KOMAE, 3), paths.releases, url)
    outcome = MainOutcome(cities=[CityOutcome(Member(KOMAE, "狛江市"), False, [komae]),
                                  CityOutcome(Member(YAIZU, "焼津市"), False, [refused])],
                          region_ok=True, releases={}, paths=paths)
    console = Console(width=250, record=True)
    console.print(uploads_table(outcome))
    text = console.export_text()
    assert f"公開済み（第{number}版）" in text and "受付不可" in text and "IDの重複" in text
    assert "run failed" not in text     # the run "failed" for a refused file, but nothing is left waiting
