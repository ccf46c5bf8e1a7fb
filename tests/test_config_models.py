"""The three configuration files checked by pydantic models (issue 18): members.yaml, the schema registry and the
anonymisation policies. A mistake is one line naming the file, the line of the offending key, what is wrong and
what to do; the files as shipped load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from anonymise.policy import CONFIG_DIR, PolicyError, load_policy
from expectations.registry import SCHEMAS_DIR, SchemaError, load_registry
from kouiki.members import RegistryError, load_members


def _line_of(text: str, needle: str) -> int:
    return text[:text.index(needle)].count("\n") + 1


# --- members.yaml -------------------------------------------------------------------------------------------

def _members(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "members.yaml"
    path.write_text("members:\n" + body, encoding="utf-8")
    return path


def test_a_misspelt_member_key_names_its_line_and_the_keys_allowed(tmp_path: Path) -> None:
    path = _members(tmp_path, '  - code: "122033"\n    name: 市川市\n  - code: "132195"\n    dataset: [aed]\n')
    with pytest.raises(RegistryError) as info:
        load_members(path)
    message = str(info.value)
    assert message.startswith(f"{path}:5: members[1].dataset: ")
    assert "unknown key" in message and "datasets" in message and "\n" not in message


@pytest.mark.parametrize(("body", "line", "words"), [
    ('  - code: "122033"\n  - code: "132195"\n    name: 市川市\n', 4, "members[1]: name '市川市' does not match code"),
    ('  - code: "122033"\n    own_datasets: maybe\n', 3, "expected true or false, got 'maybe'"),
    ('  - code: "122033"\n    synthetic_personal_rows: many\n', 3, "synthetic_personal_rows"),
    ('  - code: "122033"\n  - code: "122033"\n', 3, "listed twice"),
    ('  - name: 市川市\n', 2, "members[0].code: キーがありません / missing (required key)"),
])
def test_a_wrong_member_entry_names_its_line(tmp_path: Path, body: str, line: int, words: str) -> None:
    path = _members(tmp_path, body)
    with pytest.raises(RegistryError) as info:
        load_members(path)
    assert str(info.value).startswith(f"{path}:{line}: ") and words in str(info.value)


def test_an_unquoted_octal_looking_code_is_still_refused_first(tmp_path: Path) -> None:
    path = _members(tmp_path, '  - code: 011002\n    nmae: 札幌市\n')
    with pytest.raises(RegistryError, match=r"members.yaml:2: .*quote the code: '011002'"):
        load_members(path)


def test_the_shipped_members_load() -> None:
    assert [m.code for m in load_members()] == ["122033", "222127", "132195"]


# --- the schema registry ------------------------------------------------------------------------------------

@pytest.fixture()
def schemas(tmp_path: Path) -> Path:
    return Path(shutil.copytree(SCHEMAS_DIR, tmp_path / "schemas"))


@pytest.mark.parametrize(("old", "new", "key", "words"), [
    ("{name: 名称, type: string, required: true", "{name: 名称, type: text, required: true",
     "variants[current].columns[名称].type", "unknown type 'text'"),
    ("{name: 名称, type: string, required: true", "{name: 名称, type: string, required: yes please",
     "variants[current].columns[名称].required", "expected true or false"),
    ("reject_above: 0.5", "reject_above: 50", "policy.reject_above", "use a share between 0 and 1"),
    ("file_slugs: [aed]", "file_slugs: [aed]\nlicence: MIT", "licence", "'MIT': choose one of CC-BY-4.0, PDL-1.0"),
    ("coordinates: {lat: 緯度, lon: 経度}", "coordinates: {lat: 緯度}", "coordinates.lon", "missing (required key)"),
    ("version: '2025-05-01'", "version: ''", "version", "must not be empty"),
    ("key_columns: [ID, 名称]", "key_columns: [ID, 名前]", "key_columns[1]", "'名前' is not a column"),
    ("maps_to: 所在地_連結表記", "maps_to: 住所_連結", "variants[legacy].columns[住所].maps_to", "canonical variant"),
])
def test_a_wrong_schema_names_its_line(schemas: Path, old: str, new: str, key: str, words: str) -> None:
    aed = schemas / "aed.yaml"
    text = aed.read_text(encoding="utf-8")
    if old not in text:
        pytest.skip(f"aed.yaml no longer has {old!r}")
    aed.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(SchemaError) as info:
        load_registry(schemas)
    error = info.value
    # the line of the key, in the file as edited
    assert (error.key, error.line) == (key, _line_of(text.replace(old, new, 1), new.splitlines()[-1]))
    assert str(error).startswith(f"{aed}:{error.line}: {key}: ") and words in error.reason


def test_an_unknown_or_missing_top_level_key(schemas: Path) -> None:
    hydrant = schemas / "fire_hydrant.yaml"
    text = hydrant.read_text(encoding="utf-8")
    hydrant.write_text(text.replace("name_en:", "name_english: x\nname_en:", 1), encoding="utf-8")
    with pytest.raises(SchemaError, match=rf"fire_hydrant.yaml:{_line_of(text, 'name_en:')}: name_english: "
                                          r".*unknown key; allowed: .*name_en"):
        load_registry(schemas)
    hydrant.write_text(text.replace("name_en:", "name_english:", 1), encoding="utf-8")
    with pytest.raises(SchemaError, match=r"fire_hydrant.yaml:\d+: name_en: .*missing \(required key\)"):
        load_registry(schemas)


# --- anonymisation policies ---------------------------------------------------------------------------------

@pytest.fixture()
def policy_copy(tmp_path: Path) -> Path:
    folder = Path(shutil.copytree(CONFIG_DIR, tmp_path / "anonymisation"))
    return folder / "care_certification.yaml"


@pytest.mark.parametrize(("old", "new", "key", "words", "at"), [
    ("hierarchy: {kind: parents,", "hierarchy: {kind: guess,", "quasi_identifiers.町字.hierarchy.kind",
     "'guess': use one of interval, date, parents, arx_csv, flat", "hierarchy: {kind: parents,"),
    ("hierarchy: {kind: arx_csv, path: hierarchies/sex.csv}", "hierarchy: {kind: arx_csv}",
     "quasi_identifiers.性別.hierarchy", "arx_csv hierarchy needs a 'path'", "hierarchy: {kind: arx_csv"),
    ("  k: 5\n", "  k: 0\n", "privacy", "k must be ≥ 1", "privacy:"),
    ("  max_suppression: 0.05", "  max_supression: 0.05", "privacy.max_supression", "unknown key",
     "  max_suppression"),
    ("risk_threshold: 0.2", "risk_threshold: low", "risk_threshold", "expected a number, got 'low'",
     "risk_threshold:"),
])
def test_a_wrong_policy_names_its_line(policy_copy: Path, old: str, new: str, key: str, words: str,
                                       at: str) -> None:
    text = policy_copy.read_text(encoding="utf-8")
    assert old in text
    policy_copy.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(policy_copy)
    message = str(info.value)
    line = _line_of(text, at)
    assert message.startswith(f"{policy_copy}:{line}: {key}: ") and words in message and "\n" not in message


def test_a_policy_that_publishes_an_identifier_names_the_key(policy_copy: Path) -> None:
    text = policy_copy.read_text(encoding="utf-8")
    policy_copy.write_text(text.replace("keep:\n", "keep:\n  氏名: {}\n", 1), encoding="utf-8")
    with pytest.raises(PolicyError) as info:
        load_policy(policy_copy)
    assert str(info.value).startswith(f"{policy_copy}:{_line_of(text, 'direct_identifiers:')}: direct_identifiers: ")
    assert "direct identifiers cannot also be published: ['氏名']" in str(info.value)
