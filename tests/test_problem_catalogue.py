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


# calls that build a problem's words from the catalogue: Problem.of(code, variant, **fields), Notice.of(…)
FILLING_CALLS = {"Problem.of", "Notice.of"}
# keywords of those calls that say where or carry data, not words (Notice's line, column and count are fields
# its templates may use as well)
NOT_FIELDS = {"where", "details"}
NOTICE_OWN_FIELDS = {"line", "column", "count"}   # a notice's own fields: passed even where no template uses them
ANY_VARIANT = "*"   # the variant is chosen at run time (a variable): every variant of the code must fit
JAPANESE_WORDS = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")   # kana and kanji, not punctuation


@dataclass(frozen=True)
class Use:
    """One place in the source that names a problem code."""

    where: str
    code: str
    variants: tuple[str | None, ...] = (None,)
    fields: frozenset[str] | None = None   # keyword fields passed to Problem.of / Notice.of (None: another call)
    notice: bool = False                   # Notice.of: only the message is filled, never the hint


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _variants(node: ast.expr | None) -> list[str | None]:
    """The variant names a call may pass: one literal, each branch of ``"close" if best else "none"``, or any."""
    if node is None:
        return [None]
    if isinstance(node, ast.IfExp):
        return _variants(node.body) + _variants(node.orelse)
    return [_literal(node) or ANY_VARIANT]


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
            if callee in FILLING_CALLS and first:
                fields = frozenset(k.arg for k in node.keywords if k.arg and k.arg not in NOT_FIELDS)
                variants = tuple(_variants(node.args[1] if len(node.args) > 1 else None))
                uses.append(Use(where, first, variants, fields, notice=callee == "Notice.of"))
            elif callee.split(".")[-1] in CODE_CALLS and (first or keyword_code):
                uses.append(Use(where, str(first or keyword_code)))
            elif callee.endswith("Error") and keyword_code:   # PolicyError(detail, code="policy-input-error")
                uses.append(Use(where, keyword_code))
            elif callee in ("IntakeError", "ApiError") and first is not None:
                uses.append(Use(where, f"<{callee} with words written at the raise: {first[:30]}>"))
        elif isinstance(node, ast.Dict):   # stored refusals: {"code": "unreadable"} (not a rule's {"code": regex})
            for key, value in zip(node.keys, node.values, strict=True):
                if _literal(key) == "code" and PROBLEM_CODE.fullmatch(_literal(value) or ""):
                    uses.append(Use(where, str(_literal(value))))
        elif isinstance(node, ast.ClassDef):   # the portal's kinds of error: code = "not-found"; ConfigError's
            for statement in node.body:        # kinds: problem_code = "schema-error"
                targets = statement.targets if isinstance(statement, ast.Assign) else (
                    [statement.target] if isinstance(statement, ast.AnnAssign) else [])
                assigned = _literal(getattr(statement, "value", None))   # a dataclass field `code: str` has none
                if assigned and any(isinstance(t, ast.Name) and t.id in ("code", "problem_code") for t in targets):
                    uses.append(Use(where, assigned))
    return uses


def _all_uses() -> list[Use]:
    return [use for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py")) for use in _uses_in(path)]


def _placeholders(template: str) -> set[str]:
    return {name.split(".")[0].split("[")[0] for _, name, _, _ in string.Formatter().parse(template) if name}


def _template_fields(use: Use, variant: str | None) -> set[str]:
    """The placeholders of the words ``use`` fills for ``variant`` (a notice: its message only)."""
    found = catalogue()[use.code]
    if variant is not None:
        assert variant in found.variants, f"{use.where}: no variant {variant!r} of {use.code}"
    chosen = found.variants.get(variant or "")
    message = chosen.message if chosen else found.message
    hint = chosen.hint if chosen and chosen.hint else found.hint
    assert message is not None, f"{use.where}: {use.code} needs a variant"
    templates = [message.ja, message.en, *((hint.ja, hint.en) if hint and not use.notice else ())]
    return set().union(*(_placeholders(t) for t in templates))


def _placeholder_mismatches(use: Use) -> list[str]:
    """What the call at ``use`` passes that no template uses, or what a template needs that it does not pass."""
    assert use.fields is not None
    variants: list[str | None] = []
    for variant in use.variants:   # a variant chosen at run time: each of the code's variants must fit
        variants += list(catalogue()[use.code].variants) if variant == ANY_VARIANT else [variant]
    needed = {variant: _template_fields(use, variant) for variant in variants}
    found = [f"{use.where}: {use.code}/{variant} needs {sorted(need - use.fields)}"
             for variant, need in needed.items() if need - use.fields]
    unused = use.fields - set().union(*needed.values()) - (NOTICE_OWN_FIELDS if use.notice else set())
    if unused:
        found.append(f"{use.where}: {use.code} is given {sorted(unused)}, which no template of it uses")
    return found


def test_every_code_named_in_the_source_is_in_the_catalogue_and_its_templates_are_filled() -> None:
    uses = _all_uses()
    codes = {use.code for use in uses}
    # the scan really reads the four kinds of error, not an empty list
    assert {"empty-file", "formula-injection", "auth-required", "upload-too-large", "not-found",
            "search-query-error", "other-municipality", "blank-row", "preamble", "config-error", "schema-error",
            "policy-input-error"} <= codes
    known = catalogue()
    unknown = sorted(f"{use.where}: {use.code}" for use in uses if use.code not in known)
    assert unknown == []
    mismatches = [found for use in uses if use.fields is not None for found in _placeholder_mismatches(use)]
    assert mismatches == []


def test_the_placeholder_check_sees_a_missing_and_an_unused_parameter() -> None:
    """The check above can fail: a call that forgets {line} or passes a field no template has is named."""
    call = Use("x.py:1", "binary-content", (None,), frozenset({"name", "line", "offset"}))
    assert _placeholder_mismatches(call) == []
    assert _placeholder_mismatches(Use("x.py:1", "binary-content", (None,), frozenset({"name", "offset"}))) == [
        "x.py:1: binary-content/None needs ['line']"]
    assert _placeholder_mismatches(Use("x.py:1", "blank-row", ("skipped",), frozenset({"count", "lines", "row"}),
                                       notice=True)) == ["x.py:1: blank-row is given ['row'], which no template "
                                                         "of it uses"]


def test_every_entry_speaks_japanese_and_english() -> None:
    known = catalogue()
    assert len(known) >= 60
    for code, found in known.items():
        words = [("title", found.title), ("message", found.message), ("hint", found.hint)]
        words += [(f"variant {name}", variant.message) for name, variant in found.variants.items()]
        words += [(f"variant {name} hint", variant.hint) for name, variant in found.variants.items()]
        words += [(f"term {name}", term) for name, term in found.terms.items()]
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


# --- the words of a file intake refuses, and of its notices, are the catalogue's alone ---------------------------

WORDS_CALLS = {"IntakeError", "Notice", "Notice.of", "Problem.of"}   # calls whose arguments must not hold words


def _japanese_literals(node: ast.AST) -> list[str]:
    """The string constants (f-string parts included) under ``node`` with Japanese words in them."""
    return [sub.value for sub in ast.walk(node)
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and JAPANESE_WORDS.search(sub.value)]


def _docstrings(tree: ast.AST) -> set[int]:
    return {id(node.body[0].value) for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}


def _words_written_at_the_site(path: Path, shown: Path) -> list[str]:
    """Where ``path`` (``shown`` relative to the repository) writes a refusal's or a notice's words itself.

    Three ways: a Notice built field by field (not Notice.of); Japanese words among the arguments of an
    IntakeError, a Notice or a Problem.of; and, in intake/, Japanese words anywhere in a function that raises or
    builds one (words kept in a dict or a variable and passed on, such as ``done_ja``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings, found = _docstrings(tree), []
    scopes: list[ast.Module | ast.FunctionDef | ast.AsyncFunctionDef] = [tree]
    scopes += [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    for scope in scopes:
        calls = [n for n in ast.walk(scope) if isinstance(n, ast.Call) and _callee(n) in WORDS_CALLS]
        for call in calls:
            if _callee(call) == "Notice":
                found.append(f"{shown}:{call.lineno}: Notice(…) written out: use Notice.of(code, …)")
            found += [f"{shown}:{call.lineno}: {text!r}" for text in _japanese_literals(call)]
        if shown.parts[0] == "intake" and calls and not isinstance(scope, ast.Module):
            found += [f"{shown}:{sub.lineno}: {sub.value!r} in {scope.name}()" for sub in ast.walk(scope)
                      if isinstance(sub, ast.Constant) and isinstance(sub.value, str)
                      and JAPANESE_WORDS.search(sub.value) and id(sub) not in docstrings]
    return sorted(set(found))


def test_no_refusal_or_notice_writes_its_own_words() -> None:
    """Every IntakeError and every notice takes its Japanese and English from the catalogue, by code."""
    sources = [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
               if path != ROOT / "kouiki" / "problems.py"]
    written = [found for path in sources for found in _words_written_at_the_site(path, path.relative_to(ROOT))
               if not found.startswith("service/errors.py")]   # the upload service's own ApiErrors: not intake's
    assert written == []


def test_the_words_check_sees_words_written_at_a_raise_and_in_a_notice(tmp_path: Path) -> None:
    """The check above can fail: each way of writing words at the site is found."""
    source = tmp_path / "example.py"
    source.write_text(
        "def refuse(name):\n"
        "    raise IntakeError(Problem.of('no-data-rows', name=name or 'ファイル'))\n\n"
        "def note(n, outcome):\n"
        "    done_ja = {'fixed': '入れ替えました'}[outcome]\n"
        "    return Notice.of('swapped-coordinates', outcome, count=n, total=n, done=done_ja)\n\n"
        "def old(line):\n"
        "    return Notice('blank-row', f'{line} 行目', f'line {line}')\n", encoding="utf-8")
    assert _words_written_at_the_site(source, Path("intake/example.py")) == [
        "intake/example.py:2: 'ファイル'",
        "intake/example.py:2: 'ファイル' in refuse()",
        "intake/example.py:5: '入れ替えました' in note()",
        "intake/example.py:9: ' 行目'",
        "intake/example.py:9: ' 行目' in old()",
        "intake/example.py:9: Notice(…) written out: use Notice.of(code, …)",
    ]
