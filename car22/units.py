"""Canonical units and conversion factors, derivations §1.1, as data.

A unit string is compared after trimming and case-folding, with `µ` and `u` equal. A unit not listed for
its analyte is never guessed: the row is rejected (the validation suite checks `unit` is not NULL).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

_COUNT = {
    "10^9/l": 1.0, "10*9/l": 1.0, "k/ul": 1.0, "10^3/ul": 1.0, "10*3/ul": 1.0, "x10e3/ul": 1.0,
    "cells/ul": 0.001, "/ul": 0.001,
}

# analyte -> (canonical unit, {normalised accepted unit: factor to canonical})
CANONICAL: dict[str, tuple[str, dict[str, float]]] = {
    "WBC": ("10^9/L", _COUNT),
    "ANC": ("10^9/L", _COUNT),
    "ALC": ("10^9/L", _COUNT),
    "AMC": ("10^9/L", _COUNT),
    "PLT": ("10^9/L", _COUNT),
    "CD3": ("10^9/L", _COUNT),
    "HGB": ("g/L", {"g/l": 1.0, "g/dl": 10.0}),
    "CREAT": ("mg/dL", {"mg/dl": 1.0, "umol/l": 1 / 88.42}),
    "TBILI": ("mg/dL", {"mg/dl": 1.0, "umol/l": 1 / 17.1}),
    "AST": ("U/L", {"u/l": 1.0, "iu/l": 1.0}),
    "ALT": ("U/L", {"u/l": 1.0, "iu/l": 1.0}),
    "LDH": ("U/L", {"u/l": 1.0, "iu/l": 1.0}),
    "CRP": ("mg/L", {"mg/l": 1.0, "mg/dl": 10.0}),
    "FERR": ("ng/mL", {"ng/ml": 1.0, "ug/l": 1.0}),
    "FIBR": ("mg/dL", {"mg/dl": 1.0, "g/l": 100.0}),
    "K": ("mmol/L", {"mmol/l": 1.0, "meq/l": 1.0}),
    "IL6": ("pg/mL", {"pg/ml": 1.0, "ng/l": 1.0}),
}

# Dividing by 88.42 and 17.1 exactly as the spec writes them (not multiplying by a rounded reciprocal).
_DIVISORS = {("CREAT", "umol/l"): 88.42, ("TBILI", "umol/l"): 17.1}


def normalise_unit(units: pd.Series) -> pd.Series:
    """Trim, case-fold and equate `µ` (micro sign or Greek mu) with `u`."""
    return units.str.strip().str.replace("\u00b5", "u").str.replace("\u03bc", "u").str.casefold()


# (analyte, normalised unit) -> (canonical unit, factor, exact divisor or None)
_CONVERSIONS: dict[tuple[str, str], tuple[str, float, float | None]] = {
    (analyte, spelling): (unit, factor, _DIVISORS.get((analyte, spelling)))
    for analyte, (unit, accepted) in CANONICAL.items() for spelling, factor in accepted.items()}


def convert(analytes: pd.Series, units: pd.Series, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values and units in canonical form; unit NaN where the unit is not accepted for a known analyte.

    Analytes outside the table (other lab codes: loaded, not graded) keep their own value and unit.
    One dictionary lookup per row (a lab file holds hundreds of thousands of rows).
    """
    keys = zip(analytes.fillna("").to_numpy(dtype=object), normalise_unit(units.fillna("")).to_numpy(dtype=object))
    found = [_CONVERSIONS.get(key) for key in keys]
    factor = np.array([f[1] if f else np.nan for f in found], dtype="float64")
    divisor = np.array([f[2] if f and f[2] else np.nan for f in found], dtype="float64")
    number = values.to_numpy(dtype="float64", na_value=np.nan)
    canonical_value = pd.Series(np.where(np.isnan(divisor), number * factor, number / divisor), index=values.index)
    canonical_unit = pd.Series([f[0] if f else pd.NA for f in found], index=values.index, dtype="string")
    other = ~analytes.isin(list(CANONICAL)).to_numpy(dtype=bool)
    canonical_unit[other] = units[other].str.strip()
    canonical_value[other] = values[other]
    return canonical_value, canonical_unit
