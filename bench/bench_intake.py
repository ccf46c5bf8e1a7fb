"""Benchmark of intake (issue 3): one 1,000,000-row CP932 AED file, read → detect → map → normalise.

1. Generates (once, reused while rows, seed and generator version match) an AED file in the current layout
   (the canonical columns of expectations/schemas/aed.yaml), CP932 with CRLF like Excel writes it, with
   realistic Japanese values: facility names with ㈱ 髙 﨑 ①, addresses with full-width digits in some rows,
   half-width kana readings, phones (some full-width or labelled TEL:), times like 8:30, postal codes with
   〒 and hyphens, 和暦 dates and ～ in the notes, URLs with commas (quoted cells) — and ~0.1 % failing
   cells of each of 15 kinds (bench_validate.py uses the same file). A UTF-8 copy (the CP932 file decoded)
   is written once, outside any timing.
2. Measures, each run in a fresh process (so neither the generator nor an earlier run counts):
   (a) baseline: DuckDB ``read_csv(all_varchar=true)`` of the UTF-8 copy into a table;
   (b) kouiki: ``intake.process.stage_file`` of the CP932 file (no validation, no lake write).
   3 runs each, interleaved; medians. Peak memory of (b) is the child's own ru_maxrss (os.wait4).
3. In one more process, (b)'s memory by step (peak and what remains after read_file and stage_table), then
   where its time goes by stage (decode, parse, source lines, detect, normalise per type …).

Run: .venv/bin/python bench/bench_intake.py [--rows 1000000] [--repeats 3]
     → Markdown on stdout, JSON (bench/README.md's result shape) in bench/results/intake.json.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
for folder in (REPO, BENCH_DIR):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from common import (  # noqa: E402
    DATA_DIR,
    MIB,
    RESULTS_DIR,
    ChildRun,
    Target,
    emit,
    figure,
    figures_table,
    load_average,
    median_of,
    peak_rss_self_mib,
    reset_peak_rss,
    result_document,
    rss_now_mib,
    run_child,
    write_result,
)

NAME = "intake"
GENERATOR_VERSION = 6          # bump when the generated data changes: cached files are then rebuilt
DEFAULT_ROWS, DEFAULT_SEED = 1_000_000, 20261129
POSTAL_CODES_PER_CITY = 300
FAIL_RATE = 0.001              # share of rows given each kind of failing cell
RATIO_TARGET = Target("<=", 2.0, on="ratio")
MEMORY_TARGET = Target("<", 2048, unit="MiB")
CHILD_TIMEOUT = 900
GENERATE_IN_PROCESS_ROWS = 50_000
BREAKDOWN_PASSES = 2          # stage_table and each column's normalise_column: the faster of 2

# --- realistic values -----------------------------------------------------------------------------------
# (code, English name, latitude, longitude, telephone area code, postal prefix); names and readings come
# from the national list shipped with kouiki (kouiki/data/local_governments.csv).
CITIES = (
    ("011002", "sapporo", 43.0621, 141.3544, "011", "060"),
    ("041009", "sendai", 38.2682, 140.8694, "022", "980"),
    ("122033", "ichikawa", 35.7219, 139.9310, "047", "272"),
    ("132195", "komae", 35.6348, 139.5787, "03", "201"),
    ("141003", "yokohama", 35.4437, 139.6380, "045", "231"),
    ("222127", "yaizu", 34.8669, 138.3236, "054", "425"),
    ("231002", "nagoya", 35.1815, 136.9066, "052", "460"),
    ("271004", "osaka", 34.6937, 135.5023, "06", "530"),
    ("372013", "takamatsu", 34.3428, 134.0466, "087", "760"),
    ("401005", "kitakyushu", 33.8834, 130.8752, "093", "803"),
    ("472018", "naha", 26.2124, 127.6809, "098", "900"),
)
AREAS = (("中央", "チュウオウ", "Chuo"), ("東", "ヒガシ", "Higashi"), ("西", "ニシ", "Nishi"),
         ("南", "ミナミ", "Minami"), ("北", "キタ", "Kita"), ("緑ヶ丘", "ミドリガオカ", "Midorigaoka"),
         ("桜台", "サクラダイ", "Sakuradai"), ("髙田", "タカタ", "Takata"), ("山﨑", "ヤマザキ", "Yamazaki"),
         ("和泉", "イズミ", "Izumi"), ("第一", "ダイイチ", "Daiichi"), ("第三", "ダイサン", "Daisan"))
# (name, reading, English, run by the city?)
FACILITIES = (("小学校", "ショウガッコウ", "Elementary School", True),
              ("中学校", "チュウガッコウ", "Junior High School", True),
              ("公民館", "コウミンカン", "Community Hall", True),
              ("地域センター", "チイキセンター", "Community Center", True),
              ("保育園", "ホイクエン", "Nursery School", True),
              ("体育館", "タイイクカン", "Gymnasium", True),
              ("図書館", "トショカン", "Library", True),
              ("消防署", "ショウボウショ", "Fire Station", True),
              ("駅前交番", "エキマエコウバン", "Police Box", False),
              ("コンビニエンスストア", "コンビニエンスストア", "Convenience Store", False),
              ("㈱髙島商事 本社", "カブシキガイシャタカシマショウジ ホンシャ", "Takashima Shoji Co., Ltd.", False),
              ("医療法人社団①会 クリニック", "イリョウホウジンシャダンイチカイ クリニック", "Ichikai Clinic", False))
TOWNS = ("和泉本町", "本町", "駅前", "緑町", "桜木町", "東町", "西町", "新町", "元町", "中町", "髙砂町", "宮前")
BUILDINGS = ("本館1階", "２階事務室", "防災センター２階", "第①庁舎", "別館B1階", "北棟3階")
POSITIONS = ("1階エントランス", "事務室前", "体育館入口", "正面玄関横", "職員室前", "受付カウンター内",
             "２階ロビー", "昇降口", "管理棟１階", "プール入口（夏季のみ）")
NOTES_TIME = ("土日、祝日、年末年始を除く", "令和6年12月29日～令和7年1月3日は休館", "学校開校時使用可",
              "施設開館時間内", "平成31年4月1日から24時間利用可", "第②・第④日曜日は休館")
NOTES = ("指揮車備付けの携帯型を設置", "№12 ①番目の設置", "S63.7.5設置", "平成30年度更新",
         "令和5年4月1日設置", "小児用パッドあり（～6歳）", "㈱髙島屋寄贈")
OPERATORS = ("㈱髙島商事", "医療法人社団①会", "社会福祉法人 山﨑会", "一般財団法人 市民ｻｰﾋﾞｽ公社")
FULL_DIGITS = dict(zip("0123456789-", "０１２３４５６７８９－", strict=True))


@dataclass(frozen=True)
class FailureKind:
    """One kind of failing cell put into FAIL_RATE of the rows (the error validation must report)."""

    name: str
    column: str
    error_code: str
    value: str


FAILURES = (
    FailureKind("name-missing", "名称", "key-error", ""),                 # 名称 is a key: the row is withheld
    FailureKind("position-blank", "設置位置", "missing-cell", "\u3000"),
    FailureKind("phone-is-text", "電話番号", "format-error", "なし"),
    FailureKind("latitude-outside-japan", "緯度", "coordinate-error", "135.5012"),
    FailureKind("longitude-not-a-number", "経度", "type-error", "不明"),
    FailureKind("height-kind-not-in-list", "高度の種別", "constraint-error", "屋上"),
    FailureKind("paediatric-not-in-list", "小児対応設備の有無", "constraint-error", "あり"),
    FailureKind("id-duplicated", "ID", "unique-error", ""),               # value: the next row's ID
    FailureKind("code-check-digit", "全国地方公共団体コード", "check-digit-error", ""),   # last digit + 1
    FailureKind("closing-before-opening", "終了時間", "cross-column-error", "8:30"),    # opening 17:00
    FailureKind("time-invalid", "開始時間", "format-error", "25:00"),
    FailureKind("email-without-domain", "連絡先メールアドレス", "format-error", "bousai@city"),
    FailureKind("url-without-scheme", "URL", "format-error", "www.city.komae.tokyo.jp/aed.html"),
    FailureKind("postal-code-short", "郵便番号", "format-error", "12345"),
    FailureKind("reading-with-kanji", "名称_カナ", "format-warning", "市役所ホンチョウ"),
)


# --- the generator --------------------------------------------------------------------------------------

def _city_rows() -> list[dict[str, Any]]:
    """CITIES joined with names and readings from the national list (which also proves the codes exist)."""
    import jaconv

    listed = pl.read_csv(REPO / "kouiki" / "data" / "local_governments.csv", infer_schema=False)
    rows = []
    for code, english, lat, lon, area, postal in CITIES:
        match = listed.filter(pl.col("code") == code)
        if match.height != 1:
            raise ValueError(f"{code} is not in kouiki/data/local_governments.csv")
        record = match.row(0, named=True)
        rows.append({"code": code, "prefecture": record["prefecture"], "city": record["city"],
                     "city_kana": jaconv.h2z(record["city_kana"], kana=True, ascii=False, digit=False),
                     "english": english, "lat": lat, "lon": lon, "area": area, "postal": postal})
    return rows


def _pick(rng: np.random.Generator, n: int, choices: list[str] | tuple[str, ...],
          weights: list[float] | None = None) -> pl.Series:
    p = None if weights is None else np.asarray(weights, dtype=float) / sum(weights)
    return pl.Series(list(choices), dtype=pl.String).gather(rng.choice(len(choices), size=n, p=p))


def _digits(values: np.ndarray, width: int = 0) -> pl.Series:
    text = pl.Series(values.astype(np.int64)).cast(pl.String)
    return text.str.zfill(width) if width else text


def _where(mask: np.ndarray, then: pl.Series | str, otherwise: pl.Series | str) -> pl.Series:
    """then where mask, else otherwise (either may be one text for every row)."""
    def column(value: pl.Series | str) -> pl.Series:
        return value if isinstance(value, pl.Series) else pl.repeat(value, len(mask), dtype=pl.String, eager=True)

    frame = pl.DataFrame({"m": mask, "a": column(then), "b": column(otherwise)})
    return frame.select(pl.when("m").then("a").otherwise("b")).to_series()


def _fullwidth_digits(series: pl.Series) -> pl.Series:
    return series.str.replace_many(list(FULL_DIGITS), list(FULL_DIGITS.values()))


def _facility_pool(cities: list[dict[str, Any]]) -> pl.DataFrame:
    """Every (city, area, facility) combination: name, reading (full and half width), English name."""
    import jaconv

    rows = []
    for ci, city in enumerate(cities):
        for area, area_kana, area_en in AREAS:
            for facility, kana, english, public in FACILITIES:
                if public:
                    name = f"{city['city']}立{area}{facility}"
                    reading = f"{city['city_kana']}リツ{area_kana}{kana}"
                    name_en = f"{city['english'].title()} City {area_en} {english}"
                else:
                    name, reading, name_en = f"{facility} {area}店", f"{kana} {area_kana}テン", \
                        f"{english} {area_en}"
                rows.append({"city": ci, "name": name, "kana": reading,
                             "kana_half": jaconv.z2h(reading, kana=True, ascii=False, digit=False),
                             "english": name_en})
    return pl.DataFrame(rows)


def generate_aed(rows: int, seed: int, columns: list[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    """``rows`` AED records in the canonical ``columns`` (all text), and how many cells of each failure
    kind were put in."""
    rng = np.random.default_rng(seed)
    n = rows
    cities = _city_rows()
    pool = _facility_pool(cities)
    city_table = pl.DataFrame(cities)
    combo = rng.integers(0, pool.height, size=n)
    picked = pool[combo]
    city = city_table[picked["city"].to_numpy()]
    index = np.arange(n)

    def share(p: float) -> np.ndarray:
        return rng.random(n) < p

    code = city["code"]
    chome, ban, go = rng.integers(1, 10, n), rng.integers(1, 41, n), rng.integers(1, 31, n)
    town = _pick(rng, n, TOWNS)
    town_part = pl.DataFrame({"t": town, "c": _digits(chome)}).select(
        pl.format("{}{}丁目", "t", "c")).to_series()
    lot = pl.DataFrame({"b": _digits(ban), "g": _digits(go)}).select(pl.format("{}番{}号", "b", "g")).to_series()
    address = pl.DataFrame({"p": city["prefecture"], "c": city["city"], "t": town_part, "l": lot}).select(
        pl.concat_str(["p", "c", "t", "l"])).to_series()
    address = _where(share(0.25), _fullwidth_digits(address), address)

    exchange_digits = 10 - city["area"].str.len_chars().to_numpy() - 4
    exchange = pl.Series(rng.integers(200, 10_000, n)).cast(pl.String).str.zfill(4)
    exchange = pl.DataFrame({"e": exchange, "k": exchange_digits}).select(
        pl.col("e").str.slice(pl.lit(4) - pl.col("k"))).to_series()
    # a real 市内局番 never starts with 0 or 1 (0 would read as another 市外局番)
    exchange = pl.DataFrame({"e": exchange}).select(
        pl.when(pl.col("e").str.slice(0, 1).is_in(["0", "1"])).then("5" + pl.col("e").str.slice(1))
        .otherwise(pl.col("e"))).to_series()
    line = _digits(rng.integers(0, 10_000, n), 4)
    phone = pl.DataFrame({"a": city["area"], "e": exchange, "l": line}).select(
        pl.format("{}-{}-{}", "a", "e", "l")).to_series()
    style = rng.random(n)
    phone = _where(style < 0.10, _fullwidth_digits(phone), phone)
    phone = _where((style >= 0.10) & (style < 0.12), "TEL:" + phone, phone)
    phone = _where(style > 0.80, "", phone)

    # a city has a few hundred postal codes (狛江市 about 30, 横浜市 over 1,000), not ten thousand
    postal = city["postal"] + _digits(rng.integers(0, POSTAL_CODES_PER_CITY, n) * 37 % 10_000, 4)
    postal_style = rng.random(n)
    postal = _where(postal_style < 0.30, postal.str.slice(0, 3) + "-" + postal.str.slice(3), postal)
    postal = _where((postal_style >= 0.30) & (postal_style < 0.35), "〒" + postal.str.slice(0, 3) + "-"
                    + postal.str.slice(3), postal)
    postal = _where(postal_style > 0.85, "", postal)

    opening = _pick(rng, n, ["8:30", "08:30", "9:00", "09:00", ""], [3, 3, 1, 1, 2])
    closing = _pick(rng, n, ["17:15", "17:00", "21:00", "24:00"], [3, 3, 2, 1])
    closing = _where((opening == "").to_numpy(), "", closing)

    lat = pl.Series(city["lat"].to_numpy() + rng.normal(0, 0.03, n)).round(6).cast(pl.String)
    lon = pl.Series(city["lon"].to_numpy() + rng.normal(0, 0.03, n)).round(6).cast(pl.String)
    height_kind = _pick(rng, n, ["", "階数", "地表高"], [60, 35, 5])
    height = _where((height_kind == "階数").to_numpy(), _pick(rng, n, ["1", "2", "3", "-1", "1.5"]),
                    _where((height_kind == "地表高").to_numpy(), "0.8", ""))
    has_image = share(0.10)
    english = city["english"]
    ids = pl.Series(index + 1).cast(pl.String).str.zfill(10)
    values: dict[str, pl.Series] = {
        "全国地方公共団体コード": code,
        "ID": ids,
        "地方公共団体名": city["prefecture"] + city["city"],
        "名称": picked["name"],
        "名称_カナ": _where(share(0.05), picked["kana_half"], picked["kana"]),
        "名称_英字": _where(share(0.5), picked["english"], ""),
        "所在地_全国地方公共団体コード": code,
        "町字ID": _where(share(0.8), _digits(rng.integers(1, 100, n), 4) + _digits(chome, 3), ""),
        "所在地_連結表記": address,
        "所在地_都道府県": city["prefecture"],
        "所在地_市区町村": city["city"],
        "所在地_町字": town_part,
        "所在地_番地以下": lot,
        "建物名等(方書)": _where(share(0.3), _pick(rng, n, BUILDINGS), ""),
        "緯度": lat,
        "経度": lon,
        "高度の種別": height_kind,
        "高度の値": height,
        "設置位置": _pick(rng, n, POSITIONS),
        "電話番号": phone,
        "内線番号": _pick(rng, n, ["", "2442", "2442・2421", "内線301"], [85, 8, 4, 3]),
        "連絡先メールアドレス": _where(share(0.10), "bousai@city." + english + ".lg.jp", ""),
        "連絡先FormURL": _where(share(0.03), "https://logoform.jp/form/" + _digits(index % 9973, 6), ""),
        "連絡先備考（その他、SNSなど）": _where(share(0.02), "公式X（旧Twitter）@city_" + english, ""),
        "郵便番号": postal,
        "法人番号": _where(share(0.5), _digits(rng.integers(10**12, 10**13 - 1, n, dtype=np.int64), 13), ""),
        "団体名": _pick(rng, n, ["", "CITY", *OPERATORS], [30, 50, 5, 5, 5, 5]),
        "利用可能曜日": _pick(rng, n, ["月火水木金", "月火水木金土日", "全日", ""], [50, 30, 5, 15]),
        "開始時間": opening,
        "終了時間": closing,
        "利用可能日時特記事項": _where(share(0.4), _pick(rng, n, NOTES_TIME), ""),
        "小児対応設備の有無": _pick(rng, n, ["有", "無", ""], [60, 25, 15]),
        "URL": _where(share(0.5), "https://www.city." + english + ".lg.jp/index.cfm/42,73691,328,"
                      + _digits(index % 5000) + ",html", ""),
        "画像1": _where(has_image, "https://www.city." + english + ".lg.jp/aed/img/" + ids + ".jpg", ""),
        "画像1_ライセンス": _where(has_image, "CC BY 4.0", ""),
        "画像2": _where(has_image & share(0.2), "https://www.city." + english + ".lg.jp/aed/img/" + ids
                        + "_2.jpg", ""),
        "画像2_ライセンス": pl.repeat("", n, dtype=pl.String, eager=True),
        "外部利用不可": _where(share(0.05), "○", ""),
        "備考": _where(share(0.3), _pick(rng, n, NOTES), ""),
    }
    values["団体名"] = _where((values["団体名"] == "CITY").to_numpy(), city["city"], values["団体名"])
    frame = pl.DataFrame({name: values.get(name, pl.Series([""] * n, dtype=pl.String)) for name in columns})
    return _inject_failures(frame, rng)


def _inject_failures(frame: pl.DataFrame, rng: np.random.Generator) -> tuple[pl.DataFrame, dict[str, int]]:
    """Put each kind of failing cell into FAIL_RATE of the rows, each kind into rows of its own (so that the
    counts validation finds are exactly the counts put in); returns the frame and the cell counts."""
    n = frame.height
    k = max(1, round(n * FAIL_RATE))
    counts: dict[str, int] = {}
    columns = {name: frame[name] for name in frame.columns}
    kinds = [kind for kind in FAILURES if kind.column in columns]
    chosen = rng.choice(n - 1, size=min(k * len(kinds), n - 1), replace=False)
    for i, kind in enumerate(kinds):
        rows = np.sort(chosen[i * k:(i + 1) * k])
        target = columns[kind.column]
        if kind.name == "id-duplicated":
            rows = rows[np.diff(rows, prepend=-2) > 1]          # pairs must not chain into triples
            new = target.gather(rows + 1)
            counts[kind.name] = 2 * len(rows)                  # both rows of a pair fail
        elif kind.name == "code-check-digit":
            old = target.gather(rows)
            last = (old.str.slice(5, 1).cast(pl.Int64) + 1) % 10
            new = old.str.slice(0, 5) + last.cast(pl.String)
            counts[kind.name] = len(rows)
        else:
            new = pl.Series([kind.value] * len(rows), dtype=pl.String)
            counts[kind.name] = len(rows)
        columns[kind.column] = target.scatter(rows, new)
        if kind.name == "closing-before-opening":
            columns["開始時間"] = columns["開始時間"].scatter(rows, pl.Series(["17:00"] * len(rows)))
        if kind.name == "time-invalid":
            columns["終了時間"] = columns["終了時間"].scatter(rows, pl.Series([""] * len(rows), dtype=pl.String))
    return pl.DataFrame(columns), counts


@dataclass(frozen=True)
class AedFiles:
    cp932: Path
    utf8: Path
    meta: dict[str, Any]


def _file_names(rows: int, seed: int, data_dir: Path) -> tuple[Path, Path, Path]:
    stem = f"aed_{rows}_{seed}"
    return data_dir / f"{stem}.csv", data_dir / f"{stem}.utf8.csv", data_dir / f"{stem}.json"


def ensure_aed_files(rows: int, seed: int, data_dir: Path = DATA_DIR / NAME,
                     timeout: float = CHILD_TIMEOUT) -> AedFiles:
    """The CP932 file and its UTF-8 copy, generated once per (rows, seed, generator version).

    Generated in a child process (unless small), so that this (parent) process stays small: a child's
    ru_maxrss includes the parent's memory at fork time."""
    cp932, utf8, meta_path = _file_names(rows, seed, data_dir)
    wanted = {"rows": rows, "seed": seed, "generator_version": GENERATOR_VERSION}
    if meta_path.exists() and cp932.exists() and utf8.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if all(meta.get(k) == v for k, v in wanted.items()):
            return AedFiles(cp932, utf8, meta)
    if rows <= GENERATE_IN_PROCESS_ROWS:      # a few MB: not worth a process start
        child_generate(str(rows), str(seed), data_dir)
    else:
        _child("generate", rows, seed, data_dir, timeout=timeout)
    return AedFiles(cp932, utf8, json.loads(meta_path.read_text(encoding="utf-8")))


def child_generate(rows: str, seed: str, data_dir: Path) -> dict[str, Any]:
    """Write the CP932 file, its UTF-8 copy and their description (meta JSON)."""
    from expectations.registry import default_registry

    cp932, utf8, meta_path = _file_names(int(rows), int(seed), data_dir)
    wanted = {"rows": int(rows), "seed": int(seed), "generator_version": GENERATOR_VERSION}
    columns = [c.name for c in default_registry().get("aed").canonical.columns]
    started = time.perf_counter()
    frame, failures = generate_aed(int(rows), int(seed), columns)
    # empty cells unquoted, as Excel writes them (polars quotes an empty string, not a null)
    blanks_as_nulls = frame.select(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in frame.columns)
    text = blanks_as_nulls.write_csv(line_terminator="\r\n")
    encoded = text.encode("cp932")           # strict: every character must exist in CP932
    data_dir.mkdir(parents=True, exist_ok=True)
    cp932.write_bytes(encoded)
    utf8.write_bytes(encoded.decode("cp932").encode("utf-8"))   # what a reader of the CP932 file sees
    meta = {**wanted, "columns": len(columns), "cp932_bytes": len(encoded), "utf8_bytes": utf8.stat().st_size,
            "failures": failures, "generate_seconds": round(time.perf_counter() - started, 2)}
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return meta


def warm_page_cache(*paths: Path) -> None:
    """Read files once so that no measured run pays for the disk (or for a just-written file's flush)."""
    for path in paths:
        with path.open("rb") as source:
            while source.read(1 << 24):
                pass


# --- the measured children -----------------------------------------------------------------------------

def child_baseline(utf8: Path) -> dict[str, Any]:
    """(a) DuckDB read_csv, every column as text, into an in-memory table."""
    import duckdb

    from kouiki.sql import literal

    con = duckdb.connect()
    rss_before = rss_now_mib()
    started = time.perf_counter()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv({literal(str(utf8))}, all_varchar = true, header = true)")
    seconds = time.perf_counter() - started
    row = con.execute("SELECT count(*) FROM t").fetchone()
    assert row is not None
    return {"seconds": seconds, "rows": int(row[0]), "threads": _duckdb_threads(con),
            "rss_before_mib": rss_before, "peak_rss_mib": peak_rss_self_mib()}


def _duckdb_threads(con: Any) -> int:
    row = con.execute("SELECT current_setting('threads')").fetchone()
    return int(row[0]) if row else 0


def child_intake(cp932: Path) -> dict[str, Any]:
    """(b) kouiki's intake: stage_file (read → detect → map → normalise), nothing else."""
    from expectations.registry import default_registry
    from intake.process import stage_file

    registry = default_registry()
    rss_before = rss_now_mib()
    started = time.perf_counter()
    staged = stage_file(cp932, registry)
    seconds = time.perf_counter() - started
    peak = peak_rss_self_mib()
    return {"seconds": seconds, "rows": staged.values.height, "dataset": staged.dataset.id,
            "variant": staged.match.variant, "encoding": staged.raw_table.encoding,
            "normalised_cells": sum(sum(c.values()) for c in staged.normalisations.values()),
            "invalid_cells": dict(staged.invalid_cells), "rss_before_mib": rss_before, "peak_rss_mib": peak}


def child_breakdown(cp932: Path, utf8: Path) -> dict[str, Any]:
    """Where stage_file's memory goes (first, in a fresh process) and its time: each step timed on its own,
    plus a profile of read_file."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    from expectations.registry import default_registry
    from intake.headers import header_score
    from intake.process import canonical_sources, choose_dataset, column_type, stage_table
    from intake.read import read_file
    from intake.values import normalise_column

    memory = memory_by_step(cp932)
    registry = default_registry()
    stages: dict[str, float] = {}
    started = time.perf_counter()
    data = cp932.read_bytes()
    stages["read bytes from disk"] = time.perf_counter() - started

    def arrow_parse(raw: bytes, encoding: str) -> float:
        names = [f"c{i}" for i in range(raw[: raw.index(b"\n")].count(b",") + 1)]
        t0 = time.perf_counter()
        pa_csv.read_csv(pa.py_buffer(raw), read_options=pa_csv.ReadOptions(
            column_names=names, encoding=encoding, skip_rows=1),
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                  strings_can_be_null=False))
        return time.perf_counter() - t0

    parse_cp932 = arrow_parse(data, "cp932")
    parse_utf8 = arrow_parse(utf8.read_bytes(), "utf8")
    stages["pyarrow parse of the UTF-8 copy (parse alone)"] = parse_utf8
    stages["CP932 → UTF-8 transcoding inside pyarrow (cp932 parse − utf8 parse)"] = parse_cp932 - parse_utf8
    # an alternative to pyarrow's transcoding, for comparison: one C-level decode and encode in Python
    t0 = time.perf_counter()
    text = data.decode("cp932")
    alternatives = {"python bytes.decode('cp932') of the whole file": time.perf_counter() - t0}
    t0 = time.perf_counter()
    text.encode("utf-8")
    alternatives["python str.encode('utf-8') of the decoded text"] = time.perf_counter() - t0
    del text

    profile = cProfile.Profile()
    t0 = time.perf_counter()
    profile.enable()
    raw = read_file(cp932, header_scorer=lambda h: header_score(h, registry))
    profile.disable()
    stages["read_file total"] = time.perf_counter() - t0
    read_profile = _profile_rows(profile)

    t0 = time.perf_counter()
    match = choose_dataset(raw, registry, file_name=cp932.name)
    stages["detect dataset and variant (choose_dataset)"] = time.perf_counter() - t0
    dataset = registry.get(match.dataset_id)

    sources = canonical_sources(match, dataset, raw.header)
    data_columns = [c for c in raw.data.columns if c != "_source_line"]
    # each column alone, then stage_table whole; twice, keeping the faster pass (the machine is shared)
    by_column: dict[str, float] = {}
    types: dict[str, str] = {}
    stage_seconds: list[float] = []
    for _ in range(BREAKDOWN_PASSES):
        for col in dataset.canonical.columns:
            pos = sources.get(col.name)
            if pos is None:
                continue
            series = raw.data[data_columns[pos]].cast(pl.String).alias(col.name)
            col_type = column_type(dataset, match.variant, col)
            t0 = time.perf_counter()
            normalise_column(series, col_type, column_name=col.name)
            spent = time.perf_counter() - t0
            key = f"{col.name} ({col_type})"
            by_column[key], types[key] = min(spent, by_column.get(key, spent)), col_type
        t0 = time.perf_counter()
        stage_table(raw, dataset, match)
        stage_seconds.append(time.perf_counter() - t0)
    by_type: dict[str, float] = defaultdict(float)
    for key, spent in by_column.items():
        by_type[types[key]] += spent
    stages["stage_table total (map + normalise + coordinate checks)"] = min(stage_seconds)
    normalise_total = sum(by_type.values())
    stages["normalise_column, all columns"] = normalise_total
    stages["stage_table other than normalise_column"] = min(stage_seconds) - normalise_total
    top_columns = dict(sorted(by_column.items(), key=lambda kv: -kv[1])[:10])
    return {"stages_s": _rounded(stages), "alternatives_s": _rounded(alternatives),
            "normalise_by_type_s": _rounded(dict(by_type)),
            "normalise_slowest_columns_s": _rounded(top_columns), "read_file_profile": read_profile,
            "memory": memory}


def memory_by_step(cp932: Path) -> dict[str, Any]:
    """Peak and remaining resident memory of each step of stage_file, in MiB (Linux only)."""
    from expectations.registry import default_registry
    from intake.headers import header_score
    from intake.process import choose_dataset, stage_table
    from intake.read import read_file

    registry = default_registry()
    steps: dict[str, dict[str, float | None]] = {"after imports": {"rss": rss_now_mib()}}
    if not reset_peak_rss():
        return {"steps_mib": steps, "note": "peak reset not available"}
    raw = read_file(cp932, header_scorer=lambda h: header_score(h, registry))
    steps["read_file (bytes → Arrow → polars RawTable)"] = {"peak": peak_rss_self_mib(), "rss": rss_now_mib()}
    reset_peak_rss()
    match = choose_dataset(raw, registry, file_name=cp932.name)
    staged = stage_table(raw, registry.get(match.dataset_id), match)
    steps["stage_table (normalised values + raw cells)"] = {"peak": peak_rss_self_mib(), "rss": rss_now_mib()}
    sizes = {"raw_table.data": raw.data.estimated_size() / MIB, "staged.values": staged.values.estimated_size() / MIB,
             "staged.raw": staged.raw.estimated_size() / MIB}
    return {"steps_mib": {k: {m: round(v, 1) if v is not None else None for m, v in d.items()}
                          for k, d in steps.items()},
            "frame_sizes_mib": _rounded(sizes),
            "file_mib": round(cp932.stat().st_size / MIB, 1)}


def _profile_rows(profile: cProfile.Profile, limit: int = 14) -> list[dict[str, Any]]:
    """The read_file functions (and pyarrow's read_csv) with the most cumulative time."""
    stats = pstats.Stats(profile)
    rows = []
    for (file, _, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        cumulative = entry[3]
        if "/intake/" in file or "read_csv" in function or "from_arrow" in function:
            label = f"{Path(file).name}:{function}" if "/intake/" in file else function
            rows.append({"function": label, "cumulative_s": round(cumulative, 3)})
    rows.sort(key=lambda r: -r["cumulative_s"])
    return rows[:limit]


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in values.items()}


# --- the parent -----------------------------------------------------------------------------------------

def _child(mode: str, *args: Any, timeout: float) -> ChildRun:
    run = run_child([sys.executable, str(Path(__file__).resolve()), "--child", mode, *map(str, args)],
                    timeout=timeout)
    if not run.ok or run.output is None:
        raise RuntimeError(f"child {mode} failed: {run.failure()}")
    return run


def measure(files: AedFiles, repeats: int, timeout: float) -> dict[str, Any]:
    """Baseline and intake runs, interleaved so that load on the shared machine hits both alike."""
    baseline: list[ChildRun] = []
    intake: list[ChildRun] = []
    for _ in range(repeats):
        baseline.append(_child("baseline", files.utf8, timeout=timeout))
        intake.append(_child("intake", files.cp932, timeout=timeout))
    breakdown = _child("breakdown", files.cp932, files.utf8, timeout=timeout).output
    assert breakdown is not None
    memory = breakdown.pop("memory")
    return {"baseline": baseline, "intake": intake, "breakdown": breakdown, "memory": memory}


def build_result(files: AedFiles, runs: dict[str, Any], load_before: list[float]) -> dict[str, Any]:
    rows = files.meta["rows"]
    base_s = median_of([r.output["seconds"] for r in runs["baseline"]])
    intake_s = median_of([r.output["seconds"] for r in runs["intake"]])
    peak = max(r.output["peak_rss_mib"] for r in runs["intake"])
    figures = [
        figure(f"intake stage_file, {rows:,} CP932 rows × {files.meta['columns']} columns", intake_s, "s",
               baseline=base_s, baseline_name="DuckDB read_csv of the UTF-8 copy", target=RATIO_TARGET),
        figure("intake throughput", rows / intake_s, "rows/s"),
        figure("intake peak memory (own process)", peak, "MiB", target=MEMORY_TARGET),
    ]
    first = runs["intake"][0].output
    details = {
        "rows": rows, "seed": files.meta["seed"], "file_mb_cp932": round(files.meta["cp932_bytes"] / 1e6, 1),
        "file_mb_utf8": round(files.meta["utf8_bytes"] / 1e6, 1), "failures_injected": files.meta["failures"],
        "baseline_seconds_all": [round(r.output["seconds"], 3) for r in runs["baseline"]],
        "intake_seconds_all": [round(r.output["seconds"], 3) for r in runs["intake"]],
        "baseline_rows_per_s": rows / base_s, "duckdb_threads": runs["baseline"][0].output["threads"],
        "intake_peak_rss_mib_all": [round(r.output["peak_rss_mib"], 1) for r in runs["intake"]],
        "intake_rss_after_imports_mib": round(first["rss_before_mib"], 1),
        "baseline_peak_rss_mib": round(max(r.output["peak_rss_mib"] for r in runs["baseline"]), 1),
        "detected": {"dataset": first["dataset"], "variant": first["variant"], "encoding": first["encoding"]},
        "normalised_cells": first["normalised_cells"], "invalid_cells": first["invalid_cells"],
        "breakdown": runs["breakdown"], "memory_by_step": runs["memory"],
        "ratio_per_pair": [round(i.output["seconds"] / b.output["seconds"], 2)
                           for b, i in zip(runs["baseline"], runs["intake"], strict=True)],
        "load_average_before": load_before, "load_average_after": load_average(),
        "method": "each run a fresh process; time measured inside it around the call only; median of "
                  "the runs (interleaved); files read once beforehand (page cache warm); peak memory = the "
                  "child's VmHWM (its own high-water mark, imports included)",
    }
    return result_document(NAME, figures, details)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR / NAME)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / f"{NAME}.json")
    parser.add_argument("--timeout", type=float, default=CHILD_TIMEOUT, help="seconds per child process")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, *paths = args.child
        if mode == "generate":
            emit(child_generate(paths[0], paths[1], Path(paths[2])))
            return 0
        children: dict[str, Callable[..., dict[str, Any]]] = {
            "baseline": child_baseline, "intake": child_intake, "breakdown": child_breakdown}
        emit(children[mode](*map(Path, paths)))
        return 0
    load_before = load_average()
    files = ensure_aed_files(args.rows, args.seed, args.data_dir, args.timeout)
    print(f"data: {files.cp932} ({files.meta['cp932_bytes'] / MIB:.0f} MiB CP932)", file=sys.stderr)
    warm_page_cache(files.cp932, files.utf8)
    runs = measure(files, args.repeats, args.timeout)
    document = build_result(files, runs, load_before)
    write_result(document, args.out)
    print(figures_table(NAME, document["figures"]))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
