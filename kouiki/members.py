"""The member registry: which cities belong to the shared service and what they contribute.

Loaded from YAML (``config/members.yaml``); every code is verified (6 digits, check digit, present in the
national list, name matches) so that a typo in the registry is a clear error naming the file, the line and the
entry. Codes must be quoted strings: YAML reads an unquoted ``011002`` as a number (even as octal), which would
silently become another code, so it is refused with the quoted form to write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from kouiki.errors import ConfigError
from kouiki.localgov import check_digit, is_valid_code, lookup
from kouiki.settings import REPO_ROOT, Settings, members_file
from kouiki.yaml_source import YamlDocument, first_problem, key_path, parse

if TYPE_CHECKING:   # pydantic: imported when the registry is read, not by every command that imports this
    from kouiki.member_file import MemberEntry, MembersFile

CODE_KEYS = ("code", "submits_for")
INT_TAG = "tag:yaml.org,2002:int"


def anonymisation_policies() -> Path:
    """Where the 匿名加工 policies are: config/anonymisation, or ``KOUIKI_ANONYMISATION_POLICIES``."""
    return Settings.from_env().policies


class RegistryError(ConfigError):
    """The member registry file is wrong; the message names the file, the line and the entry."""

    problem_code = "registry-error"


@dataclass(frozen=True)
class Member:
    code: str
    name: str
    datasets: tuple[str, ...] = ()
    inbox: Path | None = None          # demo / bulk folder of files to pick up
    extra: dict[str, str] = field(default_factory=dict)
    # Personal files the city sends for 匿名加工 (policy names of config/anonymisation/<name>.yaml); never public.
    personal_datasets: tuple[str, ...] = ()
    # Other municipalities this member may submit rows for (e.g. a 広域連合 or a prefecture's shared file);
    # their rows are split off to those municipalities. Everyone may always submit for itself.
    submits_for: tuple[str, ...] = ()
    # Demo only: rows of synthetic (not real people) personal records generated when the private inbox is empty.
    synthetic_personal_rows: int = 0
    # A file that fits no standard dataset (and no proposed mapping) is published as the city's own dataset
    # (intake/own.py); false: such files are refused, as before.
    own_datasets: bool = True


def load_members(path: Path | None = None) -> list[Member]:
    """Read and verify the member registry (``kouiki.member_file`` says what an entry may hold)."""
    path = path or members_file()
    text = _read_text(path)
    try:
        doc = parse(text)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise RegistryError(f"{_at(path, line)}: YAML の書き方が誤っています / YAML syntax error: {exc.problem} — "
                            "その行を直してください / fix that line") from None
    if not isinstance(doc.data, dict) or not isinstance(doc.data.get("members"), list):
        raise RegistryError(f"{path}: 'members' に市の一覧を書いてください / key 'members' must be a list of cities")
    _refuse_unquoted_codes(path, doc.root)
    entries = _validated(path, doc).members
    members = [_member(path, doc, i, entry) for i, entry in enumerate(entries)]
    _check_unique(path, doc, members)
    return members


def _at(path: Path, line: int | None) -> str:
    return f"{path}:{line}" if line else str(path)


def _validated(path: Path, doc: YamlDocument) -> MembersFile:
    """The file as the pydantic model, or its first problem: ``members.yaml:7: members[1]: code '122034' …``."""
    from pydantic import ValidationError

    from kouiki.member_file import MembersFile

    try:
        return MembersFile.model_validate(doc.data)
    except ValidationError as exc:
        loc, problem = first_problem(exc, MembersFile)
    entry, inside = loc[:2], loc[2:]
    key = key_path(doc.data, entry, named=False)
    if inside and not problem.startswith(str(inside[0])):   # the field, unless the words name it already
        key += key_path(doc.data, loc, named=False)[len(key):]
    if not inside:   # an entry's check ("name '…' does not match …"): the line of the key it names
        inside = (problem.split(" ", 1)[0],)
    raise RegistryError(f"{_at(path, doc.line_of((*entry, *inside)))}: {key}: {problem}")


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: 構成団体の一覧を読めません / cannot read the member registry ({exc.strerror}) — "
                            "KOUIKI_MEMBERS を確認してください / check KOUIKI_MEMBERS") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RegistryError(f"{path}:{line}: UTF-8 ではありません / not UTF-8 text — UTF-8 で保存し直してください / "
                            "save the file as UTF-8") from None


def _refuse_unquoted_codes(path: Path, node: yaml.Node | None) -> None:
    """A ``code:`` or ``submits_for:`` value YAML reads as a number: refuse it with the quoted form."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_unquoted_codes(path, item)
    if not isinstance(node, yaml.MappingNode):
        return
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value in CODE_KEYS:
            scalars = value.value if isinstance(value, yaml.SequenceNode) else [value]
            for scalar in scalars:
                if isinstance(scalar, yaml.ScalarNode) and scalar.tag == INT_TAG:
                    raise RegistryError(
                        f"{path}:{scalar.start_mark.line + 1}: コードは引用符で囲んでください / quote the code: "
                        f"'{scalar.value}' (YAML は {scalar.value} を数値として読みます / YAML reads it as a number)")
        else:
            _refuse_unquoted_codes(path, value)


def _member(path: Path, doc: YamlDocument, index: int, entry: MemberEntry) -> Member:
    """The checked entry as the code uses it; its personal datasets must each have a policy file."""
    known = lookup(entry.code)
    name = entry.name or (known.city or known.prefecture if known else "")
    policies = anonymisation_policies()
    unknown = [d for d in entry.personal_datasets if not d.isidentifier() or not (policies / f"{d}.yaml").is_file()]
    if unknown:
        where = _at(path, doc.line_of(("members", index, "personal_datasets")))
        raise RegistryError(f"{where}: members[{index}]: 匿名加工ポリシーがありません / personal_datasets "
                            f"{unknown} have no policy in {policies}")
    inbox = Path(entry.inbox) if entry.inbox else None
    if inbox is not None and not inbox.is_absolute():
        inbox = REPO_ROOT / inbox
    return Member(code=entry.code, name=name, datasets=tuple(entry.datasets), inbox=inbox,
                  personal_datasets=tuple(entry.personal_datasets),
                  synthetic_personal_rows=entry.synthetic_personal_rows, submits_for=tuple(entry.submits_for),
                  own_datasets=entry.own_datasets)


def _check_unique(path: Path, doc: YamlDocument, members: list[Member]) -> None:
    seen: set[str] = set()
    for i, m in enumerate(members):
        if m.code in seen:
            raise RegistryError(f"{_at(path, doc.line_of(('members', i)))}: member {m.code} ({m.name}) is listed "
                                "twice — 一つにまとめてください / keep one entry")
        seen.add(m.code)


def member_by_code(code: str, members: list[Member] | None = None) -> Member:
    for m in members if members is not None else load_members():
        if m.code == code:
            return m
    raise KeyError(f"{code} is not a member city")


def city_label(code: str, members: list[Member] | None = None) -> str:
    """``132195 狛江市``: a code as a person reads it, with the member's name (or the national list's)."""
    for m in members if members is not None else []:
        if m.code == code:
            return f"{code} {m.name}"
    known = lookup(code) if is_valid_code(code) else None
    return f"{code} {known.city or known.prefecture}" if known else code


def not_a_member(code: str, members: list[Member]) -> str:
    """One line (ja / en) for a code that is not a member city, suggesting only what would work: a member whose
    code differs by the check digit or the missing one, ``kouiki members add`` only with a code that passes
    its check (never ``members add 999999``), else ``kouiki members list``."""
    code = code.strip()
    by_code = {m.code: m for m in members}
    candidate = _checked(code)
    if candidate in by_code:
        found = by_code[candidate]
        return (f"{code} は構成団体のコードではありません。{candidate}（{found.name}）のことですか / {code} is not a "
                f"member's code; did you mean {candidate} ({found.name})?")
    known = lookup(candidate) if candidate else None
    if known is None and candidate == code:
        return (f"{code} は全国地方公共団体コードの一覧にありません。構成団体は kouiki members list で確認できます / "
                f"{code} is not in the national list of local governments; see kouiki members list")
    if known is None:
        return (f"{code} は正しい全国地方公共団体コード（6桁・検査数字つき）ではありません。"
                f"構成団体は kouiki members list で確認できます / {code} is not a valid local-government code "
                "(6 digits with a check digit); see kouiki members list")
    name = known.city or known.prefecture
    if candidate == code:
        return (f"{code}（{name}）は構成団体ではありません。追加するには kouiki members add {code} / {code} ({name}) "
                f"is not a member city; to add it: kouiki members add {code}")
    return (f"{code} は正しいコードではありません（検査数字）。{name}なら {candidate} です"
            f"（追加するには kouiki members add {candidate}） / {code} is not a valid code (check digit); "
            f"{name} is {candidate} (to add it: kouiki members add {candidate})")


def _checked(code: str) -> str | None:
    """The code with a right check digit: as written, its first five digits completed, or a 5-digit JIS code
    completed; None when it is not digits."""
    if not code.isascii() or not code.isdigit() or len(code) not in (5, 6):
        return None
    if is_valid_code(code):
        return code
    return code[:5] + check_digit(code[:5])
