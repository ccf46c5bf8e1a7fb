"""The portal's words in Japanese (first) and English; ``?lang=en`` switches and the choice is remembered in a
cookie (``kouiki_lang``) until the other language is chosen."""

from __future__ import annotations

import datetime as dt

LANGUAGES = ("ja", "en")
JST = dt.timezone(dt.timedelta(hours=9), "JST")
LANG_COOKIE = "kouiki_lang"
LANG_COOKIE_AGE = 365 * 24 * 3600

MESSAGES: dict[str, tuple[str, str]] = {
    "lang_name": ("日本語", "English"),
    "other_lang": ("English", "日本語"),
    "tagline": ("構成市が共同で公開するオープンデータ（自治体標準オープンデータセット）",
                "Open data published together by the member cities (standard municipal open datasets)"),
    "search": ("検索", "Search"),
    "search_label": ("キーワード", "Keywords"),
    "search_placeholder": ("例：避難、AED、市川市", "e.g. evacuation, AED, 市川市"),
    "kind": ("分野", "Kind"),
    "all_kinds": ("すべての分野", "All kinds"),
    "city": ("市区町村", "City"),
    "all_cities": ("すべての市区町村", "All cities"),
    "results": ("{n}件のデータセット", "{n} dataset(s)"),
    "no_results": ("条件に合うデータセットはありません。キーワードを減らすか、絞り込みを外してください。",
                   "No dataset matches. Try fewer words or remove a filter."),
    "rows": ("件数", "Rows"),
    "rows_n": ("{n}件", "{n} rows"),
    "cities": ("市区町村", "Cities"),
    "updated": ("更新日時", "Updated"),
    "release": ("版", "Release"),
    "release_n": ("第{n}版", "No. {n}"),
    "latest": ("最新", "latest"),
    "licence": ("ライセンス", "Licence"),
    "schema_version": ("データ項目定義の版", "Schema version"),
    "overview": ("概要", "Overview"),
    "preview": ("プレビュー", "Preview"),
    "preview_note": ("先頭{shown}行を表示しています（全{total}行）。"
                     "すべての行はダウンロードまたはAPIで取得できます。",
                     "Showing the first {shown} of {total} rows. "
                     "Download the files or use the API for all rows."),
    "no_preview": ("プレビューできる表がありません。", "No table to preview."),
    "columns": ("項目定義", "Column dictionary"),
    "column": ("項目名", "Column"),
    "type": ("型", "Type"),
    "required": ("必須", "Required"),
    "required_yes": ("必須", "required"),
    "level": ("区分", "Level"),
    "format": ("形式", "Format"),
    "description": ("説明", "Description"),
    "conformance": ("適合率", "Conformance"),
    "conformance_note": ("適合率: 公開した行のうち、その項目の値が標準を満たす行の割合（警告・エラーのあるセルと、"
                         "必須項目の空欄を除いた割合）。",
                         "Conformance: share of the published rows whose value in the column meets the standard "
                         "(no warning or error on the cell, and not empty where required)."),
    "downloads": ("ダウンロード", "Downloads"),
    "whole_region": ("全域（全市区町村）", "Whole region (all cities)"),
    "city_parts": ("市区町村ごと", "Each city's part"),
    "file": ("ファイル", "File"),
    "size": ("サイズ", "Size"),
    "excel_hint": ("Excelで開く場合は「Excel用」（BOM付きUTF-8）をお使いください。",
                   "To open in Excel, use the \"for Excel\" file (UTF-8 with BOM)."),
    "history": ("公開履歴", "Release history"),
    "published_at": ("公開日時", "Published"),
    "files": ("ファイル", "Files"),
    "files_n": ("{n}ファイル", "{n} files"),
    "quality": ("品質（市区町村別）", "Quality by city"),
    "errors": ("エラー", "Errors"),
    "warnings": ("警告", "Warnings"),
    "quality_note": ("エラー・警告は各市の最新の登録ファイルの検査で見つかった件数です。"
                     "エラーのある行は公開されていません。",
                     "Errors and warnings are counted in each city's latest checked upload; rows with errors "
                     "are not published."),
    "quality_rows_only": ("検査結果の記録がないため、公開件数のみを表示しています。",
                          "No check results are available here; only the published rows are shown."),
    "share": ("割合", "Share"),
    "api": ("API（CKAN互換）", "API (CKAN-compatible)"),
    "api_note": ("CKAN の Action API と同じ形式で利用できます。", "Works like CKAN's Action API."),
    "dcat": ("DCAT（JSON-LD）", "DCAT (JSON-LD)"),
    "catalogue_dcat": ("カタログ全体のDCAT（JSON-LD）", "Catalogue as DCAT (JSON-LD)"),
    "back": ("データセット一覧へ戻る", "Back to the dataset list"),
    "datasets": ("データセット", "Datasets"),
    "download": ("ダウンロード", "Download"),
    "skip": ("本文へ移動", "Skip to main content"),
    "language_nav": ("言語", "Language"),
    "site_nav": ("サイト", "Site"),
    "page_toc": ("このページの内容", "On this page"),
    "home_heading": ("データセットを探す", "Find datasets"),
    "apply": ("検索・絞り込み", "Search and filter"),
    "filter_note": ("分野・市区町村を選んでから「検索・絞り込み」を押してください。",
                    "Choose a kind and a city, then press \"Search and filter\"."),
    "map": ("地図", "Map"),
    "map_region": ("地域全体の地図", "Map of the whole region"),
    "map_region_intro": ("位置情報のあるデータセット（AED、避難場所など）の地点を1枚の地図に表示します。",
                         "The points of every dataset with coordinates (AEDs, evacuation sites …) on one map."),
    "map_label": ("{title}の地図", "Map of {title}"),
    "map_note": ("地図上の印は近い地点をまとめて件数を表示します。拡大すると個別の地点が表示されます。"
                 "同じ地点は右（下）の一覧からも選べます。",
                 "Nearby points are grouped with their count; zoom in to see each point. "
                 "The same points can be chosen from the list."),
    "map_points": ("地図に表示した地点: {located}件（全{total}件のうち位置情報のあるもの）",
                   "Points on the map: {located} (of {total} rows, those with coordinates)"),
    "map_list": ("地点の一覧", "List of points"),
    "map_list_label": ("{title}の地点の一覧", "Points of {title}"),
    "map_list_truncated": ("一覧には先頭{shown}件を表示しています。すべての地点はGeoJSONファイルにあります。",
                           "The list shows the first {shown} points; every point is in the GeoJSON file."),
    "map_show": ("地図で表示", "Show on the map"),
    "map_shown": ("地図に表示しました", "Shown on the map"),
    "organizations": ("市区町村", "Cities"),
    "organizations_intro": ("データを提供している構成市区町村です。",
                            "The member cities whose data the catalogue publishes."),
    "datasets_n": ("{n}件のデータセット", "{n} dataset(s)"),
    "city_code": ("全国地方公共団体コード", "Local government code"),
    "city_datasets": ("この市区町村のデータ", "Data of this city"),
    "city_rows": ("この市区町村の件数", "Rows of this city"),
    "city_files": ("この市区町村の分のファイル", "This city's files"),
    "city_none": ("この市区町村のデータはまだ公開されていません。", "No data of this city has been published yet."),
    "map_none": ("位置情報のあるデータセットはまだ公開されていません。",
                 "No dataset with coordinates has been published yet."),
    "map_tiles_none": ("背景地図は表示しない設定です。", "No background map is configured."),
    "map_dataset_link": ("データセットのページ", "Dataset page"),
    "preview_label": ("プレビュー（横にスクロールできます）", "Preview (scrolls sideways)"),
    "time_zone_note": ("時刻はすべて日本時間（JST）です。", "All times are Japan Standard Time (JST)."),
}


def pick_language(value: str | None) -> str:
    return value if value in LANGUAGES else "ja"


def request_language(query_lang: str | None, cookie_lang: str | None) -> str:
    """The page's language: ``?lang=`` when given, else the remembered choice (cookie), else Japanese."""
    if query_lang in LANGUAGES:
        return str(query_lang)
    return pick_language(cookie_lang)


def translate(key: str, lang: str, **values: object) -> str:
    ja, en = MESSAGES[key]
    text = en if lang == "en" else ja
    return text.format(**values) if values else text


def human_size(size: int) -> str:
    """1,234,567 → "1.2 MB" (decimal units, as download pages usually show)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def jst(iso_text: str) -> dt.datetime | None:
    """An ISO 8601 time in Japan time (a time without offset is UTC, as the publisher writes them)."""
    try:
        moment = dt.datetime.fromisoformat(iso_text.replace("Z", "+00:00"))
    except (AttributeError, TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(JST)


def local_time(iso_text: str) -> str:
    """An ISO 8601 time as Japan time with its zone, "2026-07-18 12:34 JST"; the text unchanged when it is not
    a time."""
    moment = jst(iso_text)
    return moment.strftime("%Y-%m-%d %H:%M JST") if moment else iso_text


def machine_time(iso_text: str) -> str:
    """The ``datetime`` attribute of a <time> element (ISO 8601 with the +09:00 offset)."""
    moment = jst(iso_text)
    return moment.isoformat(timespec="seconds") if moment else ""
