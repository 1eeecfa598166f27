"""Numbers as the clinical rules compare them: missing values as None, comparisons at 12 significant digits
(derivations §4.3: 1.5 × ULN must equal 1.5 × ULN; the same holds for eligibility and dosing limits)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

SIGNIFICANT_DIGITS = 12


def number(x: Any) -> float | None:
    """A float, or None for None/NaN/NA (values arrive from DataFrames)."""
    if x is None or x is pd.NA or x is pd.NaT:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def signif(x: float) -> float:
    """x rounded to 12 significant digits."""
    return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def signif_array(x: np.ndarray) -> np.ndarray:
    """signif of each element (NaN stays NaN): the same text rounding, so an array compares as its values do
    one by one."""
    return np.char.mod(f"%.{SIGNIFICANT_DIGITS}g", x).astype(float)
