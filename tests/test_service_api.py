"""The upload service's API against the real server (``python -m service`` on 127.0.0.1): a city's real file
lands, is recognised and validated at once, with its report where the pipeline writes it."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from kouiki import catalog
from kouiki.tokens import issue_token, revoke_token
from service.testing import RunningService, catalog_url, run_service, write_members

KOMAE, YAIZU = "132195", "222127"
KOMAE_AED = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"
YAIZU_AED = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "222127" / "yaizu_222127_aed.csv"

pytestmark = pytest.mark.skipif(not KOMAE_AED.exists(), reason="needs demo/uploads")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningService]:
    root = tmp_path_factory.mktemp("service-api")
    members = write_members(root / "members.yaml", [(KOMAE, "狛江市"), (YAIZU, "焼津市")])
    with run_service(root / "home", members) as running:
        yield running


@pytest.fixture(scope="module")
def tokens(server: RunningService) -> dict[str, str]:
    url = catalog_url(server.home)
    return {code: issue_token(url, code, "test").token for code in (KOMAE, YAIZU)}


def client(server: RunningService, token: str | None = None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=120)


def post_file(c: httpx.Client, path: Path, name: str | None = None, **params: str) -> httpx.Response:
    return c.post("/api/uploads", params=params, files={"file": (name or path.name, path.read_bytes(), "text/csv")})


def test_a_real_file_is_landed_recognised_and_validated_at_once(server: RunningService,
                                                                tokens: dict[str, str]) -> None:
    with client(server, tokens[KOMAE]) as c:
        response = post_file(c, KOMAE_AED)
    assert response.status_code == 201, response.text
    doc = response.json()
    sha = hashlib.sha256(KOMAE_AED.read_bytes()).hexdigest()
    assert doc["upload_id"] == f"{KOMAE}-{sha[:16]}" and doc["sha256"] == sha and doc["is_new"]
    assert (doc["dataset_id"], doc["variant"], doc["status"]) == ("aed", "legacy", "landed")
    summary = doc["validation"]["summary"]
    # 電話番号 なし is a warning: the row is published (phone empty) and the problem reported on its line
    assert (summary["rows_total"], summary["rows_accepted"], summary["rows_quarantined"]) == (57, 57, 0)
    [phone] = [p for p in doc["validation"]["problems"] if p["column"] == "電話番号"]
    assert phone["error_code"] == "format-error" and phone["severity"] == "warning" and phone["lines"] == [57]
    assert phone["examples"][0]["raw_value"] == "なし" and phone["hint_ja"]
    # the bytes in the landing zone, read-only, and the report where the pipeline writes it
    landed = server.home / "landing" / KOMAE / f"{sha}.csv"
    assert hashlib.sha256(landed.read_bytes()).hexdigest() == sha and not landed.stat().st_mode & 0o222
    report = server.home / "reports" / KOMAE / f"{doc['upload_id']}.json"
    assert json.loads(report.read_text(encoding="utf-8"))["summary"]["rows_total"] == 57
    row = catalog.get_upload(catalog_url(server.home), doc["upload_id"])
    assert row is not None and row.source == "api" and row.status == "landed"
    assert row.detail is not None and row.detail["validation"]["decision"] == "accept"


def test_the_same_bytes_again_answer_200_with_the_first_result(server: RunningService,
                                                               tokens: dict[str, str]) -> None:
    with client(server, tokens[KOMAE]) as c:
        first = post_file(c, KOMAE_AED)
        again = c.put("/api/uploads/renamed.csv", content=KOMAE_AED.read_bytes())
    assert again.status_code == 200, again.text
    assert again.json()["upload_id"] == first.json()["upload_id"] and again.json()["is_new"] is False
    assert again.json()["validation"]["summary"] == first.json()["validation"]["summary"]
    assert len(list((server.home / "landing" / KOMAE).glob("*.csv"))) >= 1
    sha = first.json()["sha256"]
    assert [p.name for p in (server.home / "landing" / KOMAE).glob(f"{sha}*")] == [f"{sha}.csv"]


def test_put_with_a_dataset_hint_and_the_status_list_and_reports(server: RunningService,
                                                                  tokens: dict[str, str]) -> None:
    with client(server, tokens[YAIZU]) as c:
        response = c.put("/api/uploads/AED設置箇所.csv", params={"dataset": "aed"}, content=YAIZU_AED.read_bytes())
        assert response.status_code == 201, response.text
        doc = response.json()
        assert doc["file_name"] == "AED設置箇所.csv" and doc["validation"]["summary"]["rows_total"] == 82
        status = c.get(doc["links"]["status"]).json()
        assert status["status"] == "landed" and status["decision"] == doc["validation"]["summary"]["decision"]
        publication = status["publication"]
        assert (publication["state"], publication["label_ja"]) == ("waiting", "受付済み（処理待ち）")
        listed = c.get("/api/uploads").json()
        assert [u["upload_id"] for u in listed] == [doc["upload_id"]]
        html = c.get(doc["links"]["report_html"])
        assert html.status_code == 200 and "データ検証結果" in html.text
        assert "default-src 'none'" in html.headers["content-security-policy"]
        assert c.get(doc["links"]["report_json"]).json()["upload_id"] == doc["upload_id"]


def test_unknown_dataset_hint_is_a_400_naming_the_known_ones(server: RunningService, tokens: dict[str, str]) -> None:
    with client(server, tokens[KOMAE]) as c:
        response = post_file(c, KOMAE_AED, dataset="defibrillators")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unknown-dataset" and "aed" in error["known"] and error["message_ja"]


def test_ragged_rows_are_readable_so_the_answer_is_the_validation_result(server: RunningService,
                                                                         tokens: dict[str, str],
                                                                         tmp_path: Path) -> None:
    lines = KOMAE_AED.read_bytes().split(b"\r\n")
    lines[4] += b",extra,cells"           # line 5 has two cells more than the header
    ragged = tmp_path / "ragged.csv"
    ragged.write_bytes(b"\r\n".join(lines))
    with client(server, tokens[KOMAE]) as c:
        response = post_file(c, ragged)
    assert response.status_code == 201, response.text
    notices = [n for n in response.json()["validation"]["notices"] if n["code"] == "extra-cell"]
    assert notices and notices[0]["line"] == 5


def test_formula_cells_are_refused_with_line_and_column(server: RunningService, tokens: dict[str, str],
                                                        tmp_path: Path) -> None:
    formula = '"=HYPERLINK(""http://x.example"")"'
    text = KOMAE_AED.read_text(encoding="utf-8").replace("本庁舎２階総合案内前", formula, 1)
    hostile = tmp_path / "aed.csv"
    hostile.write_text(text, encoding="utf-8")
    with client(server, tokens[KOMAE]) as c:
        response = post_file(c, hostile)
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["line"], error["column"]) == ("formula-injection", 2, "設置位置")
    row = catalog.get_upload(catalog_url(server.home), error["upload_id"])
    assert row is not None and row.status == "rejected"   # kept, but never picked up by the pipeline


def test_page_login_sets_a_strict_httponly_cookie_and_needs_csrf(server: RunningService,
                                                                  tokens: dict[str, str]) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert "login-form" in c.get("/").text
        bad = c.post("/api/session", json={"token": "kouiki_000000000000_" + "x" * 43})
        assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid-token"
        login = c.post("/api/session", json={"token": tokens[KOMAE]})
        assert login.status_code == 200 and login.json()["city_code"] == KOMAE
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = c.get("/")
        assert "狛江市" in page.text and login.json()["csrf_token"] in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert c.get("/api/me").json()["city_code"] == KOMAE
        files = {"file": (KOMAE_AED.name, KOMAE_AED.read_bytes())}
        no_csrf = c.post("/api/uploads", files=files)
        assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf-failed"
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
        cross_site = c.post("/api/uploads", files=files, headers={**csrf, "Origin": "http://evil.example"})
        assert cross_site.status_code == 403
        assert c.post("/api/uploads", files=files, headers=csrf).status_code in (200, 201)
        c.delete("/api/session")
        assert c.get("/api/me").status_code == 401


def test_a_revoked_token_stops_working_at_once(server: RunningService) -> None:
    url = catalog_url(server.home)
    issued = issue_token(url, KOMAE, "to revoke")
    with client(server, issued.token) as c:
        assert c.get("/api/uploads").status_code == 200
        revoke_token(url, issued.info.token_id)
        response = c.get("/api/uploads")
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid-token"


def test_the_same_new_file_uploaded_concurrently_lands_once(server: RunningService, tokens: dict[str, str],
                                                            tmp_path: Path) -> None:
    same = tmp_path / "aed.csv"
    same.write_bytes(KOMAE_AED.read_bytes() + b"\r\n")      # new bytes, still 狛江市's table
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: post_file(client(server, tokens[KOMAE]), same), range(6)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [201]
    assert len({r.json()["upload_id"] for r in responses}) == 1
    sha = responses[0].json()["sha256"]
    assert len(list((server.home / "landing" / KOMAE).glob(f"{sha}*"))) == 1


def test_validating_a_large_file_does_not_block_other_requests(server: RunningService, tokens: dict[str, str],
                                                              tmp_path: Path) -> None:
    header, *rows = KOMAE_AED.read_text(encoding="utf-8").splitlines()
    cells = [r.split(",", 2) for r in rows]
    lines = [header] + [f"{c[0]},{n},{c[2]}" for n, c in ((n, cells[n % len(cells)]) for n in range(70_000))]
    large = tmp_path / "large_aed.csv"
    large.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")          # about 20 MB
    result: dict[str, httpx.Response] = {}

    def upload() -> None:
        with client(server, tokens[KOMAE]) as c, large.open("rb") as body:
            result["response"] = c.put("/api/uploads/large_aed.csv", content=body)

    worker = threading.Thread(target=upload)
    worker.start()
    waits = []
    with client(server) as c:
        while worker.is_alive():
            started = time.perf_counter()
            assert c.get("/api/health").status_code == 200
            waits.append(time.perf_counter() - started)
            time.sleep(0.05)
    worker.join()
    assert result["response"].status_code == 201, result["response"].text
    assert result["response"].json()["validation"]["summary"]["rows_total"] == 70_000
    assert len(waits) > 10 and max(waits) < 2.5, max(waits)
