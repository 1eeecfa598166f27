"""Canonical units and conversion factors, derivations §1.1, as data.

A unit string is compared after trimming and case-folding, with `µ` and `u` equal. A unit not listed for
its analyte is never guessed: the row is rejected (the validation suite checks `unit` is not NULL).
"""
from __future__ import annotations

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


def convert(analytes: pd.Series, units: pd.Series, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Values and units in canonical form; unit NaN where the unit is not accepted for a known analyte.

    Analytes outside the table (other lab codes: loaded, not graded) keep their own value and unit.
    """
    key = normalise_unit(units.fillna(""))
    canonical_unit = pd.Series(pd.NA, index=values.index, dtype="string")
    canonical_value = pd.Series(float("nan"), index=values.index, dtype="float64")
    known = analytes.isin(list(CANONICAL))
    other = ~known
    canonical_unit[other] = units[other].str.strip()
    canonical_value[other] = values[other]
    for analyte, (unit, accepted) in CANONICAL.items():
        rows = analytes == analyte
        if not rows.any():
            continue
        for spelling, factor in accepted.items():
            hit = rows & (key == spelling)
            if not hit.any():
                continue
            canonical_unit[hit] = unit
            divisor = _DIVISORS.get((analyte, spelling))
            canonical_value[hit] = values[hit] / divisor if divisor else values[hit] * factor
    return canonical_value, canonical_unit
