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
    """Trim, case-fold and equate `µ` (micro sign or Greek mu) with `u`; each distinct unit once (a lab file
    has a dozen)."""
    codes, distinct = pd.factorize(units, use_na_sentinel=False)
    distinct = pd.Series(distinct, dtype=units.dtype)
    normal = distinct.str.strip().str.replace("\u00b5", "u").str.replace("\u03bc", "u").str.casefold()
    return normal.take(codes).set_axis(units.index).rename(units.name)


# (analyte, normalised unit) -> canonical unit, factor, and the exact divisor where the spec divides
_TABLE = pd.DataFrame(
    [{"analyte": analyte, "spelling": spelling, "unit": unit, "factor": factor,
      "divisor": _DIVISORS.get((analyte, spelling), np.nan)}
     for analyte, (unit, accepted) in CANONICAL.items() for spelling, factor in accepted.items()]
).set_index(["analyte", "spelling"])


def convert(analytes: pd.Series, units: pd.Series, *values: pd.Series) -> tuple[list[pd.Series], pd.Series]:
    """Each series of values in canonical form, and the canonical unit (NaN where the unit is not accepted for
    a known analyte). Analytes outside the table (other lab codes: loaded, not graded) keep their own value
    and unit. Looked up once by a hashed index, not row by row (a lab file holds hundreds of thousands of
    rows), for the result and both reference limits together.
    """
    pairs = pd.MultiIndex.from_arrays([analytes.fillna("").astype(object),
                                       normalise_unit(units.fillna("")).astype(object)])
    at = _TABLE.index.get_indexer(pairs)  # -1 where the pair is not accepted
    found = at >= 0
    factor = np.where(found, _TABLE.factor.to_numpy()[at], np.nan)
    divisor = np.where(found, _TABLE.divisor.to_numpy()[at], np.nan)
    other = ~analytes.isin(list(CANONICAL)).to_numpy(dtype=bool)
    converted = []
    for series in values:
        number = series.to_numpy(dtype="float64", na_value=np.nan)
        value = pd.Series(np.where(np.isnan(divisor), number * factor, number / divisor), index=series.index)
        value[other] = series[other]
        converted.append(value)
    canonical_unit = pd.Series(np.where(found, _TABLE.unit.to_numpy(dtype=object)[at], pd.NA), index=units.index,
                               dtype="string")
    canonical_unit[other] = units[other].str.strip()
    return converted, canonical_unit
