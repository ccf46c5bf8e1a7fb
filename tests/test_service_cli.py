"""The office's side: tokens stored hashed, ``kouiki members add`` (verified, comments kept), ``kouiki tokens``,
``kouiki upload`` / ``status`` (the API's code path), the upload sensor for API uploads, and ``kouiki rerun``."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context
from sqlalchemy import select
from tools.cli import kouiki

from assets.partitions import MEMBER_CITIES
from assets.resources import KouikiHome
from kouiki import catalog, tokens
from kouiki.localgov import check_digit, lookup
from kouiki.members import load_members
from kouiki.settings import REPO_ROOT, Paths
from pipelines.sensors import member_partitions_sensor, upload_sensor

KOMAE_AED = Path(__file__).resolve().parents[1] / "demo" / "uploads" / "132195" / "komae_132195_aed.csv"
KOMAE, YAIZU, SAPPORO = "132195", "222127", "011002"
TOKEN = re.compile(r"^kouiki_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


@pytest.fixture()
def office(kouiki_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """A kouiki home and a copy of the real member registry (with its comments)."""
    members = tmp_path / "members.yaml"
    text = (REPO_ROOT / "config" / "members.yaml").read_text(encoding="utf-8")
    members.write_text(text.replace("inbox: demo/uploads/", "# inbox: demo/uploads/"), encoding="utf-8")
    monkeypatch.setenv("KOUIKI_MEMBERS", str(members))
    return Paths(kouiki_home).ensure()


# ------------------------------------------------------------------------------------------------- tokens


def test_tokens_verify_only_while_active_and_only_a_hash_is_stored(office: Paths) -> None:
    url = office.catalog_url
    issued = tokens.issue_token(url, KOMAE, "担当者A")
    other = tokens.issue_token(url, YAIZU)
    assert TOKEN.match(issued.token) and issued.token != other.token
    verified = tokens.verify_token(url, issued.token)
    assert verified is not None and (verified.city_code, verified.label) == (KOMAE, "担当者A")
    secret = issued.token.rsplit("_", 1)[1]
    assert tokens.verify_token(url, issued.token[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert tokens.verify_token(url, "kouiki_" + issued.info.token_id + "_" + other.token.rsplit("_", 1)[1]) is None
    assert tokens.verify_token(url, "not a token") is None
    with catalog.begin(url) as conn:
        stored = [dict(r) for r in conn.execute(select(tokens.api_tokens)).mappings()]
    assert secret not in json.dumps(stored, default=str)
    assert tokens.revoke_token(url, issued.info.token_id) is not None
    assert tokens.verify_token(url, issued.token) is None
    assert tokens.verify_token(url, other.token) is not None
    assert [t.active for t in tokens.list_tokens(url)] == [False, True]
    assert tokens.revoke_token(url, "000000000000") is None


def test_tokens_cli_prints_the_token_once_and_revokes_it(office: Paths) -> None:
    code, out, err = kouiki("tokens", "issue", KOMAE, "--label", "clerk")
    assert code == 0 and TOKEN.match(out.strip()) and "二度と表示できません" in err
    token_id = out.strip().split("_")[1]
    code, out, _ = kouiki("tokens", "list")
    assert code == 0 and token_id in out and "active" in out
    assert kouiki("tokens", "revoke", token_id)[0] == 0
    assert tokens.verify_token(office.catalog_url, out.strip()) is None
    assert "revoked" in kouiki("tokens", "list", "--city", KOMAE)[1]
    assert kouiki("tokens", "revoke", "ffffffffffff")[0] == 1
    assert kouiki("tokens", "issue", "131016")[0] == 1           # 千代田区 is not a member


# ------------------------------------------------------------------------------------------------ members


def test_members_add_verifies_the_code_and_keeps_the_registry_comments(office: Paths) -> None:
    path = Path(os.environ["KOUIKI_MEMBERS"])
    before = path.read_text(encoding="utf-8")
    code, _, err = kouiki("members", "add", SAPPORO, "--dataset", "aed", "--dataset", "evacuation_space",
                          "--no-sync")
    assert code == 0, err
    after = path.read_text(encoding="utf-8")
    assert after.startswith(before) and "# Member registry" in after
    added = [m for m in load_members(path) if m.code == SAPPORO]
    assert added and added[0].name == "札幌市" and added[0].datasets == ("aed", "evacuation_space")

    not_listed = next(f"99{n:03d}" + check_digit(f"99{n:03d}") for n in range(1000)
                      if lookup(f"99{n:03d}" + check_digit(f"99{n:03d}")) is None)
    for args in ([SAPPORO], ["011003"], [not_listed], ["131016", "--name", "狛江市"], ["12345"]):
        code, _, err = kouiki("members", "add", *args, "--no-sync")
        assert code == 1 and "変更していません" in err, args
    assert path.read_text(encoding="utf-8") == after


def test_members_add_gives_the_city_its_partition_and_the_sensor_agrees(office: Paths) -> None:
    assert kouiki("members", "add", "131016")[0] == 0                # 千代田区, partitions synced
    instance = DagsterInstance.get()
    assert "131016" in instance.get_dynamic_partitions(MEMBER_CITIES)
    context = build_sensor_context(instance=instance, resources={"kouiki": KouikiHome()})
    assert not isinstance(member_partitions_sensor(context), SensorResult)   # nothing left to add
    code, out, _ = kouiki("members", "list")
    assert code == 0 and "千代田区" in out


# ------------------------------------------------------------------------------------------ upload, status


@pytest.mark.skipif(not KOMAE_AED.exists(), reason="needs demo/uploads")
def test_upload_and_status_print_json_and_the_sensor_starts_the_city_run(office: Paths, tmp_path: Path) -> None:
    code, out, err = kouiki("upload", KOMAE, str(KOMAE_AED))
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"] == "cli" and doc["is_new"] and doc["dataset_id"] == "aed"
    assert doc["validation"]["summary"]["rows_quarantined"] == 0      # なし is a warning: published
    assert Path(doc["report_html"]).is_file()
    assert json.loads(kouiki("upload", KOMAE, str(KOMAE_AED))[1])["is_new"] is False

    code, out, err = kouiki("status", doc["upload_id"])
    status = json.loads(out)
    assert status["status"] == "landed" and status["detail"]["validation"]["decision"] == "accept"
    assert status["publication"]["state"] == "waiting" and "受付済み（処理待ち）" in err
    code, out, _ = kouiki("status", "--city", KOMAE)
    assert code == 0 and "受付済み（処理待ち）" in out and KOMAE_AED.name in out
    assert kouiki("status", f"{KOMAE}-0000000000000000")[0] == 1

    image = tmp_path / "aed.csv"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    code, out, _ = kouiki("upload", KOMAE, str(image))
    assert code == 2 and json.loads(out)["error"]["code"] == "unsupported-format"
    assert kouiki("upload", "131016", str(KOMAE_AED))[0] == 1

    instance = DagsterInstance.ephemeral()
    resource = KouikiHome(home=str(office.home), members_file=str(Path(os.environ["KOUIKI_MEMBERS"])))
    context = build_sensor_context(instance=instance, resources={"kouiki": resource})
    result = upload_sensor(context)          # no partition yet: the sensor adds it and starts the city's run
    assert isinstance(result, SensorResult)
    assert [(r.run_key or "")[:7] for r in result.run_requests or []] == [f"{KOMAE}-"]
    assert [r.partition_key for r in result.run_requests or []] == [KOMAE]
    assert [list(r.partition_keys) for r in result.dynamic_partitions_requests or []] == [[KOMAE]]


@pytest.mark.slow
@pytest.mark.skipif(not KOMAE_AED.exists(), reason="needs demo/uploads")
def test_rerun_processes_the_city_again_through_ingest_city(office: Paths, tmp_path: Path) -> None:
    inbox_copy = tmp_path / "aed.csv"
    shutil.copy(KOMAE_AED, inbox_copy)
    upload_id = json.loads(kouiki("upload", KOMAE, str(inbox_copy))[1])["upload_id"]
    code, out, err = kouiki("rerun", KOMAE)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["run_ok"] and [u["upload_id"] for u in doc["uploads"]] == [upload_id]
    row = catalog.get_upload(office.catalog_url, upload_id)
    assert row is not None and row.status == "accepted" and row.detail is not None
    assert row.detail["rows_accepted"] == 57 and row.detail["rows_with_warnings"] == 1
    assert (office.local_lake / "staged" / "aed" / f"city={KOMAE}").is_dir()
    assert json.loads(kouiki("rerun", KOMAE)[1])["uploads"][0]["status"] == "accepted"
