"""Addresses and kana in every text column (issue 15): half-width digits and an ASCII hyphen between numbers
in addresses, 所在地_連結表記 with its prefecture and municipality from the row's code, half-width katakana
widened in names and a city's own columns too, a dash after katakana read as ー."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from expectations.registry import default_registry
from intake.process import stage_file
from intake.values import (
    is_address_column,
    normalise_column,
    normalise_kana,
)
from kouiki import localgov


@pytest.mark.parametrize(("raw", "expected"), [
    ("狛江市和泉本町１丁目１番5号", "狛江市和泉本町1丁目1番5号"),          # 狛江市: full-width digits
    ("本町２－１６－３２", "本町2-16-32"),                             # － U+FF0D
    ("本町2‐16‐32", "本町2-16-32"),                                   # ‐ U+2010
    ("本町2−16−32", "本町2-16-32"),                                   # − U+2212
    ("本町2ー16ー32", "本町2-16-32"),                                 # ー typed between numbers
    ("センター1-2", "センター1-2"),                                     # ー of a word stays
    ("青葉町一丁目3-1　ｾﾝﾀｰﾋﾞﾙ1階", "青葉町一丁目3-1　センタービル1階"),  # kana widened, the space kept
    ("静岡県焼津市本町2-16-32", "静岡県焼津市本町2-16-32"),             # already standard
])
def test_address_digits_and_hyphens(raw: str, expected: str) -> None:
    result = normalise_column(pl.Series("所在地_連結表記", [raw]), "string")
    assert result.values.to_list() == [expected]
    assert bool(result.changed[0]) is (raw != expected)


def test_address_columns_by_name() -> None:
    addresses = ("所在地_連結表記", "所在地_町字", "所在地_番地以下", "建物名等(方書)", "住所", "方書",
                 "施設所在地_番地以下")
    for name in addresses:
        assert is_address_column(name), name
    for name in ("所在地_全国地方公共団体コード", "町字ID", "名称", "設置位置", "備考"):
        assert not is_address_column(name), name
    # not an address: full-width digits stay as written
    assert normalise_column(pl.Series("設置位置", ["２階正面入口"]), "string").values.to_list() == ["２階正面入口"]


@pytest.mark.parametrize(("raw", "expected"), [
    ("ｾﾝﾀ-", "センター"),                # the example: a hyphen after katakana is ー
    ("市民ｾﾝﾀｰ", "市民センター"),
    ("ｺｰｽ-A", "コース-A"),              # before a letter it is a hyphen
    ("ｶﾞｽﾀﾝｸ", "ガスタンク"),            # voiced marks combined
    ("センタ-", "センタ-"),              # full-width text in a name column is left as written
])
def test_half_width_kana_in_name_columns(raw: str, expected: str) -> None:
    result = normalise_column(pl.Series("名称", [raw]), "string")
    assert result.values.to_list() == [expected]
    if raw != expected:
        assert result.rule_counts == {"halfwidth-kana": 1}


@pytest.mark.parametrize(("raw", "expected"), [
    ("ｾﾝﾀ-", ("センター", "halfwidth-kana")),
    ("センタ－", ("センター", "kana-long-vowel")),
    ("コース-A", ("コース-A", None)),
    ("ア-イ-ウ", ("アーイーウ", "kana-long-vowel")),
])
def test_kana_column_long_vowel(raw: str, expected: tuple[str, str | None]) -> None:
    assert normalise_kana(raw) == expected
    column = normalise_column(pl.Series("名称_カナ", [raw]), "kana")   # the vectorised path agrees
    assert column.values.to_list() == [expected[0]]


@pytest.mark.parametrize(("address", "code", "expected"), [
    ("狛江市和泉本町1丁目1番5号", "132195", "東京都狛江市和泉本町1丁目1番5号"),
    ("和泉本町1-1", "132195", "東京都狛江市和泉本町1-1"),
    ("東京都狛江市和泉本町1-1", "132195", "東京都狛江市和泉本町1-1"),
    ("鶴見区鶴見中央3-20-1", "141011", "神奈川県横浜市鶴見区鶴見中央3-20-1"),   # a ward: its city from the list
    ("船橋市本町1-1", "122033", "千葉県船橋市本町1-1"),                    # another city of the prefecture
    ("印旛郡酒々井町中央台4-11", "123226", "千葉県印旛郡酒々井町中央台4-11"),
    ("那覇市泉崎1-2-2", "470007", "沖縄県那覇市泉崎1-2-2"),                 # a prefecture's own code
    ("〒272-8501 市川市八幡1-1-1", "122033", "〒272-8501 市川市八幡1-1-1"),  # not a place name first
    ("前田東町788-1", "999999", "前田東町788-1"),                          # unknown code: as written
])
def test_address_prefix_from_code(address: str, code: str, expected: str) -> None:
    assert localgov.with_address_prefix(address, code) == expected


HEADER = "全国地方公共団体コード,ID,名称,名称_カナ,所在地_全国地方公共団体コード,所在地_連結表記,緯度,経度,担当課\n"


def test_staged_upload_addresses_and_kana(tmp_path: Path) -> None:
    rows = [
        "122033,1,市民ｾﾝﾀ-,ｼﾐﾝｾﾝﾀ-,122033,市川市八幡１－１－１,35.72,139.93,ｿｳﾑ課 \n",
        "122033,2,船橋分室,フナバシブンシツ,122041,船橋市本町２ー１０,35.70,139.98,総務課\n",
        "122033,3,南八幡会館,ミナミヤワタカイカン,,南八幡２丁目２０－２,35.71,139.92,\n",
        "122033,4,八幡会館,ヤワタカイカン,122033,千葉県市川市八幡2-2,35.72,139.93,\n",
    ]
    path = tmp_path / "122033_public_facility.csv"
    path.write_text(HEADER + "".join(rows), encoding="utf-8")
    staged = stage_file(path, default_registry(), city_code="122033")
    values = staged.values
    assert values.height == 4
    assert values["名称"].to_list() == ["市民センター", "船橋分室", "南八幡会館", "八幡会館"]
    assert values["名称_カナ"].to_list()[0] == "シミンセンター"
    assert values["所在地_連結表記"].to_list() == [
        "千葉県市川市八幡1-1-1",      # prefix from the row's code
        "千葉県船橋市本町2-10",       # 所在地_全国地方公共団体コード 122041: in 船橋市, not 市川市
        "千葉県市川市南八幡2丁目20-2",
        "千葉県市川市八幡2-2",
    ]
    assert staged.normalisations["所在地_連結表記"]["address-prefix-added"] == 3
    assert staged.extra_columns == {"担当課": "担当課"}
    assert values["担当課"].to_list() == ["ソウム課", "総務課", "", ""]   # kana widened; other cells as written
    assert staged.raw["所在地_連結表記"].to_list()[0] == "市川市八幡１－１－１"   # the raw cell kept beside it


def test_rows_without_a_code_take_the_uploader(tmp_path: Path) -> None:
    header = ("NO,都道府県名,市区町村名,名称,名称_カナ,住所,方書,緯度,経度,設置位置,電話番号,内線番号,法人番号,団体名,"
              "利用可能曜日,開始時間,終了時間,利用可能日時特記事項,小児対応設備の有無,URL,備考\n")
    row = "1,東京都,狛江市,狛江市役所,ｺﾏｴｼﾔｸｼｮ,和泉本町１丁目１番５号,,35.63,139.57,1階,03-3430-1111" + "," * 10 + "\n"
    path = tmp_path / "aed.csv"
    path.write_text(header + row, encoding="utf-8")
    without = stage_file(path, default_registry(), dataset_hint="aed")
    assert without.values["所在地_連結表記"].to_list() == ["和泉本町1丁目1番5号"]   # no code known: digits only
    staged = stage_file(path, default_registry(), dataset_hint="aed", city_code="132195")
    assert staged.values["所在地_連結表記"].to_list() == ["東京都狛江市和泉本町1丁目1番5号"]
