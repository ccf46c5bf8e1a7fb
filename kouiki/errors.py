"""Configuration and environment errors as one line, and the handler every entry point runs under.

A known error (a configuration file that is wrong, a home that cannot be written, a corrupt state file) is
printed as one line naming the file (and line) and what to do, in Japanese and English, and the command exits
with 2. Anything else is a bug: one line saying so, and the traceback only with ``--debug`` or
``KOUIKI_DEBUG=1``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from kouiki.problems import Problem, ProblemError, Where, entry

DEBUG_ENV = "KOUIKI_DEBUG"
CONFIG_EXIT = 2


class ConfigError(ProblemError, ValueError):
    """A problem in configuration or environment the office fixes: a :class:`~kouiki.problems.Problem` of the one
    catalogue (kouiki/problems.yaml), printed as one line.

    The configuration errors of other packages (a schema, an anonymisation policy, a release file) derive from
    it, each with its own catalogue code (``problem_code``), so every entry point prints them without importing
    those packages (kouiki's base is the lowest layer, docs/architecture.md). The catalogue entry's title is the
    kind printed before the message, its hint what to do after it; the message is the raise site's ``detail``
    (where, and what is wrong there, in Japanese and English).
    """

    problem_code: ClassVar[str] = "config-error"

    def __init__(self, detail: str, *, where: Where | None = None, code: str | None = None) -> None:
        super().__init__(Problem.of(code or self.problem_code, detail=detail, where=where))

    def __reduce__(self) -> tuple[Any, ...]:   # pickles (a run's worker process) with its problem
        return (_rebuilt, (type(self), self.problem))

    @property
    def kind(self) -> str:
        """What kind of error, in both languages: the catalogue entry's title."""
        title = entry(self.code).title
        return f"{title.ja} / {title.en}"

    @property
    def fix(self) -> str:
        """What to do, in both languages: the catalogue entry's hint ("" when it has none)."""
        return f"{self.hint_ja} / {self.hint_en}" if self.hint_ja else ""


def _rebuilt(kind: type[ConfigError], problem: Problem) -> ConfigError:
    """A configuration error with its problem, without calling the constructor (a subclass may take more)."""
    error = kind.__new__(kind)
    ProblemError.__init__(error, problem)
    return error


def where(file: Path | str, line: int | None = None) -> str:
    return f"{file}:{line}" if line else str(file)


def debug_requested(argv: list[str] | None = None) -> bool:
    """``--debug`` anywhere on the command line (removed from it) or KOUIKI_DEBUG=1."""
    args = sys.argv if argv is None else argv
    if "--debug" in args:
        args.remove("--debug")
        os.environ[DEBUG_ENV] = "1"
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def one_line(exc: BaseException) -> str | None:
    """The one line for a known configuration / environment error, or None for anything else."""
    from yaml import MarkedYAMLError

    text = " ".join(str(exc).split())
    if isinstance(exc, ConfigError):
        # the raise site's own "— what to do" is more precise than the kind's general hint: never both
        fix = f" — {exc.fix}" if exc.fix and " — " not in text else ""
        return f"{exc.kind}: {text}{fix}"
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark
        place = f"{mark.name}:{mark.line + 1}" if mark else "YAML"
        return f"{place}: YAML の書き方が誤っています / YAML syntax error: {exc.problem}"
    if isinstance(exc, PermissionError | FileNotFoundError | NotADirectoryError | IsADirectoryError) and (
            exc.filename):
        return (f"{exc.filename}: {exc.strerror} — 場所と権限を確認してください (KOUIKI_HOME など) / "
                "check the path and its permissions (KOUIKI_HOME, …)")
    if _is_corrupt_database(exc):
        return (f"{_catalog_name()}: データベースが壊れています / the database is corrupt ({text[:120]}) — "
                "kouiki doctor --repair で修復してください / run kouiki doctor --repair")
    if isinstance(exc, OSError) and exc.errno == 28:
        return (f"{exc.filename or 'disk'}: ディスクがいっぱいです / no space left on device — 空きを作ってください / "
                "free some space")
    return None


@contextmanager
def friendly_errors(program: str) -> Iterator[None]:
    """Run an entry point: known errors as one line (exit 2), others one line + how to see the traceback."""
    debug = debug_requested()
    try:
        yield
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:
        line = one_line(exc)
        if line is not None and not debug:
            print(f"{program}: {line}", file=sys.stderr)
            raise SystemExit(CONFIG_EXIT) from None
        if debug:
            raise
        first = " ".join(str(exc).split())[:300]
        print(f"{program}: 予期しないエラー / unexpected error: {type(exc).__name__}: {first} — 詳細は --debug または "
              f"{DEBUG_ENV}=1 で / run again with --debug or {DEBUG_ENV}=1 for the traceback", file=sys.stderr)
        raise SystemExit(1) from None


def _is_corrupt_database(exc: BaseException) -> bool:
    from sqlalchemy.exc import DatabaseError

    text = str(exc)
    return isinstance(exc, DatabaseError) and ("malformed" in text or "not a database" in text)


def _catalog_name() -> str:
    from sqlalchemy import make_url

    from kouiki.settings import Paths, kouiki_home

    url = make_url(Paths(kouiki_home()).catalog_url)
    return str(url.database) if url.get_backend_name() == "sqlite" else url.render_as_string(hide_password=True)
