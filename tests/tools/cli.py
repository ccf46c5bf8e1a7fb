"""The ``kouiki`` command line, run in this process (typer's CliRunner) as an office clerk would type it."""

from __future__ import annotations

from typer.testing import CliRunner

from commands.cli import app


def kouiki(*args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``kouiki ARGS``; an unexpected exception is raised, not turned into exit 1."""
    result = CliRunner().invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr
