"""Every KOUIKI_* variable is declared once, in kouiki/settings.py's table, and read only through ``Settings``.

- the table is complete (every KOUIKI_ name in the product, the tests, the benchmarks and the Makefile is a row)
  and agrees with the objects that carry the values (Settings, its groups, the Dagster resource);
- no module outside kouiki/settings.py reads a KOUIKI_ variable from ``os.environ`` (read from the source: the
  few other uses of ``os.environ`` are listed below with why);
- a wrong value is one line naming the variable, the value and what to do, also from the real entry points;
- docs/settings.md and the README's table are what scripts/settings_table.py makes of the table.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from kouiki.errors import ConfigError
from kouiki.settings import GROUPS, VARIABLE, VARIABLES, Settings, default

REPO = Path(__file__).resolve().parent.parent
PRODUCT = ("assets", "pipelines", "portal", "service", "kouiki", "commands", "publish", "anonymise", "warehouse",
           "intake", "expectations", "recovery", "scripts")
NAME = re.compile(r"\bKOUIKI_[A-Z0-9_]+")
NOT_VARIABLES = {"KOUIKI_NAMESPACE"}   # portal/service.py: the UUID namespace of CKAN ids, a Python constant
# The uses of os.environ outside kouiki/settings.py, per file, and why each may stay (none reads a KOUIKI_ variable,
# except kouiki/errors.py's KOUIKI_DEBUG, said below). A new use fails this test until it is added here with why.
OTHER_ENVIRON_USES = {
    "pipelines/main_run.py": (2, "DAGSTER_HOME: Dagster's own variable, which DagsterInstance.get() reads"),
    "pipelines/daemon.py": (3, "DAGSTER_HOME, DAGSTER_DISABLE_TELEMETRY, DAGSTER_GRPC_TIMEOUT_SECONDS for the "
                               "Dagster processes that replace this one"),
    "pipelines/testing.py": (1, "the environment of a child process: all of this one, the test's values over it"),
    "service/testing.py": (1, "the environment of a child process: all of this one, the test's values over it"),
    "kouiki/errors.py": (2, "KOUIKI_DEBUG: --debug sets it for child processes, and the error handler reads it; "
                            "the handler prints Settings' own errors, so it cannot depend on Settings (which "
                            "imports kouiki.errors)"),
}
READS_KOUIKI_ALLOWED = {"kouiki/errors.py"}


def _python_files() -> list[Path]:
    return sorted(p for package in PRODUCT for p in (REPO / package).rglob("*.py"))


def test_every_variable_is_one_row_and_each_group_is_its_rows() -> None:
    names = [var.env for var in VARIABLES]
    assert len(names) == len(set(names)), "a variable declared twice"
    shared = {var.field for var in VARIABLES if var.component == "shared"}
    assert shared == {f.name for f in dataclasses.fields(Settings)} - {"env"}
    for component, group in GROUPS.items():
        rows = {var.field for var in VARIABLES if var.component == component}
        assert rows == {f.name for f in dataclasses.fields(group)}, component
    settings = Settings.from_env({})
    for component in GROUPS:           # every default is a value of its own type
        assert getattr(settings, component) is not None
    assert settings.members == REPO / "config" / "members.yaml" and settings.home == REPO / ".kouiki"


def test_every_kouiki_name_in_the_repository_is_declared() -> None:
    sources = [*_python_files(), *(REPO / "tests").rglob("*.py"), *(REPO / "bench").rglob("*.py"),
               REPO / "Makefile", *(REPO / "scripts").glob("*.sh")]
    found: dict[str, Path] = {}
    for path in sources:
        for name in NAME.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, path)
    families = [var.env.removesuffix("<NAME>") for var in VARIABLES if var.env.endswith("<NAME>")]
    undeclared = {name: str(path.relative_to(REPO)) for name, path in found.items()
                  if name not in VARIABLE and name not in NOT_VARIABLES
                  and not any(name.startswith(family) for family in families)
                  and not any(var.startswith(name) for var in VARIABLE)}   # a prefix in prose: KOUIKI_PORTAL_*
    assert not undeclared, f"add these to kouiki/settings.py's VARIABLES: {undeclared}"
    assert {"KOUIKI_PORT", "KOUIKI_EXECUTOR", "KOUIKI_CRASH_AT", "KOUIKI_TEST_REDIS_URL"} <= set(found)


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level NAME = "text" assignments (a KOUIKI_ name kept in a constant is still that variable)."""
    return {target.id: node.value.value for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)}


def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr in ("environ", "environb", "getenv", "putenv")
            and isinstance(node.value, ast.Name) and node.value.id == "os") or (
        isinstance(node, ast.Name) and node.id in ("environ", "getenv"))


def environ_uses(path: Path) -> tuple[int, list[str]]:
    """(how many times ``path`` uses os.environ / os.getenv, the KOUIKI_ variables it reads from them)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    constants = _constants(tree)

    def key(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        if isinstance(node, ast.JoinedStr):   # f"KOUIKI_{x}"
            return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
        return None

    uses, reads = 0, []
    for node in ast.walk(tree):
        if _is_environ(node):
            uses += 1
        keys: list[ast.AST] = []
        if isinstance(node, ast.Subscript) and _is_environ(node.value):
            keys = [node.slice]
        elif isinstance(node, ast.Call) and node.args and (
                _is_environ(node.func) or (isinstance(node.func, ast.Attribute) and _is_environ(node.func.value))):
            keys = [node.args[0]]
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            keys = [node.left]
        reads += [k for k in map(key, keys) if k and k.startswith("KOUIKI_")]
    return uses, reads


def test_no_module_but_kouiki_settings_reads_a_kouiki_variable_from_the_environment() -> None:
    uses: dict[str, int] = {}
    reads: dict[str, list[str]] = {}
    for path in _python_files():
        name = str(path.relative_to(REPO))
        if name == "kouiki/settings.py":
            continue
        count, kouiki_reads = environ_uses(path)
        if count:
            uses[name] = count
        if kouiki_reads:
            reads[name] = kouiki_reads
    assert set(reads) <= READS_KOUIKI_ALLOWED, f"read these through kouiki.settings.Settings: {reads}"
    assert uses == {name: count for name, (count, _why) in OTHER_ENVIRON_USES.items()}


def test_the_reader_of_the_source_sees_a_read_through_a_constant(tmp_path: Path) -> None:
    """The check above would see the reads this change removed (so it cannot pass by looking at nothing)."""
    old = tmp_path / "old.py"
    old.write_text('import os\nPORT_ENV = "KOUIKI_PORT"\n'
                   'a = os.environ.get(PORT_ENV, "8000")\nb = os.environ["KOUIKI_HOME"]\n'
                   'c = "KOUIKI_MAP_TILES" in os.environ\nd = os.getenv(f"KOUIKI_BENCH_ARGS_{a}")\n'
                   'e = {**os.environ}\n', encoding="utf-8")
    assert environ_uses(old) == (5, ["KOUIKI_PORT", "KOUIKI_HOME", "KOUIKI_MAP_TILES", "KOUIKI_BENCH_ARGS_"])


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("KOUIKI_PORT", "abc", "must be a whole number from 1 to 65535"),
    ("KOUIKI_PORT", "70000", "must be a whole number from 1 to 65535"),
    ("KOUIKI_SERVICE_PORT", "0", "must be a whole number from 1 to 65535"),
    ("KOUIKI_SERVICE_WORKERS", "-2", "must be a whole number of at least 1"),
    ("KOUIKI_MAX_UPLOAD_MB", "-5", "must be greater than 0"),
    ("KOUIKI_MAX_UPLOAD_MB", "lots", "must be a number"),
    ("KOUIKI_HEADER_TIMEOUT_S", "inf", "must be greater than 0"),
    ("KOUIKI_DCAT_PAGE_SIZE", "5000", "must be a whole number from 1 to 1000"),
    ("KOUIKI_EXECUTOR", "k8s", "is not an executor: use one of in_process, multiprocess, celery"),
    ("KOUIKI_FILE_CACHE", "maybe", "must be 1 (on) or 0 (off)"),
    ("KOUIKI_MAP_TILES", "javascript:alert(1)", "must be a tile URL"),
])
def test_a_wrong_value_is_one_line_naming_the_variable_and_what_to_do(variable: str, value: str, says: str) -> None:
    var = VARIABLE[variable]
    with pytest.raises(ConfigError) as wrong:
        settings = Settings.from_env({variable: value})
        getattr(settings, var.component)
    line = str(wrong.value)
    assert "\n" not in line and line.startswith(f"{variable}={value!r}: ")
    assert says in line and "unset it for the default" in line and "未設定にすると既定値" in line


def test_unset_or_empty_is_the_default_and_a_given_value_is_read() -> None:
    assert Settings.from_env({"KOUIKI_PORT": " "}).portal.port == 8000 == default("KOUIKI_PORT")
    given = Settings.from_env({"KOUIKI_PORT": "8123", "KOUIKI_MAX_UPLOAD_MB": "0.5", "KOUIKI_EXECUTOR": "celery",
                               "KOUIKI_CELERY_BROKER": "redis://127.0.0.1:6379/0", "KOUIKI_MAP_TILES": "",
                               "KOUIKI_ANONYMISATION_FLOORS": "/srv/floors.yaml", "KOUIKI_CRASH_AT": "lake:2"})
    assert (given.portal.port, given.service.max_upload_mb, given.pipeline.executor) == (8123, 0.5, "celery")
    assert given.portal.map_tiles == ""          # set but empty: no tiles (the one variable where empty is a value)
    assert given.floors == Path("/srv/floors.yaml") and given.tests.crash_at == "lake:2"
    assert given.pipeline.celery_backend is None and given.service.workers == 2


def test_a_wrong_portal_value_does_not_stop_the_other_components() -> None:
    settings = Settings.from_env({"KOUIKI_PORT": "abc"})
    assert settings.service.port == 8100 and settings.pipeline.executor == "in_process"
    with pytest.raises(ConfigError, match="KOUIKI_PORT"):
        assert settings.portal is None   # never reached: reading the group raises


def test_the_components_views_hold_the_tables_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from portal.settings import PortalSettings
    from service.limits import Limits
    from service.settings import ServiceSettings

    for var in VARIABLES:
        monkeypatch.delenv(var.env, raising=False)
    monkeypatch.setenv("KOUIKI_HOME", str(tmp_path))
    assert PortalSettings.from_env() == PortalSettings(home=tmp_path)
    assert Limits.from_env() == Limits()
    service = ServiceSettings.from_env()
    assert service == ServiceSettings(home=tmp_path, members_file=service.members_file)
    monkeypatch.setenv("KOUIKI_PORTAL_TITLE_EN", "Open Data of the Bay Cities")
    monkeypatch.setenv("KOUIKI_MAX_HEADERS", "20")
    monkeypatch.setenv("KOUIKI_SERVICE_WORKERS", "4")
    assert PortalSettings.from_env().site_title_en == "Open Data of the Bay Cities"
    assert Limits.from_env().max_headers == 20 and ServiceSettings.from_env().validation_workers == 4


def test_the_dagster_resource_has_one_field_per_shared_variable(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import EnvVar

    from assets.resources import FIELDS, KouikiHome

    shared = {var.env for var in VARIABLES if var.component == "shared"}
    assert set(FIELDS.values()) == shared and set(FIELDS) == set(KouikiHome.model_fields)
    for var in shared:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KOUIKI_HOME", str(tmp_path))
    monkeypatch.setenv("KOUIKI_ANONYMISATION_FLOORS", str(tmp_path / "floors.yaml"))
    monkeypatch.setenv("KOUIKI_SCHEMAS", "  ")   # empty is unset, for the resource as for Settings
    resource = KouikiHome.from_env()
    assert {name for name in FIELDS if isinstance(getattr(resource, name), EnvVar)} == {"home", "floors"}
    assert resource.floors == EnvVar("KOUIKI_ANONYMISATION_FLOORS") and resource.schemas == ""
    resolved = resource.process_config_and_initialize()
    assert resolved.settings() == Settings.from_env()
    assert resolved.settings().floors == tmp_path / "floors.yaml" and resolved.settings().schemas is None


def _table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("settings_table", REPO / "scripts" / "settings_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_documents_tables_are_generated_from_the_one_table(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    done = subprocess.run([sys.executable, "scripts/settings_table.py", "--check"], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    script = _table_script()
    docs = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for var in VARIABLES:
        assert f"| `{var.env}` |" in docs and var.ja in docs and var.en.replace("|", "\\|") in docs
    assert all(f"| `{var.env}` |" in readme for var in VARIABLES if var.component == "shared")
    assert "`KOUIKI_PORT`" not in readme.split(script.BEGIN)[1].split(script.END)[0]   # the README: shared only
    # a copy whose table lost a row is found stale and named
    stale = tmp_path / "settings.md"
    row = next(line for line in docs.splitlines(keepends=True) if line.startswith("| `KOUIKI_PORT` |"))
    stale.write_text(docs.replace(row, ""), encoding="utf-8")
    monkeypatch.setattr(script, "DOCS", stale)
    monkeypatch.setattr(script, "REPO", tmp_path)
    monkeypatch.setattr(script, "README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text(readme, encoding="utf-8")
    assert script.main(["--check"]) == 1
    assert script.main([]) == 0 and stale.read_text(encoding="utf-8") == docs


@pytest.mark.parametrize(("entry", "variable", "value"), [
    ("portal", "KOUIKI_PORT", "abc"),
    ("service", "KOUIKI_MAX_UPLOAD_MB", "-1"),
])
def test_the_servers_refuse_a_wrong_value_in_one_line(entry: str, variable: str, value: str,
                                                     tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KOUIKI_")}
    env.update(KOUIKI_HOME=str(tmp_path / "home"), DAGSTER_HOME=str(tmp_path / "home" / "dagster"),
               **{variable: value})
    done = subprocess.run([sys.executable, "-m", entry], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert f"{variable}={value!r}" in lines[0] and "unset it for the default" in lines[0]
