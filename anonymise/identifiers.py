"""個人番号 (My Number) check digit, scalar and vectorised.

The algorithm is the one in 総務省令第八十五号 (個人番号の検査用数字): with P_n the n-th digit
counted from the right of the first 11 digits and Q_n = n + 1 (n ≤ 6) or n − 5 (n ≥ 7), the check
digit is 0 when Σ P_n·Q_n mod 11 ≤ 1, else 11 − (Σ P_n·Q_n mod 11).
"""

from __future__ import annotations

import numpy as np
import polars as pl

# Weights for the 11 leading digits, written left to right (n = 11 … 1).
_WEIGHTS_LEFT_TO_RIGHT = np.array([6, 5, 4, 3, 2, 7, 6, 5, 4, 3, 2], dtype=np.int64)


def mynumber_check_digit(first_eleven: str) -> int:
    """The check digit for an 11-digit string."""
    if len(first_eleven) != 11 or not first_eleven.isascii() or not first_eleven.isdigit():
        raise ValueError(f"expected 11 ASCII digits, got {first_eleven!r}")
    digits = np.array([int(c) for c in first_eleven], dtype=np.int64)
    return int(check_digits_vectorised(digits[None, :])[0])


def is_valid_mynumber(number: str) -> bool:
    """True when `number` is 12 ASCII digits whose last digit is the correct check digit."""
    if len(number) != 12 or not number.isascii() or not number.isdigit():
        return False
    return mynumber_check_digit(number[:11]) == int(number[11])


def check_digits_vectorised(digits: np.ndarray) -> np.ndarray:
    """Check digits for an (n, 11) integer array of leading digits."""
    remainder = (digits.astype(np.int64) @ _WEIGHTS_LEFT_TO_RIGHT) % 11
    return np.where(remainder <= 1, 0, 11 - remainder)


def mynumbers_from_bases(bases: np.ndarray) -> pl.Series:
    """12-digit 個人番号 strings for integer bases in [0, 10**11) (the base becomes the first 11 digits)."""
    bases = bases.astype(np.int64)
    powers = 10 ** np.arange(10, -1, -1, dtype=np.int64)
    digits = (bases[:, None] // powers[None, :]) % 10
    full = bases * 10 + check_digits_vectorised(digits)
    return pl.Series(full).cast(pl.String).str.zfill(12)
