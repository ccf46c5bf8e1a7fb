"""The portal in Japanese without English leaking through: the column dictionary from the glossary, search by
reading (ひなん → 避難), the remembered language, times with their zone, error pages; and the map settings
(tile server, attribution, the page's CSP). Real app over a real release tree, in-process HTTP client."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from expectations.registry import default_registry
from portal.app import create_app
from portal.catalogue import ColumnEntry, normalise_text
from portal.glossary import glossary, localise
from portal.readings import reading
from portal.settings import GSI_TILES, PortalSettings, map_tiles_url
from portal.testing import build_sample_tree
from portal.themes import THEMES

KANJI = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    build_sample_tree(home / "releases", geojson=True)
    return home


@pytest.fixture()
def client(home: Path) -> Iterator[TestClient]:
    with TestClient(create_app(PortalSettings(home=home))) as client:
        yield client


def test_every_dataset_name_and_theme_reads_to_kana() -> None:
    """The reading list covers the words of every dataset name of the registry and every theme."""
    names = [d.name_ja for d in default_registry().datasets.values()] + [t.ja for t in THEMES]
    unread = {name: reading(name) for name in names if KANJI.search(reading(name))}
    assert not unread, f"add these words to portal/readings.yaml: {unread}"
    assert reading("指定緊急避難場所一覧") == "していきんきゅうひなんばしょいちらん"


@pytest.mark.parametrize("query", ["ひなん", "ヒナン", "ﾋﾅﾝ", "避難", "きんきゅうひなん", "ＨＩＮＡＮ"])
def test_search_by_reading_on_the_page_and_the_api(client: TestClient, query: str) -> None:
    if query == "ＨＩＮＡＮ":       # Latin transcriptions are not readings: nothing found, and no error
        assert "指定緊急避難場所一覧" not in client.get("/", params={"q": query}).text
        return
    page = client.get("/", params={"q": query}).text
    assert re.findall(r'<h2><a href="[^"]*">([^<]+)</a></h2>', page) == ["指定緊急避難場所一覧"]
    found = client.get("/api/3/action/package_search", params={"q": query}).json()["result"]
    assert [d["name"] for d in found["results"]] == ["evacuation_space"]


def test_reading_of_a_city_and_a_theme(client: TestClient) -> None:
    titles = re.findall(r'<h2><a href="[^"]*">([^<]+)</a></h2>', client.get("/", params={"q": "こまえし"}).text)
    assert titles == ["AED設置箇所一覧"]                    # only the AED release has 狛江市's rows
    found = client.get("/api/3/action/package_search", params={"q": "ぼうさい"}).json()["result"]
    assert sorted(d["name"] for d in found["results"]) == ["aed", "evacuation_space"]
    assert normalise_text("ﾋﾅﾝ") == "ひなん"


def test_glossary_covers_every_type_format_and_description_of_the_registry() -> None:
    words = glossary()
    missing: set[str] = set()
    for dataset in default_registry().datasets.values():
        columns = [ColumnEntry(c.name, c.type, c.required, c.level, c.format or "", c.description)
                   for c in dataset.canonical.columns]
        for column, shown in zip(columns, localise(columns, "ja"), strict=True):
            if column.type not in words.types:
                missing.add(f"type {column.type}")
            if shown.format_lang:
                missing.add(f"format {column.format!r}")
            if shown.description_lang:
                missing.add(f"description {column.description!r}")
    assert not missing, "add to portal/glossary_ja.yaml:\n" + "\n".join(sorted(missing))


def _dictionary_row(page: str, column: str) -> list[str]:
    table = page[page.index('id="column-dictionary"'):]
    row = re.search(rf'<tr><th scope="row">{re.escape(column)}</th>(.*?)</tr>', table, re.S)
    assert row, column
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]


def test_column_dictionary_is_japanese_on_the_japanese_page(client: TestClient) -> None:
    page = client.get("/dataset/aed").text
    kind, _required, fmt, description = _dictionary_row(page, "全国地方公共団体コード")[:4]
    assert kind == "コード（文字列）"
    assert fmt.startswith("検査数字を含む半角数字6桁") and "_common.yaml" not in fmt
    assert description == "データを管理する地方公共団体のコード"
    assert _dictionary_row(page, "緯度")[0] == "数値"
    dictionary = page[page.index('id="column-dictionary"'):page.index("</table>", page.index('id="column-dictionary"'))]
    assert 'lang="en"' not in dictionary
    assert not re.search(r"half-width|local government|\bcode\b", dictionary)
    english = client.get("/dataset/aed", params={"lang": "en"}).text
    assert _dictionary_row(english, "全国地方公共団体コード")[0] == "code"
    assert "code of the local government that manages the record" in english


def test_language_choice_is_remembered(client: TestClient) -> None:
    first = client.get("/dataset/aed", params={"lang": "en"})
    assert "kouiki_lang=en" in first.headers["set-cookie"]
    assert '<html lang="en">' in client.get("/").text                # no ?lang: remembered
    assert '<html lang="en">' in client.get("/nothing-here").text    # error pages too
    assert "kouiki_lang=ja" in client.get("/", params={"lang": "ja"}).headers["set-cookie"]
    assert '<html lang="ja">' in client.get("/dataset/aed").text
    # the switch keeps ?lang=ja so the choice of Japanese is remembered as well
    assert 'href="/?lang=en"' in client.get("/").text
    assert 'href="/dataset/aed?lang=ja"' in client.get("/dataset/aed", params={"lang": "en"}).text


def test_times_carry_their_zone(client: TestClient) -> None:
    for path in ("/", "/dataset/evacuation_space"):
        page = client.get(path).text
        shown = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', page)
        assert shown, path
        for machine, text in shown:
            assert machine.endswith("+09:00") and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d JST", text)
        assert "日本時間（JST）" in page
    # release 2 was published 2026-05-01 09:00 UTC = 18:00 in Japan
    assert '<time datetime="2026-05-01T18:00:00+09:00">2026-05-01 18:00 JST</time>' in client.get(
        "/dataset/evacuation_space").text


def test_error_pages_are_html_pages(home: Path) -> None:
    app = create_app(PortalSettings(home=home))
    with TestClient(app, raise_server_exceptions=False) as client:
        missing = client.get("/dataset/none")
        assert missing.status_code == 404 and "<h1>ページが見つかりません</h1>" in missing.text
        wrong = client.post("/dataset/aed")
        assert wrong.status_code == 405 and '<html lang="ja">' in wrong.text and "（405）" in wrong.text

        def broken() -> list[object]:
            raise RuntimeError("disk gone")

        app.state.service.entries = broken
        failed = client.get("/")
        assert failed.status_code == 500 and "<h1>内部エラーが発生しました</h1>" in failed.text
        assert "disk gone" not in failed.text
        assert client.get("/api/3/action/package_list").json()["success"] is True   # the API is untouched


def test_map_settings_and_policy(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with TestClient(create_app(PortalSettings(home=home))) as client:
        page = client.get("/dataset/aed")
        assert "img-src 'self' data: https://cyberjapandata.gsi.go.jp;" in page.headers["content-security-policy"]
        assert f'data-tiles="{GSI_TILES}"' in page.text and "出典：国土地理院" in page.text
        assert "/static/vendor/leaflet/leaflet.js" in page.text
        assert page.text.count('id="map"') == 1
    monkeypatch.setenv("KOUIKI_HOME", str(home))
    monkeypatch.setenv("KOUIKI_MAP_TILES", "https://tiles.example.org/{z}/{x}/{y}.png")
    monkeypatch.setenv("KOUIKI_MAP_ATTRIBUTION_JA", "出典：例の地図")
    settings = PortalSettings.from_env()
    with TestClient(create_app(settings)) as client:
        page = client.get("/map")
        policy = page.headers["content-security-policy"]
        assert "https://tiles.example.org" in policy and "gsi.go.jp" not in policy
        assert "出典：例の地図" in page.text
    monkeypatch.setenv("KOUIKI_MAP_TILES", "")
    with TestClient(create_app(PortalSettings.from_env())) as client:
        page = client.get("/map")
        assert "img-src 'self' data:;" in page.headers["content-security-policy"]
        assert "背景地図は表示しない設定です" in page.text
    for bad in ("javascript:alert(1)", "https://x.org/tiles.png", "https://x.org/{z}/{x}/{y}.png; script-src *"):
        with pytest.raises(ValueError, match="KOUIKI_MAP_TILES"):
            map_tiles_url(bad)


def test_dataset_without_coordinates_has_no_map(home: Path, tmp_path: Path) -> None:
    build_sample_tree(tmp_path / "releases")                      # no GeoJSON files
    with TestClient(create_app(PortalSettings(home=tmp_path))) as client:
        assert 'id="map"' not in client.get("/dataset/aed").text
        assert "位置情報のあるデータセットはまだ公開されていません" in client.get("/map").text
    with TestClient(create_app(PortalSettings(home=home))) as client:
        region = client.get("/map").text
        assert region.count('class="map-list-title"') == 2 and region.count('class="point"') == 139 + 152


def test_city_pages(client: TestClient) -> None:
    listing = client.get("/organization").text
    assert re.findall(r'<h2><a href="([^"]+)">([^<]+)</a></h2>', listing) == [
        ("/organization/city-122033", "千葉県市川市"), ("/organization/city-132195", "東京都狛江市"),
        ("/organization/city-222127", "静岡県焼津市")]
    yaizu = client.get("/organization/city-222127").text
    assert re.findall(r'<h3><a href="[^"]+">([^<]+)</a></h3>', yaizu) == ["AED設置箇所一覧", "指定緊急避難場所一覧"]
    assert "/download/evacuation_space/2/cities/222127_evacuation_space.csv" in yaizu
    assert '<dt>この市区町村の件数</dt><dd>31</dd>' in yaizu            # 焼津市's evacuation sites
    assert client.get("/organization/city-999999").status_code == 404
    assert client.get("/organization/kouiki").status_code == 404
    assert 'href="/organization/city-122033"' in client.get("/dataset/evacuation_space").text


def test_broken_geojson_leaves_the_page_without_a_map(tmp_path: Path) -> None:
    """A GeoJSON file that does not read (or holds odd features) costs the map, never the page."""
    build_sample_tree(tmp_path / "releases", geojson=True)
    aed = tmp_path / "releases" / "aed" / "1" / "aed.geojson"
    aed.chmod(0o644)
    aed.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    evacuation = tmp_path / "releases" / "evacuation_space" / "2" / "evacuation_space.geojson"
    evacuation.chmod(0o644)
    evacuation.write_text('{"type": "FeatureCollection", "features": [1, null, {"geometry": {"type": "Point", '
                          '"coordinates": ["x", 35]}}, {"geometry": {"type": "Point", "coordinates": [138.3, 34.9]},'
                          ' "properties": {"名称": "<b>本町</b>"}}]}', encoding="utf-8")
    with TestClient(create_app(PortalSettings(home=tmp_path))) as client:
        page = client.get("/dataset/aed")
        assert page.status_code == 200 and 'id="map"' not in page.text and 'id="preview-table"' in page.text
        evacuation_page = client.get("/dataset/evacuation_space").text
        assert evacuation_page.count('class="point"') == 1 and "&lt;b&gt;本町&lt;/b&gt;" in evacuation_page
        assert "全4件のうち" in evacuation_page
