"""Isolation between member cities on the real upload service: city A's token cannot upload for city B,
cannot read B's uploads or reports, and nobody reaches raw data; the public reaches nothing at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kouiki.tokens import issue_token
from service.testing import RunningService, catalog_url, run_service, write_members

A, B, C = "132195", "222127", "011002"         # 狛江市, 焼津市, 札幌市
A_FILE = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"
B_FILE = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "222127" / "yaizu_222127_aed.csv"
B_SECRET = "静岡県焼津市本町2-16-32"              # text only B's file holds

pytestmark = pytest.mark.skipif(not A_FILE.exists(), reason="needs demo/uploads")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The server with three members; A and B have each uploaded their own file."""
    root = tmp_path_factory.mktemp("service-isolation")
    members = write_members(root / "members.yaml", [(A, "狛江市"), (B, "焼津市"), (C, "札幌市")])
    with run_service(root / "home", members) as server:
        url = catalog_url(server.home)
        tokens = {code: issue_token(url, code).token for code in (A, B, C)}
        ids = {}
        for code, path in ((A, A_FILE), (B, B_FILE)):
            with as_city(server, tokens[code]) as c:
                response = c.post("/api/uploads", files={"file": (path.name, path.read_bytes())})
                assert response.status_code == 201, response.text
                ids[code] = response.json()["upload_id"]
        yield {"server": server, "tokens": tokens, "ids": ids, "members": members}


def as_city(server: RunningService, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.url, headers=headers, timeout=120)


def error_code(response: httpx.Response) -> str:
    return str(response.json()["error"]["code"])


def test_a_cannot_upload_for_b(world: dict) -> None:
    server = world["server"]
    b_landing = server.home / "landing" / B
    before = sorted(p.name for p in b_landing.iterdir())
    with as_city(server, world["tokens"][A]) as c:
        by_param = c.post("/api/uploads", params={"city": B}, files={"file": ("aed.csv", B_FILE.read_bytes())})
        by_field = c.post("/api/uploads", data={"city": B}, files={"file": ("aed.csv", B_FILE.read_bytes())})
        by_put = c.put("/api/uploads/aed.csv", params={"city": B}, content=B_FILE.read_bytes())
        by_content = c.post("/api/uploads", files={"file": ("aed.csv", B_FILE.read_bytes())})
    assert [r.status_code for r in (by_param, by_field, by_put, by_content)] == [403, 403, 403, 403]
    assert [error_code(r) for r in (by_param, by_field, by_put)] == ["forbidden-city"] * 3
    assert error_code(by_content) == "other-city-data"
    assert sorted(p.name for p in b_landing.iterdir()) == before
    with as_city(server, world["tokens"][B]) as c:
        assert [u["upload_id"] for u in c.get("/api/uploads").json()] == [world["ids"][B]]


def test_a_cannot_read_b_uploads_or_reports(world: dict) -> None:
    server, b_id = world["server"], world["ids"][B]
    with as_city(server, world["tokens"][A]) as c:
        listed = c.get("/api/uploads").json()
        assert b_id not in {u["upload_id"] for u in listed} and {u["city_code"] for u in listed} == {A}
        for path in (f"/api/uploads/{b_id}", f"/api/uploads/{b_id}/report", f"/uploads/{b_id}/report",
                     f"/api/uploads?city={B}"):
            response = c.get(path)
            assert response.status_code == 403, path
            assert error_code(response) == "forbidden-city" and B_SECRET not in response.text
    with as_city(server, world["tokens"][B]) as c:   # the same paths work for B itself
        assert c.get(f"/uploads/{b_id}/report").status_code == 200
        assert c.get(f"/api/uploads/{b_id}/report").json()["upload_id"] == b_id


def test_a_cookie_session_is_held_to_its_own_city_too(world: dict) -> None:
    server, b_id = world["server"], world["ids"][B]
    with httpx.Client(base_url=server.url, timeout=60) as c:
        assert c.post("/api/session", json={"token": world["tokens"][A]}).status_code == 200
        assert c.get(f"/uploads/{b_id}/report").status_code == 403
        assert c.get(f"/api/uploads/{world['ids'][A]}").status_code == 200


def test_nobody_reaches_raw_data(world: dict) -> None:
    server, a_id, b_id = world["server"], world["ids"][A], world["ids"][B]
    b_sha = next((server.home / "landing" / B).iterdir()).name
    probes = [f"/landing/{B}/{b_sha}", f"/reports/{B}/{b_id}.html", f"/api/uploads/{b_id}/raw",
              f"/api/uploads/{a_id}/raw", f"/api/uploads/{a_id}/file", f"/static/%2e%2e/%2e%2e/landing/{B}/{b_sha}",
              "/catalog.sqlite", "/static/../../catalog.sqlite", f"/uploads/{b_id}", "/api/landing"]
    for token in (world["tokens"][A], world["tokens"][B]):
        with as_city(server, token) as c:
            for path in probes:
                response = c.get(path)   # 405: the path of PUT /api/uploads/<file name>, which only writes
                assert (response.status_code, error_code(response)) in ((404, "not-found"),
                                                                        (405, "method-not-allowed")), path
                assert B_SECRET not in response.text and b_sha not in response.text


def test_the_public_reaches_none_of_it(world: dict) -> None:
    server, b_id = world["server"], world["ids"][B]
    with as_city(server, None) as c:
        page = c.get("/")
        assert page.status_code == 200 and "login-form" in page.text and b_id not in page.text
        for method, path in (("GET", "/api/uploads"), ("GET", f"/api/uploads/{b_id}"),
                             ("GET", f"/api/uploads/{b_id}/report"), ("GET", f"/uploads/{b_id}/report"),
                             ("GET", "/api/me"), ("GET", "/api/datasets"), ("POST", "/api/uploads"),
                             ("PUT", "/api/uploads/aed.csv")):
            response = c.request(method, path, content=b"x" if method != "GET" else None)
            assert response.status_code == 401, (method, path)
            assert error_code(response) == "auth-required" and B_SECRET not in response.text


def test_a_city_removed_from_the_registry_loses_access(world: dict) -> None:
    server = world["server"]
    with as_city(server, world["tokens"][C]) as c:
        assert c.get("/api/uploads").status_code == 200
        write_members(world["members"], [(A, "狛江市"), (B, "焼津市")])
        response = c.get("/api/uploads")
    assert response.status_code == 403 and error_code(response) == "not-a-member"


def test_a_few_rows_of_another_city_among_own_rows_are_withheld_not_the_file(world: dict) -> None:
    """Whole-file refusal only when nothing in the file is the member's own: a file of A's rows with one row
    coded B is received (the lake withholds that one row with an ``other-municipality`` error)."""
    server = world["server"]
    lines = A_FILE.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[2].startswith(A)
    mixed = "".join([*lines[:2], B + lines[2][len(A):], *lines[3:]]).encode("utf-8")
    with as_city(server, world["tokens"][A]) as c:
        response = c.post("/api/uploads", files={"file": ("aed_mixed.csv", mixed)})
    assert response.status_code == 201, response.text
    assert response.json()["city_code"] == A
    assert any(p.suffix == ".csv" for p in (server.home / "landing" / A).iterdir())
