"""Dates written in a date's form but not in the calendar are reported as such, with the fix
(「2023/02/30」→ 2月30日は存在しません), not as a format error; anything else is left to the format check."""

from __future__ import annotations

import pytest

from kouiki.validation_errors import UNREADABLE_CODES, error_type, impossible_date


@pytest.mark.parametrize(("written", "says", "fix"), [
    ("2023/02/30", "2月30日は存在しません（2023年2月は28日まで）", "2023-02-28"),
    ("2023-02-30", "2月30日は存在しません", "2023-02-28"),
    ("２０２３年２月３０日", "「２０２３年２月３０日」：2月30日は存在しません", "2023-02-28"),   # quoted as written
    ("20230431", "4月31日は存在しません（2023年4月は30日まで）", "2023-04-30"),
    ("R5.2.29", "2月29日は存在しません（2023年2月は28日まで）", "2023-02-28"),      # 令和5年 = 2023
    ("平成元年2月30日", "（1989年2月は28日まで）", "1989-02-28"),
    ("令和5年13月1日", "13月は存在しません（月は1〜12）", "月は1〜12で記入してください"),
    ("2023/13/01", "13月は存在しません", "年-月-日"),
    ("2023/0/10", "0月は存在しません", "月は1〜12"),
    ("2023/1/0", "1月0日は存在しません", "2023-01-01"),
])
def test_an_impossible_date_is_named_with_its_fix(written: str, says: str, fix: str) -> None:
    words = impossible_date(written, "開始日")
    assert words is not None
    assert says in words.message_ja and f"「開始日」の「{written}」" in words.message_ja
    assert fix in words.hint_ja
    assert "does not exist" in words.message_en or "there is no month" in words.message_en


@pytest.mark.parametrize("written", ["2024/2/29", "2023/2/3", "令和5年12月31日", "なし", "未定", "2023/02", "",
                                     "12/31/2023", "R5"])
def test_real_dates_and_other_text_are_not_impossible_dates(written: str) -> None:
    assert impossible_date(written, "開始日") is None


def test_date_error_is_a_warning_whose_cell_is_published_empty() -> None:
    kind = error_type("date-error")
    assert kind.severity == "warning" and kind.scope == "cell" and "date-error" in UNREADABLE_CODES
