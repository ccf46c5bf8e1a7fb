"""Shared fixtures: every test gets its own kouiki home, so nothing touches ./.kouiki."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "samples"
DEMO = REPO / "demo" / "uploads"


@pytest.fixture()
def kouiki_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "kouiki-home"
    monkeypatch.setenv("KOUIKI_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.delenv("KOUIKI_CATALOG_URL", raising=False)
    yield home


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Run the main job twice on the demo registry (3 real cities) in one isolated kouiki home.

    Session-scoped (the two runs take about a minute) and shared by test_pipeline.py and test_marts.py. The
    environment is restored before the tests run; they read everything through the returned paths. The Dagster
    instance is gone by then, so the models' latest materialisation metadata and check results are kept here.
    """
    from dagster import instance_for_test

    from kouiki import catalog
    from kouiki.settings import get_paths
    from pipelines.main_run import run_main

    home = tmp_path_factory.mktemp("home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KOUIKI_HOME", str(home))
    mp.setenv("DAGSTER_HOME", str(home / "dagster"))
    mp.delenv("KOUIKI_CATALOG_URL", raising=False)
    mp.delenv("KOUIKI_MEMBERS", raising=False)
    try:
        with instance_for_test() as instance:
            first = run_main(instance=instance)
            landing_before = sorted((home / "landing").rglob("*.*"))
            second = run_main(instance=instance)
            model_metadata, model_checks = _model_results(instance)
        paths = get_paths()
        uploads = catalog.list_uploads(paths.catalog_url)
    finally:
        mp.undo()
    yield {"first": first, "second": second, "home": home, "paths": paths, "uploads": uploads,
           "landing_before": landing_before, "model_metadata": model_metadata, "model_checks": model_checks}


def _model_results(instance: Any) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Latest materialisation metadata per model asset ("marts/x") and check results ("marts/x:check")."""
    from assets.models import build_model_assets

    metadata: dict[str, dict[str, Any]] = {}
    checks: dict[str, dict[str, Any]] = {}
    for assets_def in build_model_assets():
        event = instance.get_latest_materialization_event(assets_def.key)
        if event is not None and event.asset_materialization is not None:
            metadata[assets_def.key.to_user_string()] = dict(event.asset_materialization.metadata)
        for check_key in assets_def.check_keys:
            record = instance.get_latest_asset_check_evaluation_record(check_key)
            evaluation = record.event.dagster_event.event_specific_data if record and record.event else None
            if evaluation is not None:
                checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = {
                    "passed": evaluation.passed, "severity": evaluation.severity.value,
                    "metadata": dict(evaluation.metadata)}
    return metadata, checks
