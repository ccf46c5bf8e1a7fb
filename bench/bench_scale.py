"""Scale: every municipality of Japan as a member, one generated AED file each, the whole pipeline in one go.

For each size (3, 100 and all 1,741 municipalities by default) the bench builds a member registry from the
national list shipped in ``kouiki/data/local_governments.csv``, writes one AED file per member (current or
legacy layout, UTF-8 or CP932, 10–60 rows, a few failing cells), then runs ``kouiki run`` in a fresh
``KOUIKI_HOME`` as a child process: intake → validation → lake → SQL models → release. It reports wall time and
peak memory, and checks that the release holds every member's rows.

    .venv/bin/python bench/bench_scale.py [--sizes 3,100,1741]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    DATA_DIR,
    REPO,
    RESULTS_DIR,
    Target,
    emit,
    figure,
    figures_table,
    result_document,
    run_child,
    write_result,
)

REFERENCE = REPO / "kouiki" / "data" / "local_governments.csv"
CURRENT = ["全国地方公共団体コード", "ID", "地方公共団体名", "名称", "名称_カナ", "所在地_連結表記", "緯度",
           "経度", "設置位置", "電話番号", "開始時間", "終了時間", "小児対応設備の有無"]
LEGACY = ["都道府県コード又は市区町村コード", "NO", "都道府県名", "市区町村名", "名称", "名称_カナ", "住所", "緯度",
          "経度", "設置位置", "電話番号", "開始時間", "終了時間", "小児対応設備の有無"]
PLACES = ["市役所", "公民館", "体育館", "図書館", "小学校", "中学校", "コミュニティセンター", "消防署", "駅", "病院"]
KANA = {"市役所": "ｼﾔｸｼｮ", "公民館": "コウミンカン", "体育館": "タイイクカン", "図書館": "トショカン",
        "小学校": "ショウガッコウ", "中学校": "チュウガッコウ", "コミュニティセンター": "コミュニティセンター",
        "消防署": "ショウボウショ", "駅": "エキ", "病院": "ビョウイン"}
TARGET_SECONDS = 600


def municipalities() -> list[dict[str, str]]:
    with REFERENCE.open(encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if r["city"]]


def write_city_file(folder: Path, row: dict[str, str], rnd: random.Random) -> None:
    """One AED file of a city: a realistic mix of layouts, encodings and a few errors."""
    folder.mkdir(parents=True, exist_ok=True)
    legacy = rnd.random() < 0.4
    encoding = "cp932" if rnd.random() < 0.3 else "utf-8"
    header = LEGACY if legacy else CURRENT
    lat0, lon0 = 31 + rnd.random() * 12, 130 + rnd.random() * 11
    lines = [",".join(header)]
    for i in range(1, rnd.randint(10, 60) + 1):
        place = rnd.choice(PLACES)
        name = f"{row['city']}{place}{i}"
        phone = "なし" if rnd.random() < 0.02 else \
            f"0{rnd.randint(10, 99)}-{rnd.randint(100, 999)}-{rnd.randint(1000, 9999)}"
        start = rnd.choice(["8:30", "09:00", "９:００"])
        block = f"本町{rnd.randint(1, 9)}丁目{rnd.randint(1, 30)}番{rnd.randint(1, 20)}号"
        address = f"{row['prefecture']}{row['city']}{block}"
        values = {
            "全国地方公共団体コード": row["code"], "都道府県コード又は市区町村コード": row["code"],
            "ID": f"{row['code']}{i:04d}", "NO": f"{i:010d}", "地方公共団体名": row["prefecture"] + row["city"],
            "都道府県名": row["prefecture"], "市区町村名": row["city"], "名称": name, "名称_カナ": KANA[place],
            "所在地_連結表記": address, "住所": address,
            "緯度": f"{lat0 + rnd.random() * 0.05:.6f}", "経度": f"{lon0 + rnd.random() * 0.05:.6f}",
            "設置位置": "1階入口", "電話番号": phone, "開始時間": start, "終了時間": "17:00",
            "小児対応設備の有無": rnd.choice(["有", "無", ""]),
        }
        lines.append(",".join(values[h] for h in header))
    (folder / f"{row['code']}_aed.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))


def build_scenario(size: int, root: Path, seed: int = 7) -> Path:
    """Registry + files for the first ``size`` municipalities (all of them for size ≥ 1,741)."""
    rnd = random.Random(seed)
    chosen = municipalities()[:size]
    shutil.rmtree(root, ignore_errors=True)
    members = []
    for row in chosen:
        folder = root / "inbox" / row["code"]
        write_city_file(folder, row, rnd)
        members.append(f'  - {{code: "{row["code"]}", name: {row["city"]}, inbox: {folder}, datasets: [aed]}}')
    registry = root / "members.yaml"
    registry.write_text("members:\n" + "\n".join(members) + "\n", encoding="utf-8")
    return registry


def run_size(size: int) -> dict[str, Any]:
    root = DATA_DIR / f"scale-{size}"
    registry = build_scenario(size, root)
    home = root / "home"
    env = dict(os.environ, KOUIKI_HOME=str(home), DAGSTER_HOME=str(home / "dagster"), KOUIKI_MEMBERS=str(registry))
    run = run_child([str(REPO / ".venv" / "bin" / "kouiki"), "run"], timeout=3600, env=env)
    members = len(municipalities()[:size])
    latest = home / "releases" / "aed" / "latest.json"
    cities_in_release = 0
    rows = 0
    if latest.exists():
        pointer = json.loads(latest.read_text(encoding="utf-8"))
        meta = json.loads((home / "releases" / "aed" / str(pointer["number"]) / "metadata.json")
                          .read_text(encoding="utf-8"))
        cities_in_release = len(meta["rows_by_city"])
        rows = int(meta["rows"])
    return {"members": members, "seconds": round(run.seconds, 1), "peak_rss_mib": round(run.peak_rss_mib, 1),
            "exit_code": run.returncode, "cities_in_release": cities_in_release, "rows_published": rows,
            "error": None if run.returncode == 0 else run.failure()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default=os.environ.get("KOUIKI_BENCH_SCALE_SIZES", "3,100,1741"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    runs = [run_size(n) for n in sizes]
    figures = []
    for r in runs:
        every = r["cities_in_release"] == r["members"]
        target = Target("<=", TARGET_SECONDS, unit="s") if r["members"] >= 1741 else None
        figures.append(figure(f"pipeline, {r['members']} members: wall time", float(r["seconds"]), "s",
                              target=target, note=None if every else "release misses some members"))
        figures.append(figure(f"pipeline, {r['members']} members: peak memory", float(r["peak_rss_mib"]), "MiB"))
        figures.append(figure(f"pipeline, {r['members']} members: cities in release", float(r["cities_in_release"]),
                              "cities", target=Target(">=", float(r["members"]), unit="cities")))
    document = result_document("scale", figures, {"runs": runs})
    write_result(document, RESULTS_DIR / "scale.json")
    print(figures_table("scale", figures))
    emit({"bench": "scale", "runs": runs})


if __name__ == "__main__":
    main()
