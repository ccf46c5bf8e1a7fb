"""KOUIKI_LAKE_URL (issue 18): the same pipeline run — two demo cities' real files through intake, the lake, the
SQL models and the releases (``run_main``) — with the lake on local disk and on an S3-compatible server that the
test starts (moto's server mode on 127.0.0.1, a real HTTP S3 API reached through s3fs and botocore). The releases
must hold the same rows; on S3 the lake must really be in the bucket (not in the home), with a copy of every
landed upload and of the releases beside it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from kouiki.settings import Paths, Settings

DEMO = Path(__file__).resolve().parent.parent / "demo" / "uploads"
BUCKET = "kouiki-lake"
# two cities, three files, two datasets (AED from both: rows accepted and quarantined); no personal data
MEMBERS = """\
members:
  - {{code: "132195", name: 狛江市, inbox: {demo}/132195, datasets: [aed]}}
  - {{code: "222127", name: 焼津市, inbox: {demo}/222127, datasets: [aed, evacuation_space]}}
"""
AREAS = ("staged", "quarantine", "findings", "history")


@dataclass(frozen=True)
class Run:
    paths: Paths
    releases: dict[str, pl.DataFrame]      # dataset → the latest release's rows (its Parquet file)
    region_ok: bool
    cities_ok: bool


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port) with an empty bucket; the AWS variables point botocore at it."""
    import boto3
    from moto.server import ThreadedMotoServer
    from s3fs import S3FileSystem

    # fsspec keeps one S3FileSystem per set of arguments; the endpoint comes from the environment, so one made
    # for an earlier module's server (stopped since, another port) would be handed out again
    S3FileSystem.clear_instance_cache()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    mp = pytest.MonkeyPatch()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": endpoint}.items():
        mp.setenv(name, value)
    mp.delenv("AWS_PROFILE", raising=False)
    try:
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        mp.undo()
        server.stop()
        S3FileSystem.clear_instance_cache()


def bucket_keys(prefix: str) -> list[str]:
    import boto3

    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def run_demo(root: Path, lake_url: str | None) -> Run:
    """``run_main`` in a fresh home under ``root``; the settings come from the environment as in production."""
    from dagster import instance_for_test

    from pipelines.main_run import run_main
    from publish.release import latest_release

    members = root / "members.yaml"
    members.write_text(MEMBERS.format(demo=DEMO), encoding="utf-8")
    mp = pytest.MonkeyPatch()
    mp.setenv("KOUIKI_HOME", str(root / "home"))
    mp.setenv("DAGSTER_HOME", str(root / "home" / "dagster"))
    mp.setenv("KOUIKI_MEMBERS", str(members))
    mp.delenv("KOUIKI_CATALOG_URL", raising=False)
    if lake_url:
        mp.setenv("KOUIKI_LAKE_URL", lake_url)
    else:
        mp.delenv("KOUIKI_LAKE_URL", raising=False)
    try:
        paths = Settings.from_env().paths()
        assert paths.lake == (f"{lake_url}/lake" if lake_url else root / "home" / "lake")
        with instance_for_test() as instance:
            outcome = run_main(instance=instance)
    finally:
        mp.undo()
    releases = {}
    for dataset_id in outcome.releases:
        latest = latest_release(paths.releases, dataset_id)
        assert latest is not None
        releases[dataset_id] = pl.read_parquet(paths.releases / dataset_id / str(latest["number"])
                                               / f"{dataset_id}.parquet")
    return Run(paths, releases, outcome.region_ok, all(c.run_ok for c in outcome.cities))


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_demo(tmp_path_factory.mktemp("local"), lake_url=None)


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["local", "s3"])
def test_the_same_pipeline_publishes_the_same_rows_on_each_lake(storage: str, local_run: Run, tmp_path: Path,
                                                                request: pytest.FixtureRequest) -> None:
    if storage == "s3":
        request.getfixturevalue("s3_endpoint")
        run = run_demo(tmp_path, lake_url=f"s3://{BUCKET}/{tmp_path.name}")
    else:
        run = local_run
    assert run.region_ok and run.cities_ok
    assert set(run.releases) == {"aed", "evacuation_space"}
    aed = run.releases["aed"]
    # the same rows, in the same order, as the run on local disk (and real rows: both cities' AEDs)
    for dataset_id, rows in local_run.releases.items():
        assert run.releases[dataset_id].equals(rows), dataset_id
    # every data row of both AED files (demo/SOURCES.md: 狛江市 57, 焼津市 82) and 焼津市's 31 evacuation spaces
    assert (aed.height, run.releases["evacuation_space"].height) == (57 + 82, 31)

    local_parquet = sorted(p.relative_to(run.paths.local_lake).as_posix()
                           for p in run.paths.local_lake.rglob("*.parquet"))
    if storage == "local":
        assert {p.split("/")[0] for p in local_parquet} == set(AREAS)
        return
    # on S3: nothing of the lake on local disk; every area, the landed files and the releases in the bucket
    assert local_parquet == []
    prefix = f"{tmp_path.name}/"
    keys = [k.removeprefix(prefix) for k in bucket_keys(prefix)]
    lake_keys = [k.removeprefix("lake/") for k in keys if k.startswith("lake/")]
    assert {k.split("/")[0] for k in lake_keys} == set(AREAS)
    assert "staged/aed/city=132195/data.parquet" in lake_keys
    assert "staged/evacuation_space/city=222127/data.parquet" in lake_keys
    assert not [k for k in keys if k.endswith(".tmp")]                   # written in place: no temporary objects
    landed = sorted(p.relative_to(run.paths.landing).as_posix() for p in run.paths.landing.glob("*/*"))
    assert len([p for p in landed if not p.split("/")[1].startswith(".")]) == 3        # three uploads, manifests
    assert sorted(k.removeprefix("landing/") for k in keys if k.startswith("landing/")) == landed
    for dataset_id in ("aed", "evacuation_space"):
        release = run.paths.releases / dataset_id
        local_files = sorted(p.relative_to(run.paths.releases).as_posix() for p in release.rglob("*")
                             if p.is_file())
        assert sorted(k.removeprefix("releases/") for k in keys
                      if k.startswith(f"releases/{dataset_id}/")) == local_files
    # the releases' Parquet in the bucket reads back as the same rows
    import s3fs

    fs = s3fs.S3FileSystem()
    number = pl.read_json(fs.open(f"{BUCKET}/{prefix}releases/aed/latest.json", "rb"))["number"][0]
    with fs.open(f"{BUCKET}/{prefix}releases/aed/{number}/aed.parquet", "rb") as fh:
        assert pl.read_parquet(fh).equals(run.releases["aed"])


def test_settings_from_the_environment(tmp_path: Path) -> None:
    """One object, every entry point's values; unset or empty variables are the embedded defaults."""
    defaults = Settings.from_env({"KOUIKI_HOME": str(tmp_path), "KOUIKI_LAKE_URL": " "})
    assert defaults.lake_url is None and defaults.paths().lake == tmp_path / "lake"
    assert defaults.catalog_url == f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    assert defaults.members.name == "members.yaml" and defaults.schemas is None and defaults.file_cache
    given = Settings.from_env({"KOUIKI_HOME": str(tmp_path), "KOUIKI_LAKE_URL": "s3://bucket/kouiki/",
                               "KOUIKI_CATALOG_URL": "postgresql://office@db/kouiki", "KOUIKI_FILE_CACHE": "off",
                               "KOUIKI_SCHEMAS": str(tmp_path / "schemas")})
    paths = given.paths()
    assert (paths.lake, paths.remote_landing, paths.remote_releases) == (
        "s3://bucket/kouiki/lake", "s3://bucket/kouiki/landing", "s3://bucket/kouiki/releases")
    assert paths.catalog_url == "postgresql://office@db/kouiki" and not given.file_cache
    assert paths.releases == tmp_path / "releases"            # the portal's copy stays on local disk
    assert Settings.from_env({"KOUIKI_LAKE_URL": "relative/lake"}).lake_url == str(Path("relative/lake").resolve())


def test_the_dagster_resource_builds_the_same_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster import EnvVar

    from assets.resources import KouikiHome

    monkeypatch.setenv("KOUIKI_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KOUIKI_LAKE_URL", "memory://kouiki-settings-test")
    monkeypatch.delenv("KOUIKI_CATALOG_URL", raising=False)
    resource = KouikiHome.from_env()
    assert resource.home == EnvVar("KOUIKI_HOME") and resource.lake_url == EnvVar("KOUIKI_LAKE_URL")
    assert resource.catalog_url == ""                          # unset: the default, not an EnvVar that would fail
    resolved = resource.process_config_and_initialize()
    assert resolved.settings() == Settings.from_env()
    assert resolved.paths().lake == "memory://kouiki-settings-test/lake"
    explicit = KouikiHome(home=str(tmp_path / "other"))        # a field given in code wins over the environment
    assert explicit.settings().home == tmp_path / "other"


@pytest.mark.parametrize("kind", ["folder", "memory"])
def test_copies_are_written_once_whole_and_metadata_last(kind: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The copies of landing and releases (``object_store.put_tree``/``put_file``/``put_bytes``) on a local folder
    given as KOUIKI_LAKE_URL and on another fsspec filesystem: missing files only, ``last`` after the rest."""
    import fsspec

    from kouiki import object_store as lake

    release = tmp_path / "release"
    (release / "cities").mkdir(parents=True)
    for name, text in {"metadata.json": "{}", "aed.csv": "名称\n狛江市役所\n", "cities/132195_aed.csv": "x\n"}.items():
        (release / name).write_text(text, encoding="utf-8")
    root = str(tmp_path / "remote") if kind == "folder" else f"memory://kouiki-copies-{tmp_path.name}"
    order: list[str] = []
    real_put_file = lake.put_file

    def recording_put_file(r: str, key: str, source: Path) -> bool:
        order.append(key)
        return real_put_file(r, key, source)

    monkeypatch.setattr(lake, "put_file", recording_put_file)
    assert lake.put_tree(root, "aed/1", release, last="metadata.json") == 3
    assert order[-1] == "aed/1/metadata.json" and len(order) == 3
    (release / "aed.csv").write_text("changed", encoding="utf-8")
    assert lake.put_tree(root, "aed/1", release, last="metadata.json") == 0      # a release never changes
    lake.put_bytes(root, "aed/latest.json", b'{"number": 1}')
    fs, base = fsspec.core.url_to_fs(root)
    found = sorted(p.removeprefix(base.rstrip("/") + "/") for p in fs.find(base))
    assert found == ["aed/1/aed.csv", "aed/1/cities/132195_aed.csv", "aed/1/metadata.json", "aed/latest.json"]
    assert fs.cat_file(f"{base}/aed/1/aed.csv").decode("utf-8") == "名称\n狛江市役所\n"
