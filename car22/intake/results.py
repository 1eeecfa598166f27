"""Result text, derivations §1.2: a value, a censored value, below the limit of quantitation, or no result."""
from __future__ import annotations

import re

import pandas as pd

NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
BELOW_LLOQ_TOKENS = ("blq", "nd", "not detected", "<lloq")
_RESULT = re.compile(rf"([<>]?)\s*({NUMBER})")


def parse_results(text: pd.Series) -> pd.DataFrame:
    """Classify result strings into value, comparator, below_lloq and result_kind.

    `12.3` is a VALUE; `<0.5`/`>2000` are CENSORED (the number is the limit, the comparator kept);
    BLQ/ND/Not detected/<LLOQ are BELOW_LLOQ; anything else (Cancelled, Hemolyzed, empty, `1,5`) is
    NO_RESULT: loaded and counted, never a number. No source allows a decimal comma.

    Each distinct text is read once (a lab file repeats its results); pd.to_numeric's reading depends only on
    which texts there are, not on how often.
    """
    codes, distinct = pd.factorize(text.fillna("").astype("string"))
    return _parse_distinct(pd.Series(distinct, dtype="string")).take(codes).set_axis(text.index)


def _parse_distinct(text: pd.Series) -> pd.DataFrame:
    stripped = text.str.strip()
    # one compiled match per text: several times quicker than Series.str.extract on a lab file
    matches = [_RESULT.fullmatch(value) for value in stripped.to_numpy(dtype=object)]
    parts = pd.DataFrame({"comparator": [m.group(1) if m else pd.NA for m in matches],
                          "number": [m.group(2) if m else pd.NA for m in matches]}, index=text.index, dtype="string")
    number = pd.to_numeric(parts["number"], errors="coerce").astype("float64")
    below = stripped.str.casefold().isin(BELOW_LLOQ_TOKENS)
    censored = number.notna() & (parts["comparator"] != "")
    kind = pd.Series("NO_RESULT", index=text.index, dtype="string")
    kind[number.notna()] = "VALUE"
    kind[censored] = "CENSORED"
    kind[below] = "BELOW_LLOQ"
    comparator = parts["comparator"].where(censored).astype("string")
    return pd.DataFrame(
        {"value": number, "comparator": comparator, "below_lloq": below, "result_kind": kind},
        index=text.index,
    )
