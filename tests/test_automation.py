"""Acceptance: an upload reaches its release with nobody at the controls.

The real upload service and the real Dagster daemon (sensors, declarative automation, run queue) run in their
own processes on a temporary kouiki home; two cities upload through the HTTP API, and with no other command
their rows appear in a public release and their uploads read 公開済み.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from kouiki.tokens import issue_token
from pipelines.testing import RunningDaemon, run_daemon, write_automation
from service.testing import RunningService, catalog_url, run_service, write_members

REPO = Path(__file__).resolve().parents[1]
KOMAE, YAIZU = "132195", "222127"
FILES = {KOMAE: REPO / "demo" / "uploads" / KOMAE / "komae_132195_aed.csv",
         YAIZU: REPO / "demo" / "uploads" / YAIZU / "yaizu_222127_aed.csv"}
TIMEOUT = 1200.0  # generous: two cores shared with other work (about 2 min idle; 12.5 min at load 15-20)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not FILES[KOMAE].exists(), reason="needs demo/uploads")]


def test_uploads_of_two_cities_reach_a_release_with_no_command(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    members = write_members(tmp_path / "members.yaml", [(KOMAE, "狛江市"), (YAIZU, "焼津市")])
    automation = write_automation(tmp_path / "automation.yaml", interval_seconds=2)
    with run_daemon(home, members, automation) as daemon, run_service(home, members) as service:
        upload_ids = {code: upload(service, code, path) for code, path in FILES.items()}
        states = wait_until_published(service, daemon, upload_ids)
        monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
        wait_until_no_run_is_going(daemon)   # stopping the daemon would interrupt a run still finishing
        failed = failed_runs()

    for doc in states.values():
        pub = doc["publication"]
        assert pub["state"] in ("published", "partly_published"), doc
        assert pub["label_ja"].startswith(("公開済み", "一部保留・公開済み")) and pub["release"] >= 1
        assert pub["rows_read"] == pub["rows_published"] + pub["rows_withheld"], pub
    latest = json.loads((home / "releases" / "aed" / "latest.json").read_text(encoding="utf-8"))
    meta = json.loads((home / "releases" / "aed" / str(latest["number"]) / "metadata.json").read_text("utf-8"))
    sources = {s["upload_id"]: s for s in meta["source_uploads"]}
    assert set(upload_ids.values()) <= set(sources)
    assert set(meta["rows_by_city"]) == {KOMAE, YAIZU}
    for code, upload_id in upload_ids.items():
        assert sources[upload_id]["rows"] == meta["rows_by_city"][code] == states[code]["publication"][
            "rows_published"]
    # the release's CSV holds both cities' rows: what the public downloads
    csv = (home / "releases" / "aed" / str(latest["number"]) / "aed.csv").read_text(encoding="utf-8")
    assert sum(1 for _ in csv.splitlines()) - 1 == meta["rows"] == sum(meta["rows_by_city"].values())
    assert failed == []


def upload(service: RunningService, code: str, path: Path) -> str:
    token = issue_token(catalog_url(service.home), code, "automation test").token
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
        response = c.post("/api/uploads", files={"file": (path.name, path.read_bytes(), "text/csv")})
    assert response.status_code == 201, response.text
    return str(response.json()["upload_id"])


def wait_until_published(service: RunningService, daemon: RunningDaemon,
                         upload_ids: dict[str, str]) -> dict[str, dict[str, Any]]:
    tokens = {code: issue_token(catalog_url(service.home), code, "poll").token for code in upload_ids}
    deadline = time.monotonic() + TIMEOUT
    states: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        assert daemon.alive(), f"the daemon exited:\n{daemon.log_tail()}"
        for code, upload_id in upload_ids.items():
            with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {tokens[code]}"},
                              timeout=30) as c:
                states[code] = c.get(f"/api/uploads/{upload_id}").json()
        if all(s["publication"]["state"] in ("published", "partly_published")
               for s in states.values()):
            return states
        time.sleep(2)
    raise AssertionError(f"not published in {TIMEOUT:.0f} s: {states}\n--- daemon log ---\n{daemon.log_tail()}")


def wait_until_no_run_is_going(daemon: RunningDaemon) -> None:
    from dagster import DagsterInstance, RunsFilter

    from pipelines.sensors import NOT_FINISHED

    deadline = time.monotonic() + TIMEOUT
    with DagsterInstance.get() as instance:
        while instance.get_runs(RunsFilter(statuses=NOT_FINISHED)):
            assert daemon.alive() and time.monotonic() < deadline, daemon.log_tail()
            time.sleep(2)


def failed_runs() -> list[str]:
    """Runs of the instance at $DAGSTER_HOME that failed."""
    from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))
        return [f"{r.job_name} {r.tags.get('dagster/partition', '')} {r.run_id}: {failure_messages(instance, r.run_id)}"
                for r in runs]


def failure_messages(instance: Any, run_id: str) -> list[str]:
    """What failed in a run: its failed steps' errors, or the run failure's message."""
    messages = []
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is not None and (event.is_step_failure or event.is_run_failure):
            data = event.event_specific_data
            error = getattr(data, "error", None)
            messages.append(f"{event.step_key or 'run'}: {error.message if error else event.message}"[:500])
    return messages
