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
from typing import ClassVar

DEBUG_ENV = "KOUIKI_DEBUG"
CONFIG_EXIT = 2


class ConfigError(ValueError):
    """A problem in configuration or environment the office fixes; its message is the one line to print.

    The configuration errors of other packages (a schema, an anonymisation policy, a release file) derive from
    it, so every entry point prints them without importing those packages (kouiki's base is the lowest layer,
    docs/architecture.md): ``kind`` is printed before the message, ``fix`` after it.
    """

    kind: ClassVar[str] = ""
    fix: ClassVar[str] = ""


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
        return (f"{exc.kind}: {text}" if exc.kind else text) + (f" — {exc.fix}" if exc.fix else "")
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
