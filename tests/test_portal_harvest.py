"""The portal as real CKAN clients see it, against a real server on 127.0.0.1 holding 230 datasets:

- ckanext-harvest's CKANHarvester: its gather stage replayed request for request (ckanharvester.py,
  ``_search_for_datasets``: ``package_search`` with ``rows=100``, ``start`` paging until an empty page,
  ``sort=id asc``, ``fq`` for organisation / group filters and ``metadata_modified:[<since>Z TO *]`` for
  incremental harvests; import stage: ``organization_show`` of ``owner_org`` with the ``group_show``
  fallback, ``group_show`` of every group);
- CKAN 2.10's and 2.11's own validators (the ``ckan`` package, each in its own virtual environment) on every
  package dict, with the schema the harvester imports with and with package_create's / package_update's;
- ckanapi's command line: ``dump datasets --all``, ``dump groups --all``, ``dump organizations --all``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from kouiki.settings import REPO_ROOT
from portal.app import create_app
from portal.settings import PortalSettings
from portal.testing import CATALOGUE_CITIES, build_catalogue, serve, synthetic_aed, write_release
from portal.themes import theme_of

DATASETS = 230                     # three pages of 100 for the harvester
CKAN_VERSIONS = {"2.10": "2.10.11", "2.11": "2.11.5"}
CKAN_VALIDATE = REPO_ROOT / "tests" / "tools" / "ckan_validate.py"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("harvest-home")
    build_catalogue(home / "releases", DATASETS)
    return home


@pytest.fixture(scope="module")
def base_url(home: Path) -> Iterator[str]:
    with serve(create_app(PortalSettings(home=home))) as url:
        yield url


def _metadata(home: Path, dataset_id: str) -> dict[str, Any]:
    folder = home / "releases" / dataset_id
    number = json.loads((folder / "latest.json").read_text(encoding="utf-8"))["number"]
    meta: dict[str, Any] = json.loads((folder / str(number) / "metadata.json").read_text(encoding="utf-8"))
    return meta


def _all_ids(home: Path) -> set[str]:
    return {p.name for p in (home / "releases").iterdir() if (p / "latest.json").exists()}


# ------------------------------------------------------------------------------------------- the harvester


class SearchError(Exception):
    pass


def search_for_datasets(remote_ckan_base_url: str, fq_terms: list[str] | None = None) -> list[dict[str, Any]]:
    """CKANHarvester._search_for_datasets (ckanext-harvest, harvesters/ckanharvester.py), line for line."""
    base_search_url = remote_ckan_base_url + "/api/3/action/package_search"
    params = {"rows": "100", "start": "0"}
    params["sort"] = "id asc"
    if fq_terms:
        params["fq"] = " ".join(fq_terms)
    pkg_dicts: list[dict[str, Any]] = []
    pkg_ids: set[str] = set()
    previous_content = None
    requests_made = 0
    while True:
        url = base_search_url + "?" + urlencode(params)
        content = requests.get(url, timeout=30).text
        requests_made += 1
        if previous_content and content == previous_content:
            raise SearchError(f"The paging doesn't seem to work. URL: {url}")
        response_dict = json.loads(content)
        pkg_dicts_page = (response_dict.get("result") or {}).get("results", [])
        ids_in_page = {p["id"] for p in pkg_dicts_page}
        duplicate_ids = ids_in_page & pkg_ids
        if duplicate_ids:
            pkg_dicts_page = [p for p in pkg_dicts_page if p["id"] not in duplicate_ids]
        pkg_ids |= ids_in_page
        pkg_dicts.extend(pkg_dicts_page)
        if len(pkg_dicts_page) == 0:
            if not response_dict.get("success", False):      # what the harvester would report as "none"
                raise SearchError(f"the search failed: {response_dict.get('error')}")
            break
        params["start"] = str(int(params["start"]) + int(params["rows"]))
        previous_content = content
    return pkg_dicts


def gather(base_url: str, config: dict[str, list[str]], last_gather_started: dt.datetime | None = None,
           ) -> list[dict[str, Any]]:
    """CKANHarvester.gather_stage's requests: filters as fq terms, incremental when a last job exists."""
    fq_terms: list[str] = []
    if config.get("organizations_filter_include"):
        fq_terms.append(" OR ".join(f"organization:{o}" for o in config["organizations_filter_include"]))
    elif config.get("organizations_filter_exclude"):
        fq_terms.extend(f"-organization:{o}" for o in config["organizations_filter_exclude"])
    if config.get("groups_filter_include"):
        fq_terms.append(" OR ".join(f"groups:{g}" for g in config["groups_filter_include"]))
    elif config.get("groups_filter_exclude"):
        fq_terms.extend(f"-groups:{g}" for g in config["groups_filter_exclude"])
    if last_gather_started is not None:
        since = (last_gather_started - dt.timedelta(hours=1)).isoformat()
        return search_for_datasets(base_url, [*fq_terms, f"metadata_modified:[{since}Z TO *]"])
    return search_for_datasets(base_url, fq_terms)


def import_lookups(base_url: str, package: dict[str, Any]) -> None:
    """The import stage's calls to the remote site (remote_orgs / remote_groups = "create")."""
    api = base_url + "/api/3/action/"
    organization = requests.get(api + "organization_show?id=" + package["owner_org"], timeout=30).json()
    if not organization.get("success"):                     # the harvester falls back to group_show
        organization = requests.get(api + "group_show?id=" + package["owner_org"], timeout=30).json()
    assert organization["success"] and organization["result"]["id"] == package["owner_org"]
    for group in package["groups"]:
        shown = requests.get(api + "group_show?id=" + group["id"], timeout=30).json()
        assert shown["success"] and shown["result"]["name"] == group["name"]


def test_full_harvest_gathers_every_dataset_exactly_once(home: Path, base_url: str) -> None:
    packages = gather(base_url, {})
    names = [p["name"] for p in packages]
    assert len(names) == len(set(names)) == DATASETS
    assert set(names) == _all_ids(home)
    ids = [p["id"] for p in packages]
    assert ids == sorted(ids)                               # sort=id asc, across the three pages
    for package in packages[:: 23]:
        import_lookups(base_url, package)


def test_incremental_harvest_gathers_only_what_changed(home: Path, base_url: str) -> None:
    first = gather(base_url, {})
    started = dt.datetime.now(dt.UTC).replace(tzinfo=None)    # gather_started: naive UTC, like CKAN's
    assert gather(base_url, {}, last_gather_started=started) == []
    changed = ["aed", "aed_0100", "hospital"]
    for dataset_id in changed:
        write_release(home / "releases", dataset_id, synthetic_aed(5, CATALOGUE_CITIES),
                      city_column="全国地方公共団体コード", title_ja="AED設置箇所一覧（更新）", title_en="AED (update)")
    again = _eventually(lambda: gather(base_url, {}, last_gather_started=started), len(changed))
    assert sorted(p["name"] for p in again) == sorted(changed)
    assert {p["version"] for p in again} == {"2"}
    # ids are stable across releases: the harvester updates the datasets it already has
    assert {p["id"] for p in again} <= {p["id"] for p in first}


def _eventually(harvest: Any, expected: int) -> list[dict[str, Any]]:
    """The index notices new releases within a second or so; try for a few seconds."""
    deadline = dt.datetime.now() + dt.timedelta(seconds=5)
    while True:
        found: list[dict[str, Any]] = harvest()
        if len(found) == expected or dt.datetime.now() > deadline:
            return found


@pytest.mark.parametrize("config", [
    {"organizations_filter_include": ["city-132195"]},
    {"organizations_filter_include": ["city-132195", "city-222127"]},
    {"organizations_filter_exclude": ["city-222127"]},
    {"groups_filter_include": ["safety", "health"]},
    {"groups_filter_exclude": ["other"]},
    {"organizations_filter_include": ["city-222127"], "groups_filter_include": ["other"]},
])
def test_filtered_harvests_gather_exactly_the_matching_datasets(home: Path, base_url: str,
                                                                 config: dict[str, list[str]]) -> None:
    expected = set()
    for dataset_id in _all_ids(home):
        cities = {f"city-{c}" for c in _metadata(home, dataset_id)["rows_by_city"]} | {"kouiki"}
        group = theme_of(dataset_id).id
        if config.get("organizations_filter_include") and not cities & set(config["organizations_filter_include"]):
            continue
        if cities & set(config.get("organizations_filter_exclude", [])):
            continue
        if config.get("groups_filter_include") and group not in config["groups_filter_include"]:
            continue
        if group in config.get("groups_filter_exclude", []):
            continue
        expected.add(dataset_id)
    names = [p["name"] for p in gather(base_url, config)]
    assert len(names) == len(set(names))
    assert set(names) == expected and expected


def test_organizations_and_groups_count_their_datasets(home: Path, base_url: str) -> None:
    api = base_url + "/api/3/action/"
    organizations = requests.get(api + "organization_list?all_fields=true", timeout=30).json()["result"]
    counts = {o["name"]: o["package_count"] for o in organizations}
    ids = _all_ids(home)
    assert counts["kouiki"] == len(ids)
    for code, _ in CATALOGUE_CITIES:
        holding = {d for d in ids if code in _metadata(home, d)["rows_by_city"]}
        assert counts[f"city-{code}"] == len(holding)
        shown = requests.get(api + f"organization_show?id=city-{code}&include_datasets=true", timeout=30).json()
        assert {p["name"] for p in shown["result"]["packages"]} == holding
    groups = requests.get(api + "group_list?all_fields=true", timeout=30).json()["result"]
    assert sum(g["package_count"] for g in groups) == len(ids)
    safety = requests.get(api + "group_package_show?id=safety", timeout=30).json()["result"]
    assert {p["name"] for p in safety} == {d for d in ids if theme_of(d).id == "safety"}


# ------------------------------------------------------------------------------------------- CKAN validators


def _ckan_python(line: str) -> str | None:
    """A Python that can import ckan ``line``'s validators: its own venv (tests/.venv-ckan-<line>), made on
    first use with the project's uv from ckan's own pinned requirements (psycopg2 left out: no database)."""
    venv = REPO_ROOT / "tests" / f".venv-ckan-{line}"
    requirements = REPO_ROOT / "tests" / "tools" / f"ckan-{line}-requirements.txt"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import ckan.logic.validators"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return str(python)
    uv = REPO_ROOT / ".tools" / "bin" / "uv"
    uv_cmd = str(uv) if uv.exists() else shutil.which("uv")
    if uv_cmd is None:
        return None
    made = subprocess.run([uv_cmd, "venv", "--quiet", "--python", sys.executable, str(venv)],
                          capture_output=True, timeout=300)
    if made.returncode == 0:
        made = subprocess.run([uv_cmd, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(python),
                               f"ckan=={CKAN_VERSIONS[line]}", "-r", str(requirements)],
                              capture_output=True, timeout=900)
    ok = made.returncode == 0 and subprocess.run(probe, capture_output=True).returncode == 0
    return str(python) if ok else None


def ckan_validate(python: str, packages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    lines = "\n".join(json.dumps(p, ensure_ascii=False) for p in packages)
    run = subprocess.run([python, str(CKAN_VALIDATE)], input=lines, capture_output=True, text=True,
                         timeout=300, check=True)
    return [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("line", sorted(CKAN_VERSIONS))
def test_ckan_validators_accept_every_gathered_package(base_url: str, line: str) -> None:
    python = _ckan_python(line)
    if python is None:
        pytest.skip(f"could not install ckan {CKAN_VERSIONS[line]} (no package index reachable?)")
    packages = gather(base_url, {})
    # the control: what the portal used to send is rejected by the same validators
    old = json.loads(json.dumps(packages[0]))
    old["tags"][0]["name"] = "防災・安全"
    old["resources"][0]["created"] = "2026-04-01T09:00:00+00:00"
    # every package with the harvester's schema; every tenth also with package_create's and package_update's
    for i, package in enumerate(packages):
        package["__schemas"] = ["harvest_import"] if i % 10 else ["harvest_import", "package_create",
                                                                  "package_update"]
    checked = ckan_validate(python, [*packages, old])
    assert len(checked) == len(packages) + 1
    assert {c["ckan_version"] for c in checked} == {CKAN_VERSIONS[line]}
    rejected = {c["name"]: c["errors"] for c in checked[:-1] if c["errors"]}
    assert rejected == {}
    control = json.dumps(checked[-1]["errors"]["harvest_import"], ensure_ascii=False)
    assert "can only contain alphanumeric" in control
    if line == "2.10":
        assert "Date format incorrect" in control


# ------------------------------------------------------------------------------------------- ckanapi CLI


def _ckanapi(*args: str, output: Path) -> list[dict[str, Any]]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    subprocess.run([str(Path(sys.executable).parent / "ckanapi"), *args, "-O", str(output), "-q"], check=True,
                   env=env, capture_output=True, timeout=300)
    return [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_ckanapi_dumps_every_dataset_group_and_organization(home: Path, base_url: str, tmp_path: Path) -> None:
    datasets = _ckanapi("dump", "datasets", "--all", "-p", "2", "-r", base_url, output=tmp_path / "d.jsonl")
    assert sorted(d["name"] for d in datasets) == sorted(_all_ids(home))
    assert all(d["resources"] and d["id"] and d["organization"]["name"] == "kouiki" for d in datasets)
    groups = _ckanapi("dump", "groups", "--all", "-r", base_url, output=tmp_path / "g.jsonl")
    listed = requests.get(base_url + "/api/3/action/group_list", timeout=30).json()["result"]
    assert sorted(g["name"] for g in groups) == sorted(listed) and len(groups) == 7
    organizations = _ckanapi("dump", "organizations", "--all", "-r", base_url, output=tmp_path / "o.jsonl")
    assert {o["name"] for o in organizations} == {"kouiki", *(f"city-{c}" for c, _ in CATALOGUE_CITIES)} | {
        f"city-{m}" for m in _member_codes()}


def _member_codes() -> set[str]:
    try:
        from kouiki.members import load_members
        return {m.code for m in load_members()}
    except Exception:
        return set()

