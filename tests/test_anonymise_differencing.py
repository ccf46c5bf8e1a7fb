"""anonymise.differencing.unsafe_class_keys on small hand-made releases: added, removed, changed and kept groups."""

from __future__ import annotations

import polars as pl
import pytest

from anonymise.differencing import unsafe_class_keys, unsafe_classes

QIS = ["年齢", "性別"]


def release(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["年齢", "性別", "要介護度"], orient="row")


BASE = [("80～84", "女", level) for level in ["要介護1", "要介護2", "要介護3", "要介護1", "要介護2", "要介護3"]]
OTHER = [("85～89", "男", level) for level in ["要介護1", "要介護2", "要介護4", "要介護5", "要支援1"]]


@pytest.mark.parametrize(
    ("new", "unsafe"),
    [
        (BASE + OTHER, 0),  # nothing changed
        (BASE + OTHER + [("80～84", "女", "要介護4")], 1),  # one person added
        (BASE[1:] + OTHER, 1),  # one person removed
        ([("80～84", "女", "要介護5"), *BASE[1:], *OTHER], 1),  # one person changed
        (BASE + OTHER + [("80～84", "女", lv) for lv in ["要支援1", "要支援2", "要介護4", "要介護5", "要介護1"]], 0),
        (BASE + OTHER + [("80～84", "女", "要介護4")] * 5, 1),  # five added, all the same care level (l)
        (OTHER, 0),  # a whole class left: the removed group is the earlier class itself
        (BASE[:1] + OTHER, 1),  # five left, one stayed: the kept group of one singles out whoever stayed
    ],
)
def test_groups_below_k_or_l_are_unsafe(new: list[tuple[str, str, str]], unsafe: int) -> None:
    old = release(BASE + OTHER)
    assert unsafe_classes(old, release(new), QIS, ["要介護度"], 5, 2)[0] == unsafe
    keys = unsafe_class_keys(old, release(new), QIS, ["要介護度"], 5, 2)
    assert keys.height == unsafe
    if unsafe:
        assert keys.row(0)[:2] == ("80～84", "女")


def test_the_counts_never_wrap_round() -> None:
    """Removed rows give negative differences; unsigned counts would wrap to 4294967295 and hide them."""
    old = release(BASE + OTHER)
    new = release(BASE[:5] + OTHER)
    assert unsafe_class_keys(old, new, QIS, ["要介護度"], 5, 2)["smallest"].to_list() == [1]
