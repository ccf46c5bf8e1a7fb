"""Every configuration and environment error is one line naming the file (and line) and what to do, exit 2,
no traceback; an unexpected error shows its traceback only with --debug / KOUIKI_DEBUG=1."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from kouiki.errors import ConfigError, friendly_errors, one_line
from kouiki.members import RegistryError, load_members
from kouiki.problems import ProblemError, entry
from kouiki.settings import REPO_ROOT

KOUIKI = [sys.executable, "-m", "commands.cli"]


def _kouiki(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("KOUIKI_")}
    full = {**base, "KOUIKI_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "home" / "dagster"),
            **env}
    return subprocess.run([*KOUIKI, *args], cwd=REPO_ROOT, env=full, capture_output=True, text=True, timeout=180)


def _one_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_an_unquoted_code_is_refused_with_the_quoted_form(tmp_path: Path) -> None:
    members = tmp_path / "members.yaml"
    members.write_text('members:\n  - code: "122033"\n    name: 市川市\n  - code: 011002\n    name: 札幌市\n',
                       encoding="utf-8")
    line = _one_line(_kouiki(tmp_path, "run", KOUIKI_MEMBERS=str(members)))
    assert f"{members}:4:" in line and "quote the code: '011002'" in line


def test_an_unquoted_code_in_submits_for_is_refused_too(tmp_path: Path) -> None:
    members = tmp_path / "members.yaml"
    members.write_text('members:\n  - code: "122033"\n    submits_for: ["132195", 222127]\n', encoding="utf-8")
    with pytest.raises(RegistryError, match=r"members.yaml:3: .*quote the code: '222127'"):
        load_members(members)


def test_a_members_file_that_is_not_utf8_or_not_yaml_names_the_line(tmp_path: Path) -> None:
    members = tmp_path / "members.yaml"
    members.write_bytes('members:\n  - code: "122033"\n    name: 市川市\n'.encode("cp932"))
    with pytest.raises(RegistryError, match=r"members.yaml:3: .*not UTF-8"):
        load_members(members)
    members.write_text('members:\n  - code: "122033"\n   name: 市川市\n', encoding="utf-8")
    with pytest.raises(RegistryError, match=r"members.yaml:3: .*YAML syntax error"):
        load_members(members)
    members.write_text('members:\n  - code: "122034"\n', encoding="utf-8")
    with pytest.raises(RegistryError, match=r"members.yaml:2: members\[0\]: code '122034'"):
        load_members(members)


def test_a_home_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    line = _one_line(_kouiki(tmp_path, "doctor", KOUIKI_HOME=str(blocker / "home")))
    assert str(blocker) in line and "KOUIKI_HOME" in line


def test_a_broken_schema_file_is_one_line(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "broken.yaml").write_text("id: broken\ncolumns: [\n", encoding="utf-8")
    sample = tmp_path / "a.csv"
    sample.write_text("ID,名称\n1,a\n", encoding="utf-8")
    line = _one_line(_kouiki(tmp_path, "inspect", str(sample), KOUIKI_SCHEMAS=str(schemas)))
    assert str(schemas / "broken.yaml") in line


def test_a_wrong_automation_setting_is_one_line(tmp_path: Path) -> None:
    """config/automation.yaml is read when the definitions load (every run, the daemon): a wrong value there
    is the office's to fix, named with its file and key, not a crash."""
    automation = tmp_path / "automation.yaml"
    automation.write_text("runs:\n  max_concurrent: many\n", encoding="utf-8")
    line = _one_line(_kouiki(tmp_path, "run", KOUIKI_AUTOMATION=str(automation)))
    assert f"{automation}: max_concurrent" in line and "not 'many'" in line


def test_unexpected_errors_are_one_line_unless_debugging(capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KOUIKI_DEBUG", "0")   # restored afterwards (--debug sets it)
    monkeypatch.setattr(sys, "argv", ["kouiki", "run"])
    with pytest.raises(SystemExit) as stopped, friendly_errors("kouiki"):
        raise RuntimeError("boom\nsecond line")
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "RuntimeError: boom second line" in err and "--debug" in err
    monkeypatch.setattr(sys, "argv", ["kouiki", "run", "--debug"])
    with pytest.raises(RuntimeError), friendly_errors("kouiki"):
        raise RuntimeError("boom")
    assert sys.argv == ["kouiki", "run"]   # --debug is taken off the command line


# --- every kind of configuration error is a problem of the one catalogue (kouiki/problems.yaml) -----------------

def _kinds() -> list[tuple[ConfigError, str]]:
    from anonymise.policy import PolicyError
    from expectations.registry import SchemaError
    from publish.recover import ReleaseStateError

    return [(ConfigError("KOUIKI_PORT=0: 0 より大きい値を指定してください / must be greater than 0"), "config-error"),
            (RegistryError("members.yaml:4: code 011002: 引用符で囲んでください / quote the code"), "registry-error"),
            (SchemaError(Path("aed.yaml"), "name_en", "missing (required key)", 3), "schema-error"),
            (PolicyError("care.yaml:2: min_cell: must be at least 1"), "policy-error"),
            (PolicyError("入力に必要な列がありません / the records lack columns the policy needs: ['age']",
                         code="policy-input-error"), "policy-input-error"),
            (ReleaseStateError("aed/3/metadata.json: 読めません / unreadable"), "release-state-error")]


@pytest.mark.parametrize("index", range(6))
def test_each_kind_of_configuration_error_prints_its_catalogue_words(index: int) -> None:
    error, code = _kinds()[index]
    assert isinstance(error, ProblemError) and isinstance(error, ValueError) and error.code == code
    found = entry(code)
    assert found.title.ja and found.title.en and found.hint and found.hint.ja and found.hint.en
    detail = str(error)
    assert error.message_ja == error.message_en == detail   # the raise site's where and what, both languages
    assert one_line(error) == (f"{found.title.ja} / {found.title.en}: {detail} — "
                               f"{found.hint.ja} / {found.hint.en}")
    again = pickle.loads(pickle.dumps(error))   # crosses a worker process as the same kind, with its problem
    assert type(again) is type(error) and again.problem == error.problem and str(again) == detail


def test_a_raise_site_that_says_what_to_do_is_not_given_the_general_hint_too(tmp_path: Path) -> None:
    members = tmp_path / "members.yaml"
    members.write_text('members:\n  - code: "122033"\n   name: 市川市\n', encoding="utf-8")
    with pytest.raises(RegistryError) as raised:
        load_members(members)
    line = one_line(raised.value)
    assert line is not None and line.startswith("構成団体の一覧の誤り / member registry error: ")
    assert f"{members}:3: " in line and line.endswith("その行を直してください / fix that line")
    assert line.count(" — ") == 1 and "members.yaml）の示された行" not in line


def test_a_policy_error_names_its_file_and_line_in_the_problem(tmp_path: Path) -> None:
    from anonymise.policy import PolicyError, load_policy

    policy = tmp_path / "care.yaml"
    policy.write_text("name: care\nmin_cell: -1\n", encoding="utf-8")
    with pytest.raises(PolicyError) as raised:
        load_policy(policy)
    where = raised.value.problem.where
    assert where.file == str(policy) and where.line is not None
    line = one_line(raised.value)
    assert line is not None and line.startswith(f"匿名加工ポリシーの誤り / anonymisation policy error: {policy}:")
    assert f"{policy}:{where.line}: " in line and line.count(" — ") == 1   # what to do, once
