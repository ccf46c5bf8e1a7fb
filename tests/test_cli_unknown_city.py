"""``--city CODE`` naming no member city (issue 17: every CLI error is one clear line, suggestions that work):
``kouiki status`` and ``kouiki tokens list`` say so in one line instead of printing an empty table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.testing import write_members

REPO = Path(__file__).resolve().parents[1]
KOUIKI = [str(Path(sys.executable).parent / "kouiki")]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("unknown-city")
    members = write_members(root / "members.yaml", [("132195", "狛江市")])
    return {**os.environ, "KOUIKI_HOME": str(root / "home"), "DAGSTER_HOME": str(root / "home" / "dagster"),
            "KOUIKI_MEMBERS": str(members), "COLUMNS": "100"}


def kouiki(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KOUIKI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("command", [("status",), ("status", "--json"), ("tokens", "list")])
def test_a_city_that_is_no_member_is_one_line(env: dict[str, str], command: tuple[str, ...]) -> None:
    done = kouiki(env, *command, "--city", "132194")      # 狛江市 with a wrong check digit
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode == 1 and lines == [
        "132194 は構成団体のコードではありません。132195（狛江市）のことですか / 132194 is not a member's code; "
        "did you mean 132195 (狛江市)?"], lines


def test_a_member_without_uploads_is_an_empty_list(env: dict[str, str]) -> None:
    done = kouiki(env, "status", "--city", "132195", "--json")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
