"""Result text, derivations §1.2: a value, a censored value, below the limit of quantitation, or no result."""
from __future__ import annotations

import pandas as pd

NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
BELOW_LLOQ_TOKENS = ("blq", "nd", "not detected", "<lloq")


def parse_results(text: pd.Series) -> pd.DataFrame:
    """Classify result strings into value, comparator, below_lloq and result_kind.

    `12.3` is a VALUE; `<0.5`/`>2000` are CENSORED (the number is the limit, the comparator kept);
    BLQ/ND/Not detected/<LLOQ are BELOW_LLOQ; anything else (Cancelled, Hemolyzed, empty, `1,5`) is
    NO_RESULT: loaded and counted, never a number. No source allows a decimal comma.
    """
    stripped = text.fillna("").astype("string").str.strip()
    parts = stripped.str.extract(rf"^(?P<comparator>[<>]?)\s*(?P<number>{NUMBER})$")
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
