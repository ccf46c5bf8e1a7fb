"""Generated files in cities' own layouts (issue 15), shared by tests/test_own_layouts*.py.

Each writer returns the file and the rows it holds, so tests can assert that every row is accounted for."""

from __future__ import annotations

import csv
from pathlib import Path

YAIZU, FUJIEDA = "222127", "222143"

# LinkData-like event list: English property names, 和暦 and slashed dates, half-width kana, full-width digits.
EVENT_HEADER = ["name", "name_kana", "startDate", "endDate", "startTime", "endTime", "location", "address",
                "latitude", "longitude", "telephone", "description", "url"]
EVENT_ROWS = [
    ["市民まつり", "ｼﾐﾝﾏﾂﾘ", "令和6年4月1日", "令和6年4月2日", "10:00", "16:00", "中央公園", "静岡県焼津市本町2-16-32",
     "34.8670", "138.3236", "０５４－６２６－１１１１", "毎年恒例のまつり", "https://www.city.yaizu.lg.jp/a"],
    ["朝市", "ｱｻｲﾁ", "2024/5/3", "2024/5/3", "6:00", "9:00", "港広場", "静岡県焼津市中港2-6-1",
     "34.8601", "138.3310", "054-626-1112", "新鮮な魚", "https://www.city.yaizu.lg.jp/b"],
    ["花火大会", "ﾊﾅﾋﾞﾀｲｶｲ", "R6.8.10", "R6.8.10", "19:00", "20:30", "海岸", "静岡県焼津市浜当目1丁目",
     "34.8702", "138.3401", "054-626-1113", "夏の花火", "https://www.city.yaizu.lg.jp/c"],
]

# An AED list with the city's own Japanese column names (kana/kanji variants of the standard's).
AED_OWN_HEADER = ["施設名", "フリガナ", "所在地", "電話", "設置場所", "緯度", "経度", "点検日"]
AED_OWN_ROWS = [
    ["焼津市役所", "ﾔｲﾂﾞｼﾔｸｼｮ", "静岡県焼津市本町2-16-32", "０５４－６２６－１１１１", "1階ロビー", "34.8670",
     "138.3236", "平成31年4月1日"],
    ["焼津図書館", "ヤイヅトショカン", "静岡県焼津市三ケ名1550", "054-629-7070", "入口", "34.8590", "138.3090",
     "H31.3.1"],
    ["大井川庁舎", "ｵｵｲｶﾞﾜﾁｮｳｼｬ", "静岡県焼津市宗高900", "054-662-0511", "事務室", "34.8170", "138.2930",
     "2019/10/1"],
]

# Nothing standard: a garbage-collection calendar.
GARBAGE_HEADER = ["地区", "燃やすごみ", "資源ごみ", "収集開始日", "問い合わせ"]
GARBAGE_ROWS = [
    ["本町", "月・木", "水", "令和6年4月1日", "０５４－６２６－１１１１"],
    ["中港", "火・金", "木", "R6.4.2", "054-626-1112"],
    ["ｳｵｲﾁﾊﾞ", "水・土", "金", "2024/4/3", "054-626-1113"],
]

# The standard AED layout, but every row is 藤枝市's: refused for 焼津市 until the registry lets it submit for them.
AED_STANDARD_HEADER = ["全国地方公共団体コード", "ID", "地方公共団体名", "名称", "名称_カナ", "所在地_連結表記", "緯度",
                       "経度", "設置位置", "電話番号"]
FUJIEDA_AED_ROWS = [
    [FUJIEDA, "1", "藤枝市", "藤枝市役所", "ﾌｼﾞｴﾀﾞｼﾔｸｼｮ", "静岡県藤枝市岡出山1-11-1", "34.8676", "138.2577", "1階",
     "054-643-3111"],
    [FUJIEDA, "2", "藤枝市", "藤枝市民会館", "フジエダシミンカイカン", "静岡県藤枝市岡出山2-2-25", "34.8690",
     "138.2560", "受付", "054-645-1111"],
]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_members(path: Path, submits_for: list[str] | None = None, own_datasets: bool | None = None) -> Path:
    lines = ["members:", f'  - code: "{YAIZU}"', "    name: 焼津市"]
    if submits_for:
        lines.append("    submits_for: [" + ", ".join(f'"{c}"' for c in submits_for) + "]")
    if own_datasets is not None:
        lines.append(f"    own_datasets: {'true' if own_datasets else 'false'}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
