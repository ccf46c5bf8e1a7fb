"""Shared fixtures: every test gets its own kouiki home, so nothing touches ./.kouiki."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
