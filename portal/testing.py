"""Release trees for the portal's tests and benchmark, laid out exactly as ``publish/release.py`` writes them.

The sample rows are the real demo files of 市川市, 焼津市 and 狛江市 (``demo/uploads``), mapped onto the
standard's column names the way the pipeline would; the benchmark multiplies AED rows into a large table.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import uvicorn

from kouiki.settings import REPO_ROOT

DEMO_UPLOADS = REPO_ROOT / "demo" / "uploads"
BOM = b"\xef\xbb\xbf"
CC_BY = {"id": "CC-BY-4.0", "title": "クリエイティブ・コモンズ 表示 4.0 国際 (CC BY 4.0)",
         "url": "https://creativecommons.org/licenses/by/4.0/deed.ja"}
NUMBER_COLUMNS = ("緯度", "経度", "標高", "高度の値")

# Legacy (推奨データセット) headers of the demo files → the standard's current column names.
LEGACY_TO_CURRENT = {
    "都道府県コード又は市区町村コード": "全国地方公共団体コード", "NO": "ID", "都道府県名": "所在地_都道府県",
    "市区町村名": "所在地_市区町村", "住所": "所在地_連結表記", "方書": "建物名等(方書)",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_csv_pair(frame: pl.DataFrame, folder: Path, stem: str) -> list[Path]:
    """``<stem>.csv`` (UTF-8) and ``<stem>_excel.csv`` (the same bytes after a BOM)."""
    plain = folder / f"{stem}.csv"
    frame.write_csv(plain)
    excel = folder / f"{stem}_excel.csv"
    excel.write_bytes(BOM + plain.read_bytes())
    return [plain, excel]


def _write_geojson(frame: pl.DataFrame, target: Path) -> Path:
    """Points as ``publish/formats.write_geojson`` writes them: [longitude, latitude], every column a property,
    a null geometry for a row without coordinates."""
    features = []
    for row in frame.iter_rows(named=True):
        lat, lon = row.get("緯度"), row.get("経度")
        geometry = None if lat is None or lon is None else {"type": "Point", "coordinates": [lon, lat]}
        features.append({"type": "Feature", "geometry": geometry, "properties": row})
    target.write_text(json.dumps({"type": "FeatureCollection", "features": features}, ensure_ascii=False),
                      encoding="utf-8")
    return target


def write_release(releases_root: Path, dataset_id: str, frame: pl.DataFrame, *, city_column: str,
                  title_ja: str, title_en: str, schema_version: str = "2025-05-01",
                  published_at: datetime | None = None, geojson: bool = False) -> Path:
    """Publish ``frame`` as the next release of ``dataset_id``: written into a hidden folder, renamed into
    place, then ``latest.json`` moved, as the real publisher does (with ``geojson``, and 緯度/経度 columns,
    the points file too). Returns the release folder."""
    dataset_root = releases_root / dataset_id
    dataset_root.mkdir(parents=True, exist_ok=True)
    number = max((int(p.name) for p in dataset_root.iterdir() if p.name.isdigit()), default=0) + 1
    work = dataset_root / f".incomplete-{number}-{os.getpid()}"
    (work / "cities").mkdir(parents=True)
    written = _write_csv_pair(frame, work, dataset_id)
    parquet = work / f"{dataset_id}.parquet"
    frame.write_parquet(parquet, compression="zstd")
    written.append(parquet)
    if geojson and {"緯度", "経度"} <= set(frame.columns):
        written.append(_write_geojson(frame, work / f"{dataset_id}.geojson"))
    per_city = frame.group_by(city_column).len().sort(city_column)
    for code, _ in per_city.iter_rows():
        written += _write_csv_pair(frame.filter(pl.col(city_column) == code), work / "cities",
                                   f"{code}_{dataset_id}")
    published = (published_at or datetime.now(UTC)).isoformat()
    meta: dict[str, Any] = {
        "dataset_id": dataset_id, "title": {"ja": title_ja, "en": title_en}, "schema_version": schema_version,
        "release": number, "published_at": published, "licence": CC_BY, "rows": frame.height,
        "rows_by_city": {code: n for code, n in per_city.iter_rows()}, "content_hash": _sha256(written[0]),
        "columns": frame.columns, "source_uploads": [],
        "files": [{"path": p.relative_to(work).as_posix(), "bytes": p.stat().st_size, "sha256": _sha256(p)}
                  for p in written],
    }
    (work / "metadata.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    final = dataset_root / str(number)
    os.rename(work, final)
    pointer = {key: meta[key] for key in ("dataset_id", "content_hash", "published_at", "rows")}
    (dataset_root / "latest.json").write_text(json.dumps({**pointer, "number": number}, ensure_ascii=False),
                                              encoding="utf-8")
    return final


def _normalise(frame: pl.DataFrame) -> pl.DataFrame:
    """What the pipeline does to these files, in short: NFKC text (half-width kana → full-width), 1 for ○,
    numbers for coordinates."""
    text = [pl.col(c).map_elements(lambda v: unicodedata.normalize("NFKC", v), return_dtype=pl.String)
            .replace("○", "1").alias(c) for c in frame.columns if c not in NUMBER_COLUMNS]
    numbers = [pl.col(c).cast(pl.Float64, strict=False).alias(c)
               for c in frame.columns if c in NUMBER_COLUMNS]
    return frame.with_columns(*text, *numbers)


def _read_demo(relative: str, encoding: str, fixed: dict[str, str]) -> pl.DataFrame:
    frame = pl.read_csv(DEMO_UPLOADS / relative, encoding=encoding, infer_schema=False)
    frame = frame.rename({k: v for k, v in LEGACY_TO_CURRENT.items() if k in frame.columns})
    frame = frame.with_columns(*(pl.lit(v).alias(k) for k, v in fixed.items()))
    return _normalise(frame)


def evacuation_space_rows() -> pl.DataFrame:
    """Evacuation sites of 市川市 (121 rows, current layout, CP932) and 焼津市 (31 rows, legacy layout)."""
    ichikawa = _read_demo("122033/ichikawa_122033_103_evacuation_space.csv", "cp932", {})
    yaizu = _read_demo("222127/yaizu_222127_evacuation_space.csv", "utf8",
                       {"全国地方公共団体コード": "222127", "地方公共団体名": "焼津市"})
    yaizu = yaizu.with_columns(pl.format("222127-{}", pl.col("ID")).alias("ID"))
    return pl.concat([ichikawa, yaizu.select([c for c in ichikawa.columns if c in yaizu.columns])],
                     how="diagonal").select(ichikawa.columns)


def aed_rows() -> pl.DataFrame:
    """狛江市 (57 rows) and 焼津市 (82 rows) AED locations, legacy layout mapped to the current names."""
    komae = _read_demo("132195/komae_132195_aed.csv", "utf8", {"地方公共団体名": "狛江市"})
    yaizu = _read_demo("222127/yaizu_222127_aed.csv", "utf8", {"地方公共団体名": "焼津市"})
    return pl.concat([komae, yaizu], how="diagonal")


def build_sample_tree(releases_root: Path, geojson: bool = False) -> dict[str, pl.DataFrame]:
    """evacuation_space releases 1 (焼津市's first 20 sites) and 2 (all), and aed release 1 (with
    ``geojson``, each with its points file, as the publisher writes it for datasets with coordinates).
    Returns the frames of the latest releases by dataset id."""
    evacuation = evacuation_space_rows()
    first = pl.concat([evacuation.filter(pl.col("市区町村コード") == "122033"),
                       evacuation.filter(pl.col("市区町村コード") == "222127").head(20)])
    day = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    titles = {"title_ja": "指定緊急避難場所一覧", "title_en": "Designated emergency evacuation sites"}
    write_release(releases_root, "evacuation_space", first, city_column="市区町村コード", published_at=day,
                  geojson=geojson, **titles)
    write_release(releases_root, "evacuation_space", evacuation, city_column="市区町村コード",
                  published_at=day + timedelta(days=30), geojson=geojson, **titles)
    aed = aed_rows()
    write_release(releases_root, "aed", aed, city_column="全国地方公共団体コード", title_ja="AED設置箇所一覧",
                  title_en="AED locations", published_at=day + timedelta(days=3), geojson=geojson)
    return {"evacuation_space": evacuation, "aed": aed}


def synthetic_aed(rows: int, cities: list[tuple[str, str]]) -> pl.DataFrame:
    """``rows`` AED-like rows with Japanese text, spread over ``cities`` [(code, name)]: the demo rows
    repeated with distinct IDs, names, addresses and coordinates."""
    base = aed_rows().drop("全国地方公共団体コード", "地方公共団体名", "ID")
    index = pl.int_range(0, rows, eager=True)
    city_index = index % len(cities)
    codes = pl.Series([c for c, _ in cities])
    names = pl.Series([n for _, n in cities])
    template = base[(index % base.height).to_list()]
    return template.with_columns(
        codes.gather(city_index).alias("全国地方公共団体コード"),
        names.gather(city_index).alias("地方公共団体名"),
        pl.format("{}-{}", codes.gather(city_index), index.cast(pl.String).str.zfill(7)).alias("ID"),
        pl.format("{}（{}号）", pl.col("名称"), index).alias("名称"),
        pl.format("{}{}番", pl.col("所在地_連結表記"), index % 1000).alias("所在地_連結表記"),
        (pl.col("緯度") + (index % 997) * 1e-5).alias("緯度"),
        (pl.col("経度") + (index % 991) * 1e-5).alias("経度"),
    ).select(["全国地方公共団体コード", "ID", "地方公共団体名", *base.columns])


@contextmanager
def serve(app: Any, timeout: float = 20.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yields the base URL (no trailing /)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the portal did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()


CATALOGUE_CITIES = [("122033", "市川市"), ("222127", "焼津市"), ("132195", "狛江市")]


def build_catalogue(releases_root: Path, datasets: int, published: datetime | None = None) -> list[str]:
    """``datasets`` small releases (a few AED-like rows each), the way a large catalogue looks to a harvester:
    every dataset id the themes know (so every group has members) plus ``aed_0001``… ("other"), spread over
    three member cities, each published a minute after the previous one. Returns the dataset ids."""
    from portal.themes import THEMES
    known = sorted(d for t in THEMES for d in t.datasets)
    ids = (known + [f"aed_{i:04d}" for i in range(1, datasets + 1)])[:datasets]
    start = published or datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    base = synthetic_aed(6, CATALOGUE_CITIES)
    for i, dataset_id in enumerate(ids):
        # dataset i holds the rows of one, two or all three cities
        cities = [c for j, (c, _) in enumerate(CATALOGUE_CITIES) if j <= i % 3]
        frame = base.filter(pl.col("全国地方公共団体コード").is_in(cities))
        write_release(releases_root, dataset_id, frame, city_column="全国地方公共団体コード",
                      title_ja=f"AED設置箇所一覧 {i + 1}", title_en=f"AED locations {i + 1}",
                      published_at=start + timedelta(minutes=i))
    return ids


SEARCH = "/api/3/action/package_search"


def hostile_requests() -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx keyword arguments) of requests meant to hurt, each of which must be refused."""
    deep = "(" * 10_000 + "a" + ")" * 10_000
    get = [
        {"q": "a" * 12_000}, {"q": "x" * 40_000}, {"fq": "name:" + "y" * 40_000}, {"q": deep},
        {"q": "(" * 17 + "a" + ")" * 17}, {"q": " OR ".join(["a"] * 1000)}, {"q": " ".join(["b"] * 300)},
        {"q": "a)"}, {"q": '"unterminated'}, {"q": '"""'}, {"q": "name:[a TO"}, {"q": "name:[a b]"},
        {"fq": "metadata_modified:[yesterday TO *]"}, {"fq": "metadata_modified:[NOW+99999999YEARS TO *]"},
        {"fq": "metadata_modified:[NOW-99999999999DAYS TO *]"}, {"fq": "num_resources:[abc TO *]"},
        {"fq": "title:[a TO b]"}, {"q": "nosuchfield:x"}, {"q": "*:x"}, {"q": "title:"}, {"q": "AND OR NOT"},
        {"q": "\\"}, {"q": "a AND"}, {"q": "f:[1 TO 2 TO 3]"},
        {"facet.field": "[bad"}, {"facet.field": '{"a": 1}'}, {"facet.field": json.dumps(["tags"] * 1000)},
        {"facet.field": '["notes"]'}, {"facet.limit": "abc"}, {"facet.mincount": "-5"},
        {"rows": "-1"}, {"rows": "abc"}, {"rows": "1e9"}, {"start": "-1"}, {"start": "9" * 5000},
        {"start": str(10**30)}, {"sort": "bogus asc"}, {"sort": "name asc; DROP TABLE docs"},
        {"sort": "name asc, " * 1000}, {"sort": "name sideways"}, {"fq_list": "[1, 2]"},
        {"fq_list": "not json ["}, {"fq_list": json.dumps(["name:a"] * 100)},
        {"fq_list": json.dumps(["z" * 5000])}, {"q": "\x00"}, {"fq": "name:\x00("},
    ]
    requests: list[tuple[str, str, dict[str, Any]]] = [("GET", SEARCH, {"params": p}) for p in get]
    post_json = [[1, 2], {"q": ["a"]}, {"q": {"a": 1}}, {"rows": [1]}, {"fq_list": {"x": 1}},
                 {"facet.field": 5}]
    requests += [("POST", SEARCH, {"json": body}) for body in post_json]
    requests += [
        ("POST", SEARCH, {"content": b"{", "headers": {"Content-Type": "application/json"}}),
        ("POST", SEARCH, {"content": b"[" * 200_000, "headers": {"Content-Type": "application/json"}}),
        ("POST", SEARCH, {"content": b"q=a", "headers": {"Content-Type": "text/plain"}}),
        ("PUT", SEARCH, {}),
        ("GET", "/api/3/action/no_such_action", {}),
        ("GET", "/api/3/action/", {}),
        ("GET", "/api/3/action/package_show", {}),
        ("GET", "/api/3/action/package_show", {"params": {"id": "../../etc/passwd"}}),
        ("GET", "/api/3/action/package_show", {"params": {"id": "a" * 10_000}}),
        ("GET", "/api/3/action/resource_show", {"params": {"id": "../../x-1-csv"}}),
        ("GET", "/api/3/action/datastore_search", {"params": {"resource_id": "nope-1-csv"}}),
        ("GET", "/api/3/action/datastore_search", {"params": {"resource_id": "aed-1-csv", "filters": "{"}}),
        ("GET", "/api/3/action/datastore_search",
         {"params": {"resource_id": "aed-1-csv", "sort": '"x"; DROP TABLE t'}}),
        ("GET", "/api/3/action/datastore_search", {"params": {"resource_id": "aed-1-csv", "offset": "9" * 40}}),
        ("GET", "/api/3/action/group_show", {"params": {"id": "nope"}}),
        ("GET", "/api/3/action/organization_show", {"params": {"id": "nope"}}),
        ("GET", "/api/3/action/tag_show", {"params": {"id": "nope"}}),
        ("GET", "/api/3/action/package_activity_list", {"params": {"id": "nope"}}),
        ("GET", "/api/3/action/help_show", {"params": {"name": "nope"}}),
    ]
    return requests
