"""Problems intake can meet, each with a stable code and a message a city clerk can act on (ja + en).

Codes follow the spirit of Frictionless (``encoding-error``, ``blank-row``, ``extra-label`` …) so that the
same problem always has the same name in reports, the API and the tests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Notice:
    """Something intake did or noticed that the uploader should know (not fatal)."""

    code: str                 # stable, e.g. "blank-row", "extra-label", "preamble"
    message_ja: str
    message_en: str
    line: int | None = None   # 1-based physical line in the file, when it applies
    column: str | None = None
    count: int = 1
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class IntakeError(Exception):
    """A file that cannot be read at all. Says what, where and how to fix it, in Japanese and English."""

    def __init__(
        self,
        code: str,
        message_ja: str,
        message_en: str,
        *,
        hint_ja: str = "",
        hint_en: str = "",
        line: int | None = None,
        byte_offset: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message_en)
        self.code = code
        self.message_ja = message_ja
        self.message_en = message_en
        self.hint_ja = hint_ja
        self.hint_en = hint_en
        self.line = line
        self.byte_offset = byte_offset
        self.column = column

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message_ja": self.message_ja,
            "message_en": self.message_en,
            "hint_ja": self.hint_ja,
            "hint_en": self.hint_en,
            "line": self.line,
            "byte_offset": self.byte_offset,
            "column": self.column,
        }
