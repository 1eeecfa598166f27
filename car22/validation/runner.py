"""Running the suites over each file's rows: findings that name the rows (line numbers) and say why.

Two engines run the same suites (expectations/*.json) with the same results: the expectations compiled to
DuckDB SQL (car22.validation.sql_engine, the default: fast, no GX import) and Great Expectations' own pandas
engine (`CAR22_VALIDATION_ENGINE=gx`), the oracle the tests hold the SQL engine equal to.
Great Expectations is imported inside `Validator` only, with the gx engine: it costs seconds.
Speed of the gx engine (docs/validation.md): GX's pandas engine compares numbers and times vectorised only
for float64 and datetime64[ns] columns and filters the whole frame for every metric, so each frame is narrowed to the
columns the suite reads and given those dtypes; a first pass asks only pass/fail, and only the failed
expectations are run again for their rows.
"""
from __future__ import annotations

import json
import logging
import os
import string
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from car22.config import Protocol
from car22.intake.sources import SOURCES, Source
from car22.validation import sql_engine
from car22.validation.checks.fields import is_null
from car22.validation.data_docs import DataDocs, show
from car22.validation.suites import SUITES_DIR, WITHHELD, template_fields

NS_RANGE = (pd.Timestamp("1677-09-22"), pd.Timestamp("2262-04-11"))
ENGINES = ("sql", "gx")
HELD_CHECK = "participant_enrolled"


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str        # the check_name
    column: str | None
    success: bool
    unexpected_count: int
    severity: str           # "blocking" | "warning"


@dataclass(frozen=True)
class RowFinding:
    row_number: int
    check_name: str
    reason: str
    severity: str


@dataclass
class FileValidation:
    suite: str
    outcomes: list[ExpectationOutcome]
    findings: list[RowFinding]   # one per failing row and expectation
    report_path: str | None      # the file's Data Docs page, relative to the reports dir


def _column_of(kwargs: dict[str, Any]) -> str | None:
    if "column" in kwargs:
        return kwargs["column"]
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return ",".join(kwargs.get("column_list", [])) or None


def _condition_columns(condition: dict[str, Any] | None, compared_only: bool = False) -> set[str]:
    if not condition:
        return set()
    if condition["type"] in ("and", "or"):
        return set().union(*(_condition_columns(c, compared_only) for c in condition["conditions"]))
    if compared_only and condition["type"] != "comparison":
        return set()
    return {condition["column"]["name"]}


class _Suite:
    """One source's suite as loaded for the run: the GX suite, its checks in order and how to feed it."""

    def __init__(self, definition: dict[str, Any], gx: Any = None):
        self.name: str = definition["name"]
        self.checks: dict[str, dict[str, Any]] = {e["meta"]["check_name"]: e for e in definition["expectations"]}
        self.gx_suite = gx.ExpectationSuite(**definition) if gx is not None else None
        columns = {"row_number"}
        self.compared: set[str] = set()
        for e in definition["expectations"]:
            kwargs = e["kwargs"]
            columns.update(kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs)
            columns.update(kwargs.get("column_list", []))
            columns |= _condition_columns(kwargs.get("row_condition"))
            self.compared |= _condition_columns(kwargs.get("row_condition"), compared_only=True)
        self.columns = sorted(columns)
        # The `_text` columns read only where their field did not type (the `_format` and `_valid` checks).
        uses: dict[str, list[bool]] = {}
        for e in definition["expectations"]:
            column = e["kwargs"].get("column", "")
            if column.endswith("_text"):
                typed = column.removesuffix("_text")
                uses.setdefault(column, []).append(e["kwargs"].get("row_condition") == is_null(typed))
        self.untyped_only = {column for column, conditioned in uses.items() if all(conditioned)}
        self.templates = {name: list(string.Formatter().parse(e["meta"]["reason"])) for name, e in self.checks.items()}
        for check, e in self.checks.items():
            if shown := template_fields(e["meta"]["reason"]) & WITHHELD:
                raise ValueError(f"{self.name}.{check} may not show {sorted(shown)}")

    def sql_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns the suite reads, as the validation frame has them."""
        self._require_columns(frame)
        return frame[self.columns]

    def _require_columns(self, frame: pd.DataFrame) -> None:
        """A check whose column is missing would pass unseen: refuse the frame."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the validation frame of {self.name} lacks column(s) {missing}: build it from the "
                             "typed frame and every field's _text (docs/validation.md)")

    def gx_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The columns the suite reads, in the dtypes GX's pandas engine handles vectorised."""
        self._require_columns(frame)
        data = {}
        for name in self.columns:
            column = frame[name]
            if name in self.untyped_only:
                # GX hashes and copies every column it is given: text the checks never read is left out.
                column = column.where(frame[name.removesuffix("_text")].isna())
            if pd.api.types.is_datetime64_any_dtype(column.dtype):
                # datetime64[ns] spans 1677-2262: a typo beyond stays beyond the checked period once clipped.
                column = column.clip(*NS_RANGE).astype("datetime64[ns]")
            elif isinstance(column.dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(
                    column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
                column = column.astype("float64")
            elif pd.api.types.is_string_dtype(column.dtype):
                # Comparisons, sets, hashing and row filters work on the codes of a categorical column.
                column = column.astype("category")
            data[name] = column
        return pd.DataFrame(data, index=frame.index)

    def reasons(self, check: str, frame: pd.DataFrame, rows: list[int], parameters: dict[str, Any]) -> list[str]:
        """The check's reason for each row, its fields filled with the row's raw text or typed values."""
        if not rows:
            return []
        template = self.templates[check]
        positions = pd.Index(frame["row_number"]).get_indexer(rows)
        values: dict[str, tuple[list[Any], bool]] = {}
        for _, name, _, conversion in template:
            if not name or name in values or name in parameters:
                continue
            text = f"{name}_text"
            column = text if text in frame.columns else name
            values[name] = (frame[column].iloc[positions].tolist(), column == text and conversion != "s")
        out = []
        for i in range(len(rows)):
            parts = []
            for literal, name, _, conversion in template:
                parts.append(literal)
                if name in parameters:
                    parts.append(show(parameters[name], False))
                elif name:
                    column, quoted = values[name]
                    parts.append(show(column[i], quoted))
            out.append("".join(parts))
        return out


def _problem(item: Any) -> str | None:
    """The error an expectation raised (GX reports it per result or per metric), if any."""
    info = item.exception_info or {}
    if info.get("raised_exception"):
        return str(info.get("exception_message"))
    for value in info.values():
        if isinstance(value, dict) and (value.get("raised_exception") or value.get("exception_message")):
            return str(value.get("exception_message"))
    return None


class Validator:
    """Loads the suites once per run, validates frames with the chosen engine, renders Data Docs."""

    def __init__(self, reports_dir: Path, protocol: Protocol, suites_dir: Path = SUITES_DIR,
                 engine: str | None = None):
        self.engine = engine or os.environ.get("CAR22_VALIDATION_ENGINE") or "sql"
        if self.engine not in ENGINES:
            raise ValueError(f"CAR22_VALIDATION_ENGINE={self.engine!r}: use one of {', '.join(ENGINES)}")
        self.docs = DataDocs(Path(reports_dir))
        study = protocol["study"]
        self._parameters = {
            "participant_id_pattern": study["participant_id_pattern"],
            "study_start": pd.Timestamp(study["study_start_date"]),
            "cd19_car_earliest": pd.Timestamp(study["cd19_car_earliest_date"]),
        }
        definitions = [json.loads((suites_dir / f"{s.name}.json").read_text(encoding="utf-8")) for s in SOURCES]
        self._gx = self._gx_context() if self.engine == "gx" else None
        self._suites: dict[str, _Suite] = {}
        for definition in definitions:
            suite = _Suite(definition, self._gx)
            if self._gx is not None:
                self._context.suites.add(suite.gx_suite)
            self._suites[suite.name] = suite

    def _gx_context(self) -> Any:
        """One ephemeral GX context per run, offline and quiet, with a pandas asset fed one frame per file."""
        os.environ["GX_ANALYTICS_ENABLED"] = "false"
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._context = gx.get_context(mode="ephemeral")
        self._context.config.analytics_enabled = False
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self._context.data_sources.add_pandas("exports").add_dataframe_asset("export_rows")
        self._batches = asset.add_batch_definition_whole_dataframe("one_file")
        return gx

    def validate(self, source: Source, frame: pd.DataFrame, *, file_id: str, file_name: str,
                 export_time: datetime | None, run_time: datetime, enrolled_ids: set[str],
                 issue_ids: frozenset[str] = frozenset()) -> FileValidation:
        """Run the source's suite over the frame; findings name the rows (line numbers) and say why.

        `issue_ids` are the data issues a decisions file may name (exports.md §E)."""
        suite = self._suites[source.name]
        parameters = {**self._parameters, "export_time": pd.Timestamp(export_time or run_time),
                      "enrolled_ids": sorted(enrolled_ids), "issue_ids": sorted(issue_ids)}
        if self._gx is None:
            unexpected = sql_engine.unexpected_rows(suite.sql_frame(frame), list(suite.checks.values()), parameters)
        else:
            unexpected = self._unexpected_gx(suite, frame, parameters)
        # A row rejected by a blocking check is not also held for its enrollment: it will not load either way.
        blocked = {row for name, rows in unexpected.items()
                   if suite.checks[name]["meta"]["severity"] == "blocking" for row in rows}
        if HELD_CHECK in unexpected:
            unexpected[HELD_CHECK] = [row for row in unexpected[HELD_CHECK] if row not in blocked]
        failed = {name for name, rows in unexpected.items() if rows}
        outcomes, findings = [], []
        for name, e in suite.checks.items():
            severity = e["meta"]["severity"]
            rows = unexpected.get(name, [])
            outcomes.append(ExpectationOutcome(name, _column_of(e["kwargs"]), name not in failed, len(rows), severity))
            findings += [RowFinding(row, name, reason, severity)
                         for row, reason in zip(rows, suite.reasons(name, frame, rows, parameters))]
        order = {name: i for i, name in enumerate(suite.checks)}
        findings.sort(key=lambda f: (f.row_number, order[f.check_name]))
        report = self.docs.write_page(suite.name, suite.checks, file_id, file_name, export_time, run_time,
                                      len(frame), outcomes, findings, parameters)
        return FileValidation(suite.name, outcomes, findings, report)

    def _unexpected_gx(self, suite: _Suite, frame: pd.DataFrame, parameters: dict[str, Any]) -> dict[str, list[int]]:
        """GX's pandas engine: a first pass asks only pass/fail; only the failed expectations run again for
        their rows."""
        batch = self._batches.get_batch(batch_parameters={"dataframe": suite.gx_frame(frame)})
        quick = batch.validate(suite.gx_suite, expectation_parameters=parameters, result_format="BOOLEAN_ONLY")
        failed = [self._checked(suite, item).expectation_config.meta["check_name"]
                  for item in quick.results if not item.success]
        unexpected: dict[str, list[int]] = {}
        if failed:
            again = self._gx.ExpectationSuite(name=f"{suite.name}.failed",
                                              expectations=[suite.checks[name] for name in failed])
            detail = batch.validate(again, expectation_parameters=parameters, result_format={
                "result_format": "COMPLETE", "unexpected_index_column_names": ["row_number"],
                "return_unexpected_index_query": False, "partial_unexpected_count": 0})
            for item in detail.results:
                self._checked(suite, item)
                unexpected[item.expectation_config.meta["check_name"]] = sorted(
                    int(hit["row_number"]) for hit in item.result.get("unexpected_index_list") or [])
        return unexpected

    def _checked(self, suite: _Suite, item: Any) -> Any:
        """A check that could not run is a defect of the pipeline, never a data finding: stop loudly."""
        if (problem := _problem(item)) is not None:
            raise RuntimeError(f"check {item.expectation_config.meta['check_name']} of suite {suite.name} could not "
                               f"run: {problem}")
        return item
