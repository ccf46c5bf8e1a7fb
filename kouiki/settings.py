"""Where kouiki keeps its state, and every setting it reads from the environment: one table, one object.

Layout (the embedded default; every path is derived from the home so tests can use a temporary one):

    landing/<city>/<sha256>.<ext>      raw uploads, content-addressed, never overwritten
    catalog.sqlite                      uploads, releases, audit log (SQLAlchemy; Postgres when a URL is given)
    lake/<area>/<dataset>/city=<code>/  Parquet written by city partitions (staged, quarantine, findings)
    warehouse.duckdb                    the one DuckDB database (views/tables over the lake); one writer
    reports/<city>/<upload_id>.{html,json}
    releases/<dataset>/<n>/             published releases (immutable); releases/<dataset>/latest.json
    dagster/                            DAGSTER_HOME (SQLite run/event storage)

Every ``KOUIKI_*`` variable is one row of :data:`VARIABLES` (name, default, type, the component that uses it, what
it does in Japanese and English); docs/settings.md and the README's table are generated from it
(``scripts/settings_table.py``; a test fails when they differ). Every entry point (the pipeline, the CLI, the
portal, the upload service) reads them through one object, :class:`Settings` (``Settings.from_env()``): the
shared settings as its fields, each component's own as a small frozen group (``settings.service``,
``settings.portal``, ``settings.pipeline`` ...), read when first asked for, so a wrong portal port never stops
the pipeline. A wrong value is a :class:`~kouiki.errors.ConfigError`: one line naming the variable and what to do.
No other module reads a ``KOUIKI_*`` variable from ``os.environ`` (tests/test_settings.py). The pipeline gets the
shared settings as a Dagster resource whose fields are ``EnvVar``s of the same variables
(``assets.resources.KouikiHome``), which builds this object. It lives here, not in a new module, because every
entry point already imports this one and it must stay light: ``kouiki inspect`` imports neither Dagster nor
pydantic (tests/test_inspect_speed.py).

``KOUIKI_LAKE_URL`` (an fsspec URL such as ``s3://bucket/kouiki``) moves the lake, the landed uploads and the
releases to object storage (``<url>/lake``, ``<url>/landing``, ``<url>/releases``), the store of record; the home
keeps working copies fetched from it when needed (a worker or a portal on another machine starts empty). The
catalog, ``warehouse.duckdb``, reports and Dagster's storage stay on local disk under the home.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from kouiki.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
GSI_TILES = "https://cyberjapandata.gsi.go.jp/xyz/std/{z}/{x}/{y}.png"
EXECUTORS = ("in_process", "multiprocess", "celery")
PREFIX = "KOUIKI_"


@dataclass(frozen=True)
class Var:
    """One environment variable: a row of the settings table."""

    env: str                 # the variable
    field: str               # its name on Settings (shared) or on its component's group (settings.portal.port)
    component: str           # who uses it: a key of COMPONENTS
    kind: str                # how its text is read: a key of PARSERS
    default: str | None      # what an unset or empty variable stands for, as text; None: nothing (the feature is off)
    ja: str
    en: str
    shown: str = ""          # the default as the tables show it ("" → the default itself)
    used_by: str = ""        # the modules that use the value (the tables' last column)
    low: int = 1             # int: the smallest value accepted
    high: int | None = None  # int: the largest
    empty_is_value: bool = False   # set but empty is a value of its own (no map tiles), not "the default"


def _repo(relative: str) -> str:
    return str(REPO_ROOT / relative)


# The components, in the order the tables show them: (key, Japanese, English). "tests" and "bench" variables are
# read by the test suite and the benchmarks themselves (outside the product), listed here so each is declared once.
COMPONENTS = (("shared", "共通", "shared by every entry point"), ("pipeline", "パイプライン", "pipeline"),
              ("service", "登録サービス", "upload service"),
              ("http", "HTTP の制限", "HTTP limits (service and portal)"),
              ("portal", "公開ポータル", "portal"), ("cli", "コマンド", "command line"),
              ("tests", "テスト用", "tests only"), ("bench", "ベンチマーク用", "benchmarks only"))

VARIABLES: tuple[Var, ...] = (
    # shared: Settings' own fields
    Var("KOUIKI_HOME", "home", "shared", "path", _repo(".kouiki"),
        ja="データの置き場所（原本・レイク・DuckDB・記録・公開データ・Dagster の記録）",
        en="the data directory: landing, lake, warehouse, catalog, releases, reports, Dagster's storage",
        shown="`.kouiki`", used_by="every entry point"),
    Var("KOUIKI_CATALOG_URL", "catalog_url", "shared", "url", None,
        ja="登録・公開の記録の接続先（例: PostgreSQL）",
        en="the catalog (uploads, releases, tokens, audit) as a SQLAlchemy URL, e.g. PostgreSQL",
        shown="ホーム内の SQLite / SQLite in the home", used_by="kouiki/catalog.py"),
    Var("KOUIKI_DAGSTER_PG_URL", "dagster_pg_url", "shared", "url", None,
        ja="Dagster の記録を PostgreSQL に置く",
        en="Dagster's runs and events on PostgreSQL (kouiki writes dagster.yaml)",
        shown="ホーム内の SQLite / SQLite in the home", used_by="pipelines/main_run.py"),
    Var("KOUIKI_LAKE_URL", "lake_url", "shared", "url", None,
        ja="レイク・受付原本・公開データをオブジェクトストレージに（例 s3://bucket/kouiki）。ホームには必要な分の作業用の写し",
        en="the lake, landed uploads and releases on object storage (an fsspec URL; S3 needs `uv sync --extra s3`); "
           "the home keeps working copies fetched from it (docs/scale-out.md)",
        shown="ホーム内 / in the home",
        used_by="kouiki/lake.py, intake/landing.py, publish/remote.py, portal/mirror.py, assets/anonymise.py"),
    Var("KOUIKI_MEMBERS", "members", "shared", "path", _repo("config/members.yaml"),
        ja="参加団体の一覧",
        en="the member registry (cities, codes, inboxes)",
        shown="`config/members.yaml`", used_by="kouiki/members.py"),
    Var("KOUIKI_SCHEMAS", "schemas", "shared", "path", None,
        ja="推進室独自のデータセット定義のフォルダ",
        en="a folder of the office's own dataset schemas, added to expectations/schemas/",
        used_by="expectations/registry.py"),
    Var("KOUIKI_ANONYMISATION_POLICIES", "policies", "shared", "path", _repo("config/anonymisation"),
        ja="匿名加工の方針",
        en="the anonymisation policies",
        shown="`config/anonymisation`", used_by="kouiki/members.py"),
    Var("KOUIKI_ANONYMISATION_FLOORS", "floors", "shared", "path", _repo("config/anonymisation/_platform.yaml"),
        ja="どの方針も下回れない共通の下限（k, l など）",
        en="the platform floors (minimum k, l ...) no policy may go below",
        shown="`config/anonymisation/_platform.yaml`", used_by="anonymise/floors.py"),
    Var("KOUIKI_MAPPINGS", "mappings", "shared", "path", _repo("config/mappings"),
        ja="承認済みの見出し対応（市独自の様式）",
        en="accepted header mappings of cities' own layouts",
        shown="`config/mappings`", used_by="intake/mapping.py"),
    Var("KOUIKI_AUTOMATION", "automation", "shared", "path", _repo("config/automation.yaml"),
        ja="センサーの間隔と実行キュー",
        en="sensor intervals and the run queue",
        shown="`config/automation.yaml`", used_by="pipelines/automation.py"),
    Var("KOUIKI_FILE_CACHE", "file_cache", "shared", "flag", "1",
        ja="0 で定義ファイルのディスクキャッシュを使わない",
        en="0 turns off the on-disk cache of the schema registry and parsed models ($KOUIKI_HOME/cache)",
        used_by="kouiki/file_cache.py"),
    # pipeline: settings.pipeline
    Var("KOUIKI_EXECUTOR", "executor", "pipeline", "executor", "in_process",
        ja="UI とデーモンの実行のステップの動かし方: in_process, multiprocess, celery",
        en="how the steps of runs launched by the UI and daemon run: in_process, multiprocess or celery",
        used_by="pipelines/executors.py"),
    Var("KOUIKI_CELERY_BROKER", "celery_broker", "pipeline", "url", None,
        ja="celery のブローカーの URL（celery では必須）",
        en="the broker's URL when KOUIKI_EXECUTOR=celery (required then)",
        used_by="pipelines/executors.py"),
    Var("KOUIKI_CELERY_BACKEND", "celery_backend", "pipeline", "url", None,
        ja="celery のワーカーが結果を置く先",
        en="where Celery workers put step results",
        shown="ブローカー / the broker", used_by="pipelines/executors.py"),
    # service: settings.service
    Var("KOUIKI_SERVICE_PORT", "port", "service", "int", "8100",
        ja="登録サービスのポート（127.0.0.1）",
        en="the upload service's port on 127.0.0.1",
        high=65535, used_by="service/__main__.py"),
    Var("KOUIKI_SERVICE_WORKERS", "workers", "service", "int", "2",
        ja="同時に検査するアップロードの数",
        en="uploads read and validated at the same time",
        used_by="service/app.py"),
    Var("KOUIKI_MAX_UPLOAD_MB", "max_upload_mb", "service", "number", "200",
        ja="受け付ける最大のファイル（MB）",
        en="the largest file accepted (MB)",
        used_by="service/app.py"),
    # http: settings.http, the request-head limits of both servers
    Var("KOUIKI_MAX_HEADER_KB", "max_header_kb", "http", "number", "64",
        ja="リクエストヘッダーの最大の大きさ（KB）",
        en="the largest request head (KB)",
        used_by="service/limits.py"),
    Var("KOUIKI_MAX_HEADERS", "max_headers", "http", "int", "100",
        ja="リクエストヘッダーの最大の行数",
        en="header lines per request",
        used_by="service/limits.py"),
    Var("KOUIKI_HEADER_TIMEOUT_S", "header_timeout_s", "http", "number", "10",
        ja="リクエストヘッダーを送る時間の上限（秒）",
        en="time allowed for the request head (s)",
        used_by="service/limits.py"),
    Var("KOUIKI_BODY_IDLE_TIMEOUT_S", "body_idle_timeout_s", "http", "number", "60",
        ja="本文の送信が止まってよい時間（秒）",
        en="longest pause while a body is sent (s)",
        used_by="service/limits.py"),
    # portal: settings.portal
    Var("KOUIKI_PORT", "port", "portal", "int", "8000",
        ja="公開ポータルのポート（127.0.0.1）",
        en="the portal's port on 127.0.0.1",
        high=65535, used_by="portal/__main__.py, commands/cli.py"),
    Var("KOUIKI_PORTAL_TITLE_JA", "title_ja", "portal", "text", "広域オープンデータカタログ",
        ja="サイト名（日本語）",
        en="the site title in Japanese",
        used_by="portal/settings.py"),
    Var("KOUIKI_PORTAL_TITLE_EN", "title_en", "portal", "text", "Regional Open Data Catalogue",
        ja="サイト名（英語）",
        en="the site title in English",
        used_by="portal/settings.py"),
    Var("KOUIKI_PUBLISHER_JA", "publisher_ja", "portal", "text", "共同データ推進室",
        ja="DCAT・CKAN の公開者（日本語）",
        en="the publisher in DCAT and CKAN metadata, Japanese",
        used_by="portal/settings.py"),
    Var("KOUIKI_PUBLISHER_EN", "publisher_en", "portal", "text", "Shared Data Office of the member cities",
        ja="DCAT・CKAN の公開者（英語）",
        en="the publisher in DCAT and CKAN metadata, English",
        used_by="portal/settings.py"),
    Var("KOUIKI_MAP_TILES", "map_tiles", "portal", "tiles", GSI_TILES,
        ja="地図のタイル URL。空にすると背景地図なし（外部への通信なし）",
        en="the map's tile URL ({z}/{x}/{y}); set but empty: no background tiles, no request leaves the site",
        shown="地理院タイル / GSI tiles", used_by="portal/app.py, portal/web.py", empty_is_value=True),
    Var("KOUIKI_MAP_ATTRIBUTION_JA", "map_attribution_ja", "portal", "text", "出典：国土地理院",
        ja="タイルの出典（日本語）",
        en="the tiles' attribution in Japanese",
        used_by="portal/web.py"),
    Var("KOUIKI_MAP_ATTRIBUTION_EN", "map_attribution_en", "portal", "text",
        "Source: Geospatial Information Authority of Japan",
        ja="タイルの出典（英語）",
        en="the tiles' attribution in English",
        used_by="portal/web.py"),
    Var("KOUIKI_MAP_ATTRIBUTION_URL", "map_attribution_url", "portal", "text", "https://maps.gsi.go.jp/development/ichiran.html",
        ja="タイルの出典のリンク",
        en="the link of the tiles' attribution",
        used_by="portal/web.py"),
    Var("KOUIKI_DCAT_PAGE_SIZE", "dcat_page_size", "portal", "int", "100",
        ja="DCAT カタログの 1 ページのデータセット数",
        en="datasets per page of the DCAT catalogue",
        high=1000, used_by="portal/dcat.py"),
    # cli
    Var("KOUIKI_DEBUG", "debug", "cli", "flag", "0",
        ja="1 で 1 行のエラーの代わりにトレースバックを表示（--debug と同じ）",
        en="1: full tracebacks instead of one-line errors (as --debug)",
        used_by="kouiki/errors.py"),
    # tests and benchmarks (read by tests/ and bench/ themselves)
    Var("KOUIKI_CRASH_AT", "crash_at", "tests", "text", None,
        ja="名前の付いたステップ境界で実行を終える（<名前>[:<回>]）",
        en="end a run at a named step boundary (<name>[:<n>])",
        used_by="kouiki/crashpoints.py, bench/crash_harness.py"),
    Var("KOUIKI_CRASH_TRACE", "crash_trace", "tests", "path", None,
        ja="通ったステップ境界を書き出すファイル",
        en="a file recording every step boundary reached",
        used_by="kouiki/crashpoints.py, bench/crash_harness.py"),
    Var("KOUIKI_TEST_PG_URL", "test_pg_url", "tests", "url", None,
        ja="make test-postgres が設定する PostgreSQL",
        en="set by make test-postgres: its throwaway PostgreSQL",
        used_by="tests/test_postgres.py"),
    Var("KOUIKI_TEST_REDIS_URL", "test_redis_url", "tests", "url", None,
        ja="make test-distributed が設定する Redis",
        en="set by make test-distributed: its Redis broker",
        used_by="tests/test_distributed.py"),
    Var("KOUIKI_TEST_WORKER_PIDS", "test_worker_pids", "tests", "path", None,
        ja="make test-distributed が止めるワーカーの一覧",
        en="the Celery workers make test-distributed stops afterwards",
        used_by="tests/test_distributed.py"),
    Var("KOUIKI_SAMPLES_E2E", "samples_e2e", "tests", "flag", "0",
        ja="1 で 14 の実ファイルを端から端まで処理する",
        en="1: run the 14 real sample files end to end",
        used_by="tests/test_samples_release.py"),
    Var("KOUIKI_SCREENSHOTS", "screenshots", "tests", "path", None,
        ja="ポータルの画面写真を書き出すフォルダ",
        en="a folder to write the portal's screenshots to",
        used_by="tests/test_portal_a11y.py"),
    Var("KOUIKI_BENCH_TIMEOUT", "bench_timeout", "bench", "number", "3600",
        ja="ベンチマーク 1 つの時間の上限（秒）",
        en="seconds allowed per benchmark",
        used_by="bench/run_all.py"),
    Var("KOUIKI_BENCH_ARGS_<NAME>", "bench_args", "bench", "text", None,
        ja="1 つのベンチマークへの追加の引数",
        en='extra arguments for one benchmark, e.g. KOUIKI_BENCH_ARGS_PORTAL="--rows 100000"',
        used_by="bench/run_all.py"),
    Var("KOUIKI_BENCH_SCALE_SIZES", "bench_scale_sizes", "bench", "text", "3,100,1741",
        ja="規模ベンチマークの団体数",
        en="the member counts of the scale benchmark",
        used_by="bench/bench_scale.py"),
    Var("KOUIKI_ARX_SOURCE", "arx_source", "bench", "path", None,
        ja="ARX の adult データの場所",
        en="where ARX's adult data set is (a clone or git directory)",
        used_by="bench/arx_adult_data.py"),
)
VARIABLE = {var.env: var for var in VARIABLES}
_OFF = ("0", "false", "no", "off")
_ON = ("1", "true", "yes", "on")


def _refuse(var: Var, raw: str, ja: str, en: str) -> ConfigError:
    """The one line for a wrong value: the variable, its value, what is wrong and what to do."""
    default = var.shown or var.default or "—"
    return ConfigError(f"{var.env}={raw[:80]!r}: {ja} / {en} — 直すか、未設定にすると既定値（{default}）になります / "
                       f"fix it, or unset it for the default ({default})")


def _int(var: Var, raw: str) -> int:
    top = f"{var.high}" if var.high is not None else ""
    within = f"{var.low}〜{top} の整数を指定してください" if top else f"{var.low} 以上の整数を指定してください"
    within_en = f"a whole number from {var.low} to {top}" if top else f"a whole number of at least {var.low}"
    try:
        value = int(raw)
    except ValueError:
        raise _refuse(var, raw, within, f"must be {within_en}") from None
    if value < var.low or (var.high is not None and value > var.high):
        raise _refuse(var, raw, within, f"must be {within_en}")
    return value


def _number(var: Var, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _refuse(var, raw, "数値を指定してください", "must be a number") from None
    if not value > 0 or value == float("inf"):
        raise _refuse(var, raw, "0 より大きい値を指定してください", "must be greater than 0")
    return value


def _flag(var: Var, raw: str) -> bool:
    if raw.lower() in _ON:
        return True
    if raw.lower() in _OFF:
        return False
    raise _refuse(var, raw, "1 か 0 を指定してください", "must be 1 (on) or 0 (off)")


def _executor(var: Var, raw: str) -> str:
    if raw not in EXECUTORS:
        raise _refuse(var, raw, f"{' / '.join(EXECUTORS)} のいずれかを指定してください",
                      f"is not an executor: use one of {', '.join(EXECUTORS)}")
    return raw


def _tiles(var: Var, raw: str) -> str:
    """A tile URL template (https://host/…/{z}/{x}/{y}.png) or '' for none; anything else is refused."""
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("https", "http") or not parts.netloc or not all(
            f"{{{k}}}" in raw for k in "zxy") or any(c in raw for c in " ;'\"\n"):
        raise _refuse(var, raw, f"{GSI_TILES} のようなタイル URL を指定してください（空: 背景地図なし）",
                      f"must be a tile URL such as {GSI_TILES} (or empty for no background map)")
    return raw


# kind → how the (stripped) text becomes the value
PARSERS: dict[str, Callable[[Var, str], Any]] = {
    "path": lambda var, raw: Path(raw), "text": lambda var, raw: raw, "url": lambda var, raw: raw,
    "flag": _flag, "int": _int, "number": _number, "executor": _executor, "tiles": _tiles,
}


def read(var: Var, env: Mapping[str, str]) -> Any:
    """The value of ``var`` in ``env``: its default when unset or empty (None when it has none); a
    :class:`ConfigError` naming the variable when the text is not a value of its kind."""
    raw = env.get(var.env)
    if raw is not None and (raw.strip() or var.empty_is_value):
        return PARSERS[var.kind](var, raw.strip())
    return None if var.default is None else PARSERS[var.kind](var, var.default)


def default(env_name: str) -> Any:
    """The default value of the variable ``env_name`` (what it is when unset)."""
    return read(VARIABLE[env_name], {})


def _group(component: str, env: Mapping[str, str]) -> dict[str, Any]:
    return {var.field: read(var, env) for var in VARIABLES if var.component == component}


@dataclass(frozen=True)
class PipelineValues:
    """``settings.pipeline``: which Dagster executor runs the steps (pipelines/executors.py)."""

    executor: str
    celery_broker: str | None
    celery_backend: str | None


@dataclass(frozen=True)
class ServiceValues:
    """``settings.service``: the upload service's port and how much it accepts."""

    port: int
    workers: int
    max_upload_mb: float


@dataclass(frozen=True)
class HttpValues:
    """``settings.http``: the request-head limits of the upload service and the portal (service/limits.py)."""

    max_header_kb: float
    max_headers: int
    header_timeout_s: float
    body_idle_timeout_s: float


@dataclass(frozen=True)
class PortalValues:
    """``settings.portal``: the portal's port and how it presents itself (portal/settings.py)."""

    port: int
    title_ja: str
    title_en: str
    publisher_ja: str
    publisher_en: str
    map_tiles: str
    map_attribution_ja: str
    map_attribution_en: str
    map_attribution_url: str
    dcat_page_size: int


@dataclass(frozen=True)
class CliValues:
    debug: bool


@dataclass(frozen=True)
class HarnessValues:
    """``settings.tests``: the crash harness's points (kouiki/crashpoints.py) and the test suite's switches."""

    crash_at: str | None
    crash_trace: Path | None
    test_pg_url: str | None
    test_redis_url: str | None
    test_worker_pids: Path | None
    samples_e2e: bool
    screenshots: Path | None


# component → its group's class (the shared settings are Settings' own fields; bench's are read by bench/)
GROUPS: dict[str, type] = {"pipeline": PipelineValues, "service": ServiceValues, "http": HttpValues,
                           "portal": PortalValues, "cli": CliValues, "tests": HarnessValues}


@dataclass(frozen=True)
class Settings:
    """The settings every entry point shares, read from the environment once (:meth:`from_env`); each
    component's own settings are its group (``settings.portal`` ...), read and checked when first asked for."""

    home: Path
    catalog_url: str
    dagster_pg_url: str | None
    lake_url: str | None
    members: Path
    schemas: Path | None
    policies: Path
    floors: Path
    mappings: Path
    automation: Path
    file_cache: bool
    env: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)   # the KOUIKI_* variables read

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, str] | None = None) -> Settings:
        """The settings from ``env`` (default: ``os.environ``) with ``overrides`` over it (variable → text); an
        unset or empty variable is its default."""
        source = os.environ if env is None else env
        given = {name: value for name, value in source.items() if name.startswith(PREFIX)} | dict(overrides or {})
        shared = _group("shared", given)
        home = shared["home"].resolve()
        return cls(**{**shared, "home": home, "catalog_url": shared["catalog_url"] or default_catalog_url(home),
                      "lake_url": lake_url(shared["lake_url"]), "env": given})

    @cached_property
    def pipeline(self) -> PipelineValues:
        return PipelineValues(**_group("pipeline", self.env))

    @cached_property
    def service(self) -> ServiceValues:
        return ServiceValues(**_group("service", self.env))

    @cached_property
    def http(self) -> HttpValues:
        return HttpValues(**_group("http", self.env))

    @cached_property
    def portal(self) -> PortalValues:
        return PortalValues(**_group("portal", self.env))

    @cached_property
    def cli(self) -> CliValues:
        return CliValues(**_group("cli", self.env))

    @cached_property
    def tests(self) -> HarnessValues:
        return HarnessValues(**_group("tests", self.env))

    def paths(self) -> Paths:
        """The home's layout with this catalog and lake (not created: :meth:`Paths.ensure` does that)."""
        return Paths(self.home, lake_url=self.lake_url or "", catalog=self.catalog_url)


def harness_values(env: Mapping[str, str] | None = None) -> HarnessValues:
    """``settings.tests`` alone, without the shared settings (the crash points ask at every step boundary)."""
    return HarnessValues(**_group("tests", os.environ if env is None else env))


def environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``env`` (default: this process's environment) to start a child process with."""
    return dict(os.environ if env is None else env)


def default_catalog_url(home: Path) -> str:
    return f"sqlite:///{home / 'catalog.sqlite'}"


def lake_url(raw: str | None) -> str | None:
    """``KOUIKI_LAKE_URL`` without a trailing slash; a local path is made absolute. None: the home's folders."""
    if not raw:
        return None
    if "://" not in raw:
        return str(Path(raw).resolve())
    if raw.startswith("file://"):
        return str(Path(raw.removeprefix("file://")).resolve())
    return raw.rstrip("/")


def _env_lake_url() -> str:
    return Settings.from_env().lake_url or ""


def _env_catalog() -> str:
    return read(VARIABLE["KOUIKI_CATALOG_URL"], os.environ) or ""   # only a URL given: the default follows the home


@dataclass(frozen=True)
class Paths:
    """All locations under one kouiki home, and where the lake is. ``Paths(home)`` alone takes the catalog and
    the lake URL from the environment (:class:`Settings`); :meth:`Settings.paths` passes them explicitly."""

    home: Path
    lake_url: str = field(default_factory=_env_lake_url)    # "": the lake, landing and releases are in the home
    catalog: str = field(default_factory=_env_catalog)      # "": SQLite in the home

    @property
    def landing(self) -> Path:
        return self.home / "landing"

    @property
    def inbox(self) -> Path:
        """Where files arrive before landing (uploads dropped per city: inbox/<city>/<file>)."""
        return self.home / "inbox"

    @property
    def local_lake(self) -> Path:
        """The lake's folder in the home (where the lake is when ``KOUIKI_LAKE_URL`` is not set)."""
        return self.home / "lake"

    @property
    def lake(self) -> Path | str:
        """The lake root for ``kouiki.lake``: the home's folder, or ``<KOUIKI_LAKE_URL>/lake``."""
        return f"{self.lake_url}/lake" if self.lake_url else self.local_lake

    @property
    def remote_landing(self) -> str | None:
        """The store of record of landed uploads when ``KOUIKI_LAKE_URL`` is set (``<url>/landing``), else None:
        :attr:`landing` is then a working copy, filled from it (``intake.landing.local_copy``)."""
        return f"{self.lake_url}/landing" if self.lake_url else None

    @property
    def remote_releases(self) -> str | None:
        """The store of record of releases when ``KOUIKI_LAKE_URL`` is set (``<url>/releases``), else None:
        :attr:`releases` is then a working copy, filled from it (``publish.remote.pull_releases``)."""
        return f"{self.lake_url}/releases" if self.lake_url else None

    @property
    def warehouse_db(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def releases(self) -> Path:
        return self.home / "releases"

    @property
    def private(self) -> Path:
        """Never published: 加工方法等情報, extract logs."""
        return self.home / "private"

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def tmp(self) -> Path:
        return self.home / "tmp"

    @property
    def catalog_url(self) -> str:
        return self.catalog or default_catalog_url(self.home)

    def ensure(self) -> Paths:
        """Create the layout; a home that cannot be created or written is a :class:`ConfigError` (one line)."""
        try:
            for p in (self.landing, self.inbox, self.local_lake, self.reports, self.releases, self.private,
                      self.dagster_home, self.tmp):
                p.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{exc.filename or self.home}: KOUIKI_HOME を作成できません / cannot create the kouiki "
                              f"home ({exc.strerror}) — 書き込めるフォルダを KOUIKI_HOME に指定してください / set "
                              "KOUIKI_HOME to a writable folder") from None
        for p in (self.home, self.tmp):
            if not os.access(p, os.W_OK):
                raise ConfigError(f"{p}: 書き込めません / not writable — 書き込めるフォルダを KOUIKI_HOME に指定するか"
                                  "権限を直してください / set KOUIKI_HOME to a writable folder or fix its permissions")
        return self


def kouiki_home() -> Path:
    return Settings.from_env().home


def get_paths() -> Paths:
    """The paths of the current kouiki home, created if missing."""
    return Settings.from_env().paths().ensure()


def members_file() -> Path:
    """The member registry (YAML). ``KOUIKI_MEMBERS`` points elsewhere (tests, the all-Japan scale run)."""
    return Settings.from_env().members
