"""One problem catalogue (kouiki/problems.yaml) for intake, validation, the upload service and the portal.

Every code the project's packages raise or report is in the catalogue, every entry speaks Japanese and English,
and every template is filled by the fields its callers pass (found by reading the source with ``ast``, so a new
raise with a typo in its code or a missing field fails here, not in front of a city clerk).
"""

from __future__ import annotations

import ast
import pickle
import re
import string
from dataclasses import dataclass
from pathlib import Path

import pytest

from intake.read import read_bytes
from kouiki import problems
from kouiki.problems import CATALOGUE_FILE, IntakeError, Problem, Where, catalogue, entry
from kouiki.validation_errors import ERROR_TYPES
from portal import errors as portal_errors
from service import errors as service_errors

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("kouiki", "intake", "expectations", "warehouse", "publish", "assets", "pipelines", "anonymise",
            "portal", "service")
# calls whose first argument is a problem code
CODE_CALLS = {"Notice", "entry", "error_type", "describe"}
PROBLEM_CODE = re.compile(r"[a-z][a-z0-9]*(-[a-z0-9]+)*")


@dataclass(frozen=True)
class Use:
    """One place in the source that names a problem code."""

    where: str
    code: str
    variant: str | None = None
    fields: frozenset[str] | None = None   # keyword fields passed to Problem.of (None: not a Problem.of call)


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _variants(node: ast.expr | None) -> list[str | None]:
    """The variant names a call may pass: one literal, or each branch of ``"close" if best else "none"``."""
    if isinstance(node, ast.IfExp):
        return _variants(node.body) + _variants(node.orelse)
    return [_literal(node) if node is not None else None]


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else ""
        return f"{owner}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def _uses_in(path: Path) -> list[Use]:
    uses: list[Use] = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            callee = _callee(node)
            first = _literal(node.args[0]) if node.args else None
            keyword_code = next((_literal(k.value) for k in node.keywords if k.arg == "code"), None)
            if callee == "Problem.of" and first:
                fields = frozenset(k.arg for k in node.keywords if k.arg and k.arg != "where")
                for variant in _variants(node.args[1] if len(node.args) > 1 else None):
                    uses.append(Use(where, first, variant, fields))
            elif callee.split(".")[-1] in CODE_CALLS and (first or keyword_code):
                uses.append(Use(where, str(first or keyword_code)))
            elif callee in ("IntakeError", "ApiError") and first is not None:
                uses.append(Use(where, f"<{callee} with words written at the raise: {first[:30]}>"))
        elif isinstance(node, ast.Dict):   # stored refusals: {"code": "unreadable"} (not a rule's {"code": regex})
            for key, value in zip(node.keys, node.values, strict=True):
                if _literal(key) == "code" and PROBLEM_CODE.fullmatch(_literal(value) or ""):
                    uses.append(Use(where, str(_literal(value))))
        elif isinstance(node, ast.ClassDef):   # the portal's kinds of error: code = "not-found"
            for statement in node.body:
                if isinstance(statement, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "code" for t in statement.targets):
                    uses.append(Use(where, str(_literal(statement.value))))
    return uses


def _all_uses() -> list[Use]:
    return [use for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py")) for use in _uses_in(path)]


def _placeholders(template: str) -> set[str]:
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_code_named_in_the_source_is_in_the_catalogue_and_its_templates_are_filled() -> None:
    uses = _all_uses()
    codes = {use.code for use in uses}
    # the scan really reads the four kinds of error, not an empty list
    assert {"empty-file", "formula-injection", "auth-required", "upload-too-large", "not-found",
            "search-query-error", "other-municipality", "blank-row", "preamble"} <= codes
    known = catalogue()
    unknown = sorted(f"{use.where}: {use.code}" for use in uses if use.code not in known)
    assert unknown == []
    for use in uses:
        if use.fields is None:
            continue
        found = known[use.code]
        if use.variant is not None:
            assert use.variant in found.variants, f"{use.where}: no variant {use.variant!r} of {use.code}"
        variant = found.variants.get(use.variant or "")
        message = variant.message if variant else found.message
        hint = variant.hint if variant and variant.hint else found.hint
        assert message is not None, f"{use.where}: {use.code} needs a variant"
        templates = [message.ja, message.en, *((hint.ja, hint.en) if hint else ())]
        missing = set().union(*(_placeholders(t) for t in templates)) - use.fields
        assert not missing, f"{use.where}: {use.code} needs {sorted(missing)}"


def test_every_entry_speaks_japanese_and_english() -> None:
    known = catalogue()
    assert len(known) >= 60
    for code, found in known.items():
        words = [("title", found.title), ("message", found.message), ("hint", found.hint)]
        words += [(f"variant {name}", variant.message) for name, variant in found.variants.items()]
        words += [(f"variant {name} hint", variant.hint) for name, variant in found.variants.items()]
        if found.validation:
            words.append(("explanation", found.validation.explanation))
        for what, pair in words:
            if pair is not None:
                assert pair.ja.strip() and pair.en.strip(), f"{code}: {what} lacks Japanese or English"
        assert found.message is not None or found.variants or found.notice or code == "unreadable", code


def test_validation_error_types_are_the_catalogue_entries_with_validation_traits() -> None:
    with_traits = {code for code, found in catalogue().items() if found.validation}
    assert set(ERROR_TYPES) == with_traits
    duplicate = ERROR_TYPES["unique-error"]
    assert duplicate.title_ja == catalogue()["unique-error"].title.ja == "IDの重複"
    assert duplicate.severity == "error" and duplicate.scope == "cell"


def test_an_unknown_code_is_refused_naming_the_catalogue_file() -> None:
    with pytest.raises(KeyError, match=CATALOGUE_FILE.name):
        Problem.of("no-such-problem")
    with pytest.raises(KeyError, match="zero-bytes"):
        Problem.of("empty-file")   # its words differ by case: a variant must be named


def test_a_file_intake_cannot_read_raises_the_catalogue_problem_with_where_it_is() -> None:
    data = "名称,住所\nあ,い\n".encode() + b"\x00\x01"
    with pytest.raises(IntakeError) as raised:
        read_bytes(data, "aed.csv")
    problem = raised.value.problem
    assert problem == Problem.of("binary-content", name="aed.csv", line=3, offset=len(data) - 2,
                                 where=Where(line=3, byte_offset=len(data) - 2))
    assert problem.ja.startswith("「aed.csv」の 3 行目（先頭から")
    assert raised.value.to_dict()["line"] == 3 and raised.value.code == "binary-content"
    again = pickle.loads(pickle.dumps(raised.value))   # crosses a worker process with its problem
    assert isinstance(again, IntakeError) and again.problem == problem


def test_service_and_portal_errors_take_status_and_words_from_the_catalogue() -> None:
    refused = service_errors.from_intake(Problem.of("unsupported-format", "old-excel", name="a.xls").to_dict())
    assert refused.status == entry("unsupported-format").status == 415
    assert refused.message_ja == "「a.xls」は古いExcel形式(.xls)かパスワード付きのファイルで、読み込めません。"
    too_large = service_errors.upload_too_large(25_000_000)
    assert too_large.status == 413
    assert too_large.body()["error"]["message_ja"] == "ファイルが大きすぎます（上限 25 MB）。"
    assert service_errors.from_intake({"code": "a-code-from-an-old-catalog"}).status == 422
    for kind in (portal_errors.BadRequest, portal_errors.NotFound, portal_errors.SearchQueryError):
        error = kind("field 'x' not in table")
        assert error.status == entry(error.code).status
        assert error.problem.en == "field 'x' not in table" and error.problem.ja.endswith("field 'x' not in table")
    invalid = portal_errors.ValidationError({"sort": ['field "x" not in table']})
    assert (invalid.status, invalid.problem.code, invalid.body()["__type"]) == (409, "invalid-parameter",
                                                                                 "Validation Error")


def test_a_misspelt_key_in_the_catalogue_is_refused_naming_the_code(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "problems.yaml"
    broken.write_text('blank-row:\n  title: {ja: "空の行", en: "Blank row"}\n  hnit: {ja: "削除", en: "Delete"}\n',
                      encoding="utf-8")
    monkeypatch.setattr(problems, "CATALOGUE_FILE", broken)
    catalogue.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"entry 'blank-row'.*hnit"):
            catalogue()
    finally:
        monkeypatch.undo()
        catalogue.cache_clear()
    assert "blank-row" in catalogue()
