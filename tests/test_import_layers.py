"""The layers of docs/architecture.md are enforced (issue 18): ``lint-imports`` (in ``make test``) fails when an
import crosses a layer upwards, an import inside a function included. Each layer is a whole top-level package, so
no two packages import each other. Each case edits a copy of the project's packages and runs the real
``lint-imports`` on it; the last checks every package is in a layer and the project itself has no cycle between
its packages (scripts/import_cycles.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("commands", "pipelines", "portal", "assets", "service", "recovery", "publish", "anonymise", "warehouse",
            "intake", "expectations", "kouiki")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def python_only(folder: str, names: list[str]) -> list[str]:
    """copytree's ignore: keep sub-folders and .py files (grimp reads nothing else)."""
    return [n for n in names if not (n.endswith(".py") or (Path(folder) / n).is_dir()) or n == "__pycache__"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("layers")
    for package in PACKAGES:
        shutil.copytree(REPO / package, root / package, ignore=python_only)
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    # the copy comes first on the path, before the installed project
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def append_function(file: Path, body: str) -> str:
    """Add a function to ``file``; returns the original text to put back."""
    original = file.read_text()
    file.write_text(original + "\n\ndef _added_by_the_test():\n" + body)
    return original


@pytest.mark.parametrize(("file", "body", "broken"), [
    # the lake step reaching up to the code location, from inside a function
    ("intake/landing.py", "    from pipelines.main_run import run_main\n    return run_main\n",
     ["1. Layers", "intake is not allowed to import pipelines", "intake.landing -> pipelines.main_run"]),
    # kouiki's base (settings) importing the CLI at the top
    ("kouiki/settings.py", "    import commands.cli\n    return commands.cli\n",
     ["1. Layers", "kouiki is not allowed to import commands", "kouiki.settings -> commands.cli"]),
    # a shared module of the base importing a step library
    ("kouiki/localgov.py", "    from intake.values import normalise_phone\n    return normalise_phone\n",
     ["1. Layers", "kouiki is not allowed to import intake", "kouiki.localgov -> intake.values"]),
    # the start-of-run repair reaching up to the upload service
    ("recovery/start.py", "    from service.app import create_app\n    return create_app\n",
     ["1. Layers", "recovery is not allowed to import service", "recovery.start -> service.app"]),
    # a library importing Dagster
    ("warehouse/load.py", "    import dagster\n    return dagster\n",
     ["2. Libraries do not import Dagster", "warehouse is not allowed to import dagster", "warehouse.load -> dagster"]),
])
def test_an_import_across_a_layer_fails_lint_imports(project: Path, file: str, body: str, broken: list[str]) -> None:
    original = append_function(project / file, body)
    try:
        done = lint_imports(project)
    finally:
        (project / file).write_text(original)
    assert done.returncode == 1, done.stdout + done.stderr
    report = done.stdout[done.stdout.index("Broken contracts"):]
    for words in broken:
        assert words in report, report


def layered_packages() -> list[str]:
    """The packages named in the "Layers" contract, each once."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = config["contracts"][0]["layers"]
    return [name.strip() for layer in layers for name in layer.replace("|", ":").split(":")]


def test_every_python_package_of_the_project_is_a_layer() -> None:
    """A new top-level package (a folder of Python modules) must be placed in a layer, else grimp never reads it."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    with_code = {init.parent.name for init in REPO.glob("*/__init__.py")
                 if any(p.name != "__init__.py" for p in init.parent.rglob("*.py"))}
    assert with_code, "no package found"
    assert sorted(layered_packages()) == sorted(set(layered_packages())) == sorted(with_code)
    assert sorted(config["root_packages"]) == sorted(with_code) == sorted(PACKAGES)


def test_the_project_keeps_every_contract_and_has_no_cycle_between_packages(project: Path) -> None:
    done = lint_imports(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 2 kept, 0 broken." in done.stdout
    for way in ([], ["--packages"]):
        cycles = subprocess.run([sys.executable, str(REPO / "scripts" / "import_cycles.py"), *way],
                                capture_output=True, text=True, timeout=120)
        assert cycles.returncode == 0, cycles.stdout + cycles.stderr
        assert "0 two-way pairs; groups of nodes on a cycle: none" in cycles.stdout
