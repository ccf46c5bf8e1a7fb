"""The CKAN-compatible Action API, driven by a real CKAN client (ckanapi) against the real server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ckanapi
import httpx
import polars as pl
import pytest

from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import build_sample_tree, serve

RESOURCE = "evacuation_space-2-csv"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pl.DataFrame]]:
    home = tmp_path_factory.mktemp("home")
    return home, build_sample_tree(home / "releases")


@pytest.fixture(scope="module")
def base_url(sample: tuple[Path, dict[str, pl.DataFrame]]) -> Iterator[str]:
    with serve(create_app(PortalSettings(home=sample[0]))) as url:
        yield url


@pytest.fixture(scope="module")
def ckan(base_url: str) -> Iterator[ckanapi.RemoteCKAN]:
    with ckanapi.RemoteCKAN(base_url) as client:
        yield client


@pytest.fixture(scope="module")
def evacuation(sample: tuple[Path, dict[str, pl.DataFrame]]) -> pl.DataFrame:
    return sample[1]["evacuation_space"]


def _all_records(ckan: ckanapi.RemoteCKAN, resource_id: str, page: int,
                 **params: Any) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        result = ckan.action.datastore_search(resource_id=resource_id, limit=page, offset=offset, **params)
        records += result["records"]
        offset += page
        if offset >= result["total"]:
            return records


def _api(base_url: str, action: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{base_url}/api/3/action/{action}", params=params, timeout=10)


# ------------------------------------------------------------------------------------------- ckanapi client


def test_ckan_client_lists_shows_and_searches_packages(ckan: ckanapi.RemoteCKAN) -> None:
    assert ckan.action.package_list() == ["aed", "evacuation_space"]
    package = ckan.action.package_show(id="evacuation_space")
    assert package["title"] == "指定緊急避難場所一覧"
    assert package["version"] == "2"
    assert [r["number"] for r in package["kouiki"]["releases"]] == [2, 1]
    assert [r["rows"] for r in package["kouiki"]["releases"]] == [152, 141]
    ids = {r["alias"] for r in package["resources"]}
    assert {RESOURCE, "evacuation_space-2-excel-csv", "evacuation_space-2-parquet",
            "evacuation_space-2-122033-csv", "evacuation_space-2-222127-excel-csv"} <= ids
    assert {c["code"]: c["rows"] for c in package["kouiki"]["cities"]} == {"122033": 121, "222127": 31}

    found = ckan.action.package_search(q="避難")
    assert found["count"] == 1 and found["results"][0]["name"] == "evacuation_space"
    assert ckan.action.package_search(fq="city:132195")["count"] == 1   # only 狛江市's AED
    assert ckan.action.package_search(fq="city:222127")["count"] == 2   # 焼津市 is in both
    tagged = ckan.action.package_search(fq="tags:防災 -name:aed")
    assert [p["name"] for p in tagged["results"]] == ["evacuation_space"]
    paged = [ckan.action.package_search(rows=1, start=i, sort="name asc")["results"][0]["name"]
             for i in (0, 1)]
    assert paged == ["aed", "evacuation_space"]
    resource = ckan.action.resource_show(id="evacuation_space-2-222127-csv")
    assert resource["format"] == "CSV" and resource["datastore_active"] is True
    assert resource["url"].endswith("/download/evacuation_space/2/cities/222127_evacuation_space.csv")


def test_ckan_client_pages_through_every_row_exactly_once(ckan: ckanapi.RemoteCKAN,
                                                          evacuation: pl.DataFrame) -> None:
    records = _all_records(ckan, RESOURCE, page=40)
    assert len(records) == evacuation.height == 152
    assert sorted(r["_id"] for r in records) == list(range(1, 153))
    assert [{k: v for k, v in r.items() if k != "_id"} for r in records] == evacuation.to_dicts()


def test_city_resource_holds_exactly_that_citys_rows(ckan: ckanapi.RemoteCKAN,
                                                     evacuation: pl.DataFrame) -> None:
    records = _all_records(ckan, "evacuation_space-2-222127-csv", page=7)
    expected = evacuation.filter(pl.col("市区町村コード") == "222127")
    assert [r["ID"] for r in records] == expected["ID"].to_list()
    assert len({r["_id"] for r in records}) == 31


def test_get_only_client_and_older_release(base_url: str) -> None:
    with ckanapi.RemoteCKAN(base_url, get_only=True) as client:
        result = client.action.datastore_search(resource_id="evacuation_space-1-csv", limit=1000)
    assert result["total"] == 141 and len(result["records"]) == 141


def test_unknown_things_are_ckan_errors(ckan: ckanapi.RemoteCKAN, base_url: str) -> None:
    with pytest.raises(ckanapi.NotFound):
        ckan.action.package_show(id="no_such_dataset")
    with pytest.raises(ckanapi.NotFound):
        ckan.action.resource_show(id="evacuation_space-9-csv")
    response = _api(base_url, "package_create", name="x")
    assert response.status_code == 400
    assert response.json()["success"] is False and response.json()["error"]["__type"] == "Bad request"


# ------------------------------------------------------------------------------------------- datastore_search


def test_sort_by_several_columns(ckan: ckanapi.RemoteCKAN, evacuation: pl.DataFrame) -> None:
    result = ckan.action.datastore_search(resource_id=RESOURCE, sort="市区町村コード desc, 緯度 asc",
                                          fields=["ID", "市区町村コード", "緯度"], limit=200)
    expected = evacuation.with_row_index().sort(["市区町村コード", "緯度", "index"],
                                                descending=[True, False, False], nulls_last=True)
    assert [r["ID"] for r in result["records"]] == expected["ID"].to_list()
    assert list(result["records"][0]) == ["ID", "市区町村コード", "緯度"]
    assert [f["id"] for f in result["fields"]] == ["ID", "市区町村コード", "緯度"]
    assert [f["type"] for f in result["fields"]] == ["text", "text", "float8"]


def test_filters_values_lists_and_row_ids(ckan: ckanapi.RemoteCKAN, evacuation: pl.DataFrame) -> None:
    yaizu = ckan.action.datastore_search(resource_id=RESOURCE, filters={"市区町村コード": "222127"}, limit=0)
    assert yaizu["total"] == 31 and yaizu["records"] == []
    names = evacuation["名称"].head(3).to_list()
    several = ckan.action.datastore_search(resource_id=RESOURCE, filters={"名称": names})
    assert {r["名称"] for r in several["records"]} == set(names)
    assert several["total"] == evacuation.filter(pl.col("名称").is_in(names)).height
    by_id = ckan.action.datastore_search(resource_id=RESOURCE, filters=json.dumps({"_id": [2, 152]}))
    assert [r["ID"] for r in by_id["records"]] == [evacuation["ID"][1], evacuation["ID"][151]]


def test_full_text_q_and_column_q(ckan: ckanapi.RemoteCKAN, evacuation: pl.DataFrame) -> None:
    text_columns = [c for c, t in evacuation.schema.items() if t == pl.String]
    has_school = pl.any_horizontal(pl.col(c).str.contains("小学校", literal=True) for c in text_columns)
    result = ckan.action.datastore_search(resource_id=RESOURCE, q="小学校", limit=500)
    assert result["total"] == evacuation.filter(has_school).height > 0
    both = ckan.action.datastore_search(resource_id=RESOURCE, q="小学校 焼津市", limit=500)
    assert 0 < both["total"] < result["total"]
    by_column = ckan.action.datastore_search(resource_id=RESOURCE, q={"名称": "小学校"}, limit=500)
    assert by_column["total"] == evacuation.filter(pl.col("名称").str.contains("小学校", literal=True)).height
    # Latin letters match whatever their case: the URLs hold "chiba-c"
    has_chiba = pl.any_horizontal(pl.col(c).str.contains("chiba-c", literal=True) for c in text_columns)
    latin = ckan.action.datastore_search(resource_id=RESOURCE, q="CHIBA-C", limit=0)
    assert latin["total"] == evacuation.filter(has_chiba).height > 0
    # LIKE wildcards are plain text here: no row holds a literal '%'
    assert ckan.action.datastore_search(resource_id=RESOURCE, q="%")["total"] == 0


def test_distinct_formats_and_links(base_url: str) -> None:
    distinct = _api(base_url, "datastore_search", resource_id=RESOURCE, fields="市区町村コード",
                    distinct="true")
    assert [r["市区町村コード"] for r in distinct.json()["result"]["records"]] == ["122033", "222127"]
    lists = _api(base_url, "datastore_search", resource_id=RESOURCE, fields="ID,名称", limit=2,
                 records_format="lists").json()["result"]
    assert len(lists["records"]) == 2 and len(lists["records"][0]) == 2
    csv_text = _api(base_url, "datastore_search", resource_id=RESOURCE, fields="市区町村コード", limit=3,
                    offset=150, records_format="csv").json()["result"]["records"]
    assert csv_text == "222127\n222127\n"
    result = _api(base_url, "datastore_search", resource_id=RESOURCE, limit=5, offset=10).json()["result"]
    assert "offset=15" in result["_links"]["next"] and "offset=5" in result["_links"]["prev"]
    capped = _api(base_url, "datastore_search", resource_id=RESOURCE, limit=10**9).json()["result"]
    assert capped["limit"] == 32000 and len(capped["records"]) == 152


HOSTILE = [
    {"sort": '名称"; DROP TABLE x; --'},
    {"sort": "名称 desc; SELECT * FROM read_csv('/etc/passwd')"},
    {"sort": "(SELECT 1) asc"},
    {"sort": "名称 sideways"},
    {"fields": '名称,"; SELECT 1 --'},
    {"fields": "1=1"},
    {"filters": '{"名称\\" OR 1=1 --": "x"}'},
    {"filters": '{"緯度": "not a number"}'},
    {"filters": "{not json"},
    {"filters": '["a"]'},
    {"q": '{"名称\\" OR 1=1 --": "x"}'},
    {"limit": "-1"},
    {"limit": "ten"},
    {"offset": "-5"},
    {"include_total": "perhaps"},
    {"records_format": "xml"},
]


@pytest.mark.parametrize("params", HOSTILE, ids=[json.dumps(p, ensure_ascii=False) for p in HOSTILE])
def test_hostile_parameters_are_validation_errors(base_url: str, params: dict[str, str]) -> None:
    response = _api(base_url, "datastore_search", resource_id=RESOURCE, **params)
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["__type"] == "Validation Error"
    assert "/" not in body["error"]["message"].replace("/etc/passwd", "")   # no file-system path leaks


def test_hostile_text_is_only_ever_text(ckan: ckanapi.RemoteCKAN) -> None:
    for text in ("' OR '1'='1", "'); DROP TABLE t; --", "名称\x00\x1f", "\\"):
        assert ckan.action.datastore_search(resource_id=RESOURCE, q=text)["total"] == 0
    assert ckan.action.datastore_search(resource_id=RESOURCE, filters={"名称": "' OR 1=1 --"})["total"] == 0
    with pytest.raises(ckanapi.ValidationError):
        ckan.action.datastore_search(resource_id=RESOURCE, sort="名称; SELECT 1")
    with pytest.raises(ckanapi.NotFound):
        ckan.action.datastore_search(resource_id="evacuation_space-2-csv' OR '1'='1")
    assert ckan.action.datastore_search(resource_id=RESOURCE, limit=1)["total"] == 152   # still serving


def test_post_bodies_json_and_form(base_url: str) -> None:
    url = f"{base_url}/api/3/action/datastore_search"
    yaizu = {"市区町村コード": "222127"}
    as_json = httpx.post(url, json={"resource_id": RESOURCE, "filters": yaizu, "limit": 1})
    as_form = httpx.post(url, data={"resource_id": RESOURCE, "filters": json.dumps(yaizu), "limit": "1"})
    assert as_json.json()["result"]["total"] == as_form.json()["result"]["total"] == 31
    broken = httpx.post(url, content=b"{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json()["error"]["__type"] == "Bad request"
