"""Every `kouiki` command, run as a person would (a real process), with wrong arguments: the answer is one line
saying what is wrong and what to do, never a traceback; suggestions are ones that work.

The commands are found by walking the CLI itself (what `kouiki --help` lists, the office's groups included), so a
new command is tested without editing this file."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_anonymise_cli import write_inputs
from typer.main import get_command

from commands.cli import app
from kouiki.members import not_a_member
from service.testing import write_members

REPO = Path(__file__).resolve().parents[1]
KOUIKI = [str(Path(sys.executable).parent / "kouiki")]     # the installed entry point, as people run it


@dataclass(frozen=True)
class Answer:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return [line for line in (self.out + self.err).splitlines() if line.strip()]


def command_paths() -> list[tuple[tuple[str, ...], bool]]:
    """Every leaf command as (path, takes a required argument), e.g. (("tokens", "issue"), True)."""
    found: list[tuple[tuple[str, ...], bool]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, (*path, name))
            return
        params = getattr(command, "params", [])
        found.append((path, any(getattr(p, "required", False) for p in params)))

    walk(get_command(app), ())
    return found


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("cli-errors")
    members = write_members(root / "members.yaml", [("132195", "狛江市")])
    return {**os.environ, "KOUIKI_HOME": str(root / "home"), "DAGSTER_HOME": str(root / "home" / "dagster"),
            "KOUIKI_MEMBERS": str(members), "COLUMNS": "100", "KOUIKI_DEBUG": ""}


def run(env: dict[str, str], *args: str) -> Answer:
    done = subprocess.run([*KOUIKI, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return Answer(args, done.returncode, done.stdout, done.stderr)


def run_all(env: dict[str, str], calls: list[tuple[str, ...]]) -> list[Answer]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: run(env, *args), calls))


def assert_one_clear_line(answer: Answer) -> None:
    text = answer.out + answer.err
    assert "Traceback" not in text, f"kouiki {' '.join(answer.args)}:\n{text}"
    assert answer.code != 0, f"kouiki {' '.join(answer.args)} succeeded"
    assert len(answer.lines) == 1, f"kouiki {' '.join(answer.args)} printed {len(answer.lines)} lines:\n{text}"


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path, _ in command_paths()}
    assert {"run", "inspect", "anonymise", "upload", "status", "rerun", "doctor", "daemon", "ui",
            "members add", "members list", "tokens issue", "tokens revoke", "tokens list"} <= names


def test_every_command_with_an_unknown_option_or_a_missing_argument(env: dict[str, str]) -> None:
    calls: list[tuple[str, ...]] = [("--no-such-option",), ("no-such-command",)]
    for path, needs_argument in command_paths():
        calls.append((*path, "--no-such-option"))
        if needs_argument:
            calls.append(path)
    answers = run_all(env, calls)
    for answer in answers:
        assert_one_clear_line(answer)
        assert answer.code == 2
        line = answer.lines[0]
        assert "--help" in line and ("引数の誤り" in line or "wrong arguments" in line), line
    assert len(answers) >= 20


def test_wrong_values_are_one_line_with_what_to_do(env: dict[str, str], tmp_path: Path) -> None:
    csv = tmp_path / "aed.csv"
    csv.write_text("名称,住所\n市役所,狛江市和泉本町1-1-5\n", encoding="utf-8")
    hierarchy = tmp_path / "name.csv"
    hierarchy.write_text("市役所,*\n", encoding="utf-8")
    qi = f"名称={hierarchy}"
    expected = {
        ("inspect", str(csv), "--dataset", "aedx"): "did you mean: aed",
        ("inspect", str(tmp_path / "none.csv")): "does not exist",
        ("tokens", "issue", "999999"): "kouiki members list",
        ("tokens", "issue", "132190"): "132195（狛江市）",        # a member's code with the wrong check digit
        ("tokens", "issue", "131130"): "kouiki members add 131130",   # a real city that is not a member
        ("tokens", "revoke", "nope"): "kouiki tokens list",
        ("upload", "999999", str(csv)): "kouiki members list",
        ("upload", "132195", str(csv), "--dataset", "aedx"): "unknown dataset aedx",
        ("rerun", "abc"): "kouiki members list",
        ("members", "add", "999999"): "check digit",
        ("members", "add", "132195", "--name", "東京"): "does not match",
        ("ui", "--port", "abc"): "--port",
        ("anonymise", str(csv), "--qi", "名称", "--k", "5", "--out", str(tmp_path / "o.csv"),
         "--report", str(tmp_path / "r.json")): "COL=HIERARCHY.csv",
        ("anonymise", str(csv), "--qi", qi, "--k", "5", "--out", str(csv),
         "--report", str(tmp_path / "r.json")): "--out",
        ("anonymise", str(csv), "--qi", qi, "--k", "5", "--out", str(tmp_path / "o.csv"),
         "--report", str(tmp_path / "r2.json"), "--quality-model", "best"): "best",
    }
    answers = run_all(env, list(expected))
    for answer in answers:
        assert_one_clear_line(answer)
        assert expected[answer.args] in answer.lines[0], answer.lines[0]
    # a suggested `members add` is one that passes: never the code that failed its check digit
    assert not any("members add 999999" in a.lines[0] or "members add 132190" in a.lines[0] for a in answers)


@pytest.mark.parametrize("code", ["999999", "132190", "13219", "131139", "abc", "000000", "011002"])
def test_a_suggested_code_always_passes_its_check(code: str) -> None:
    from kouiki.localgov import is_valid_code, lookup
    from kouiki.members import Member

    line = not_a_member(code, [Member("132195", "狛江市")])
    if "members add " in line:
        suggested = line.split("members add ")[1][:6]
        assert is_valid_code(suggested) and lookup(suggested) is not None, line


def run_at_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run kouiki with its stdout and stderr on a pseudo-terminal, as in a person's shell."""
    main, child = pty.openpty()
    with subprocess.Popen([*KOUIKI, *args], cwd=REPO, env=env, stdout=child, stderr=child,
                          stdin=subprocess.DEVNULL) as process:
        os.close(child)
        seen = b""
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:      # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        code = process.wait(timeout=300)
    os.close(main)
    return code, seen.decode("utf-8", errors="replace")


def test_progress_only_at_a_terminal(env: dict[str, str], tmp_path: Path) -> None:
    """`kouiki anonymise` shows its progress at a terminal and nothing of it when piped (same code path as
    `kouiki run` and `kouiki upload`: rich progress with disable=not stdout.isatty())."""
    data, qis = write_inputs(tmp_path, 300, ",")
    args = ["anonymise", str(data), *[f"--qi={c}={h}" for c, h in qis.items()], "--sensitive", "要介護度",
            "--k", "3", "--l", "2"]
    piped = run(env, *args, "--out", str(tmp_path / "piped.csv"), "--report", str(tmp_path / "piped.json"))
    assert piped.code == 0, piped.err
    assert "匿名加工・検証しています" not in piped.out + piped.err and "\r" not in piped.out + piped.err
    code, text = run_at_a_terminal(env, *args, "--out", str(tmp_path / "tty.csv"), "--report",
                                   str(tmp_path / "tty.json"))
    assert code == 0, text[-2000:]
    assert "匿名加工・検証しています" in text, text[-2000:]
