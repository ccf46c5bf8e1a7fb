"""The pydantic model of the member registry file (``config/members.yaml``): the keys an entry may hold, their
types, and the checks of each value (a real 全国地方公共団体コード, a name that matches it, a policy for every
personal dataset). :func:`kouiki.members.load_members` words its first error as one line with the file and the
line. Imported only when the registry is read (``kouiki inspect`` never reads it, nor imports pydantic).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator, model_validator

from kouiki.localgov import is_valid_code, lookup
from kouiki.yaml_source import as_text

Text = Annotated[str, BeforeValidator(as_text)]


def _listed(value: Any) -> Any:
    """``datasets:`` left empty reads as null: no datasets."""
    return [] if value is None else value


def _strip(value: Any) -> Any:
    return as_text(value).strip() if value is not None else ""


Texts = Annotated[list[Text], BeforeValidator(_listed)]
Code = Annotated[str, BeforeValidator(_strip)]


class MemberEntry(BaseModel):
    """One member city as written in the file (``kouiki.members.Member`` is what the code uses)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    name: Text | None = None
    inbox: Text | None = None
    datasets: Texts = []
    personal_datasets: Texts = []
    submits_for: Annotated[list[Code], BeforeValidator(_listed)] = []
    synthetic_personal_rows: Annotated[int, Field(ge=0), BeforeValidator(lambda v: v or 0)] = 0
    own_datasets: StrictBool = True

    @field_validator("code")
    @classmethod
    def _a_member_code(cls, code: str) -> str:
        if not is_valid_code(code):
            raise ValueError(f"code {code!r} is not a valid 6-digit 全国地方公共団体コード (check digit) — "
                             "検査数字を確かめてください / check the last digit")
        if lookup(code) is None:
            raise ValueError(f"code {code} is not in the national list of local governments — "
                             "全国地方公共団体コードの一覧で確かめてください / check it against the national list")
        return code

    @field_validator("submits_for")
    @classmethod
    def _codes_in_the_list(cls, codes: list[str]) -> list[str]:
        bad = [c for c in codes if not is_valid_code(c) or lookup(c) is None]
        if bad:
            raise ValueError(f"submits_for {bad} are not valid 全国地方公共団体コード in the national list")
        return codes

    @model_validator(mode="after")
    def _name_matches_the_code(self) -> MemberEntry:
        known = lookup(self.code)
        if known is not None and self.name and self.name not in (known.city, known.prefecture, known.name):
            raise ValueError(f"name {self.name!r} does not match code {self.code} ({known.name}) — "
                             "名前かコードを直してください / fix the name or the code")
        return self


class MembersFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    members: list[MemberEntry]
