"""Row-level validation with Great Expectations: one suite per source, Data Docs for monitors.

The suites are JSON under expectations/, generated from the source descriptions
(`python -m car22.validation --write-suites`) and committed, so a change to a check is reviewed as a diff;
a test keeps the committed files equal to what the generator writes. Each expectation carries in `meta`
its `check_name`, its `severity` (blocking: failing rows are rejected; warning: rows load, the finding is
recorded) and the `reason` a data manager reads. Values known only at run time (the file's export time,
the enrolled participants, the study start) are GX `$PARAMETER`s.

Great Expectations is imported inside functions only: it costs seconds and most commands never need it.
"""
from __future__ import annotations

import argparse
import html
import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from car22.config import Protocol
from car22.sources import FORMAT_PATTERNS, LABS, SOURCES, Field, Source

SUITES_DIR = Path(__file__).resolve().parent.parent / "expectations"
DATA_DOCS = "data_docs"

KNOWN_TESTS = ("WBC", "ANC", "ALC", "HGB", "PLT", "CREAT", "TBILI", "AST", "ALT", "LDH", "CRP", "FERR", "FIBR",
               "K", "IL6")
# Plausible ranges in canonical units (derivations §1.1): outside them a value is impossible (blocking).
LAB_RANGES = {
    "WBC": (0, 500), "ANC": (0, 200), "ALC": (0, 500), "PLT": (0, 5000), "HGB": (20, 250), "CREAT": (0, 30),
    "TBILI": (0, 50), "AST": (0, 20000), "ALT": (0, 20000), "LDH": (0, 50000), "CRP": (0, 1000),
    "FERR": (0, 500000), "FIBR": (0, 2000), "K": (1, 10), "IL6": (0, 1000000),
}
# REDCap integer-coded fields (exports.md §D) and their allowed codes.
INTEGER_CODES = {
    "hypotension": range(0, 4), "oxygen": range(0, 4), "consciousness": range(0, 4), "seizure": range(0, 3),
    "cerebral_edema": range(0, 3), "inv_crs_grade": range(0, 6), "inv_icans_grade": range(0, 6),
    "ae_grade": range(1, 6),
}
PERCENT_FIELDS = ("blasts_pct", "cd19_pos_pct", "cd22_pos_pct", "car22_pct", "car19_pct", "cd19b_pct",
                  "lvef_pct", "fs_pct", "spo2_pct", "bm_blasts_pct")
DATE_KINDS = ("date", "date_fcs", "date_us", "datetime")


def _expectation(kind: str, check: str, severity: str, reason: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {"check_name": check, "severity": severity, "reason": reason}}


def _field_checks(source: Source, f: Field) -> list[dict[str, Any]]:
    """Presence, type and code checks of one field."""
    checks = []
    if f.raw in source.identifying:
        return checks
    if f.required:
        checks.append(_expectation(
            "expect_column_values_to_not_be_null", f"{f.name}_present", "blocking",
            f"{f.raw} is empty or not a valid {f.kind}; it is required", column=f.name))
    if f.kind == "code":
        checks.append(_expectation(
            "expect_column_values_to_be_in_set", f"{f.name}_code", "blocking",
            f"{f.raw} is not one of the codes {', '.join(f.codes or {})} (exports.md §D)",
            column=f"{f.name}_text", value_set=sorted(f.codes or {})))
    elif f.kind in FORMAT_PATTERNS:
        checks.append(_expectation(
            "expect_column_values_to_match_regex", f"{f.name}_format", "blocking",
            f"{f.raw} does not parse as {f.kind.replace('_', ' ')}", column=f"{f.name}_text",
            regex=FORMAT_PATTERNS[f.kind]))
    if f.name in INTEGER_CODES:
        allowed = list(INTEGER_CODES[f.name])
        checks.append(_expectation(
            "expect_column_values_to_be_in_set", f"{f.name}_code", "blocking",
            f"{f.raw} must be one of {allowed[0]}–{allowed[-1]} (exports.md §D)", column=f.name, value_set=allowed))
    if f.name in PERCENT_FIELDS:
        checks.append(_expectation(
            "expect_column_values_to_be_between", f"{f.name}_range", "blocking",
            f"{f.raw} is a percent and must lie in 0–100", column=f.name, min_value=0, max_value=100))
    if f.kind in DATE_KINDS:
        checks.append(_expectation(
            "expect_column_values_to_be_between", f"{f.name}_in_study", "blocking",
            f"{f.raw} is before the study start or after the file's export time: a typo in the date?",
            column=f.name, min_value={"$PARAMETER": "study_start"}, max_value={"$PARAMETER": "export_time"}))
    return checks


def _source_checks(source: Source) -> list[dict[str, Any]]:
    """Checks that span fields or depend on the source."""
    names = {f.name for f in source.fields}
    checks = [_expectation(
        "expect_column_values_to_match_regex", "participant_id_pattern", "blocking",
        "participant ID does not match the trial's pattern (trial.md): unknown participant",
        column="participant_id", regex={"$PARAMETER": "participant_id_pattern"})]
    if source.name != "edc_enrollment":
        checks.append(_expectation(
            "expect_column_values_to_be_in_set", "participant_enrolled", "warning",
            "participant not enrolled in the EDC (yet): the row is held until the enrollment arrives",
            column="participant_id", value_set={"$PARAMETER": "enrolled_ids"}))
    identity = list(source.identity)
    duplicated = (f"the record identity ({', '.join(identity)}) appears more than once in this file: "
                  "which row is right?")
    checks.append(
        _expectation("expect_compound_columns_to_be_unique", "identity_unique", "blocking", duplicated,
                     column_list=identity) if len(identity) > 1 else
        _expectation("expect_column_values_to_be_unique", "identity_unique", "blocking", duplicated,
                     column=identity[0]))
    if source is LABS:
        checks += [
            _expectation("expect_column_values_to_be_in_set", "status_code", "blocking",
                         "STATUS must be P, F or C (exports.md §A)", column="status", value_set=["C", "F", "P"]),
            _expectation("expect_column_values_to_be_in_set", "test_code_known", "warning",
                         "TEST_CODE is not one of the trial's tests: loaded, never graded", column="test_code",
                         value_set=list(KNOWN_TESTS)),
            _expectation("expect_column_values_to_be_in_set", "flag_code", "warning",
                         "FLAG must be L, H, LL, HH, A or empty", column="flag_text",
                         value_set=["A", "H", "HH", "L", "LL"]),
            _expectation("expect_column_values_to_be_in_set", "unit_known", "blocking",
                         "UNITS is not accepted for this test (derivations §1.1): the unit is never guessed; "
                         "ask the lab which unit it is", column="unit_known", value_set=[True]),
            _expectation("expect_column_pair_values_a_to_be_greater_than_b", "resulted_after_collected",
                         "blocking", "RESULTED_AT is before COLLECTED_AT", column_A="resulted_at",
                         column_B="collected_at", or_equal=True, ignore_row_if="either_value_is_missing"),
        ]
        for code, (low, high) in LAB_RANGES.items():
            checks.append(_expectation(
                "expect_column_values_to_be_between", f"{code.lower()}_plausible", "blocking",
                f"{code} outside {low}–{high} in canonical units: impossible, check the value and unit",
                column="value", min_value=low, max_value=high,
                row_condition={"column": {"name": "test_code"}, "operator": "==", "parameter": code,
                               "type": "comparison"}))
    if "specimen" in names and source.name.startswith("flow"):
        checks.append(_expectation("expect_column_values_to_be_in_set", "specimen_code", "blocking",
                                   "SPECIMEN must be BM or PB (exports.md §B)", column="specimen",
                                   value_set=["BM", "PB"]))
    if "qc" in names:
        checks.append(_expectation("expect_column_values_to_be_in_set", "qc_code", "blocking",
                                   "QC must be PASS or FAIL", column="qc", value_set=["FAIL", "PASS"]))
    if "target" in names:
        checks.append(_expectation("expect_column_values_to_be_in_set", "target_code", "blocking",
                                   "Target must be CD22CAR or CD19CAR (exports.md §C)", column="target",
                                   value_set=["CD19CAR", "CD22CAR"]))
    if "events_leukemic" in names:
        checks.append(_expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", "blasts_within_events", "blocking",
            "blast events exceed the viable CD45+ events", column_A="events_total", column_B="events_leukemic",
            or_equal=True, ignore_row_if="either_value_is_missing"))
    if "car22_count" in names:
        checks.append(_expectation(
            "expect_column_pair_values_a_to_be_greater_than_b", "car22_within_cd3", "blocking",
            "CAR22+ events exceed the CD3+ events", column_A="cd3_count", column_B="car22_count",
            or_equal=True, ignore_row_if="either_value_is_missing"))
    if "tmax_c" in names:
        checks.append(_expectation("expect_column_values_to_be_between", "tmax_plausible", "blocking",
                                   "tmax_c outside 30–43 °C: impossible, check the value", column="tmax_c",
                                   min_value=30, max_value=43))
    if "weight_kg" in names:
        checks += [
            _expectation("expect_column_values_to_be_between", "weight_plausible", "warning",
                         "weight_kg outside 8–250 kg", column="weight_kg", min_value=8, max_value=250),
            _expectation("expect_column_values_to_be_between", "height_plausible", "warning",
                         "height_cm outside 80–230 cm", column="height_cm", min_value=80, max_value=230),
            _expectation("expect_column_values_to_be_between", "age_plausible", "warning",
                         "age at consent outside 0–100 years: check the date of birth", column="age_at_consent_years",
                         min_value=0, max_value=100),
        ]
    return checks


def suite_definition(source: Source) -> dict[str, Any]:
    """The suite of one source, as committed under expectations/<source>.json."""
    expectations = [c for f in source.fields for c in _field_checks(source, f)] + _source_checks(source)
    return {"name": source.name, "expectations": expectations}


def write_suites(folder: Path = SUITES_DIR) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for source in SOURCES:
        path = folder / f"{source.name}.json"
        path.write_text(json.dumps(suite_definition(source), indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        written.append(path)
    return written


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str
    column: str | None
    success: bool
    unexpected_count: int
    severity: str


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
    findings: list[RowFinding]
    report_path: str | None


def _column_of(kwargs: dict[str, Any]) -> str | None:
    if "column" in kwargs:
        return kwargs["column"]
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    return ",".join(kwargs.get("column_list", [])) or None


def _shown(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return "empty"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M") if value.hour or value.minute else value.strftime("%Y-%m-%d")
    return repr(value.item() if hasattr(value, "item") else value)


class Validator:
    """One GX context per run: the suites are loaded once and validate every new file's frame."""

    def __init__(self, reports_dir: Path, protocol: Protocol, suites_dir: Path = SUITES_DIR):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig
        from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

        self.pages = Path(reports_dir) / DATA_DOCS
        self.pages.mkdir(parents=True, exist_ok=True)
        self.protocol = protocol
        self._context = gx.get_context(mode="ephemeral")
        self._context.variables.progress_bars = ProgressBarsConfig(globally=False)
        asset = self._context.data_sources.add_pandas("exports").add_dataframe_asset("export_rows")
        self._batches = asset.add_batch_definition_whole_dataframe("one_file")
        self._suites = {}
        self._order: dict[str, dict[str, int]] = {}
        for source in SOURCES:
            definition = json.loads((suites_dir / f"{source.name}.json").read_text(encoding="utf-8"))
            suite = gx.ExpectationSuite(name=definition["name"])
            for item in definition["expectations"]:
                suite.add_expectation_configuration(
                    ExpectationConfiguration(type=item["type"], kwargs=item["kwargs"], meta=item["meta"]))
            self._suites[source.name] = self._context.suites.add(suite)
            self._order[source.name] = {item["meta"]["check_name"]: i
                                        for i, item in enumerate(definition["expectations"])}

    def validate(self, source: Source, frame: pd.DataFrame, *, file_id: str, file_name: str,
                 export_time: datetime | None, run_time: datetime, enrolled_ids: set[str]) -> FileValidation:
        """Run the source's suite over the frame; findings name the rows (line numbers) and say why."""
        parameters = {
            "study_start": pd.Timestamp(self.protocol["study"]["study_start_date"]),
            "export_time": pd.Timestamp(export_time or run_time),
            "enrolled_ids": sorted(enrolled_ids),
            "participant_id_pattern": self.protocol["study"]["participant_id_pattern"],
        }
        batch = self._batches.get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(self._suites[source.name], expectation_parameters=parameters, result_format={
            "result_format": "COMPLETE", "unexpected_index_column_names": ["row_number"]})
        outcomes, findings = [], []
        for item in result.results:
            config = item.expectation_config
            meta = config.meta
            column = _column_of(config.kwargs)
            unexpected = item.result.get("unexpected_index_list") or []
            if item.exception_info and item.exception_info.get("raised_exception"):
                raise RuntimeError(f"expectation {meta['check_name']} of suite {source.name} could not run: "
                                   f"{item.exception_info.get('exception_message')}")
            outcomes.append(ExpectationOutcome(meta["check_name"], column, bool(item.success),
                                               int(item.result.get("unexpected_count") or 0), meta["severity"]))
            for hit in unexpected:
                values = ", ".join(f"{k}={_shown(v)}" for k, v in hit.items() if k != "row_number")
                findings.append(RowFinding(int(hit["row_number"]), meta["check_name"],
                                           f"{meta['reason']} ({values})", meta["severity"]))
        order = self._order[source.name]
        outcomes.sort(key=lambda o: order.get(o.expectation, len(order)))
        findings.sort(key=lambda f: (f.row_number, order.get(f.check_name, len(order))))
        report = self._write_page(source, file_id, file_name, export_time, outcomes, findings)
        return FileValidation(source.name, outcomes, findings, report)

    def _write_page(self, source: Source, file_id: str, file_name: str, export_time: datetime | None,
                    outcomes: list[ExpectationOutcome], findings: list[RowFinding]) -> str:
        """One static page per validated file: every expectation, its severity, result and examples."""
        by_check: dict[str, list[RowFinding]] = {}
        for finding in findings:
            by_check.setdefault(finding.check_name, []).append(finding)
        rows = []
        for o in outcomes:
            examples = "<br>".join(f"line {f.row_number}: {html.escape(f.reason)}" for f in by_check.get(
                o.expectation, [])[:5])
            state = "passed" if o.success else ("failed" if o.severity == "blocking" else "warning")
            rows.append(f"<tr class='{state}'><td>{html.escape(o.expectation)}</td><td>{html.escape(o.column or '')}"
                        f"</td><td>{o.severity}</td><td>{state}</td><td>{o.unexpected_count}</td>"
                        f"<td>{examples}</td></tr>")
        failed = sum(not o.success for o in outcomes)
        body = (f"<h1>{html.escape(file_name)}</h1>"
                f"<p>Source <b>{source.name}</b> · suite <code>expectations/{source.name}.json</code> · file id "
                f"<code>{file_id}</code> · export time {export_time or 'unknown'} · "
                f"{len(outcomes)} expectations, {failed} not met.</p>"
                "<p><a href='index.html'>All files</a></p>"
                "<table><tr><th>check</th><th>column</th><th>severity</th><th>result</th><th>rows</th>"
                f"<th>examples</th></tr>{''.join(rows)}</table>")
        name = f"{file_id}.html"
        (self.pages / name).write_text(_page(f"Validation of {file_name}", body), encoding="utf-8")
        return f"{DATA_DOCS}/{name}"

    def write_index(self, files: pd.DataFrame) -> Path:
        """The Data Docs index, rebuilt from ops.files: every file received, linked to its page."""
        rows = []
        for f in files.sort_values(["received_at", "file_id"], ascending=[False, True]).itertuples():
            page = (f"<a href='{html.escape(Path(f.report_path).name)}'>{html.escape(f.file_name)}</a>"
                    if isinstance(f.report_path, str) and f.report_path else html.escape(f.file_name))
            reason = html.escape(f.reason) if isinstance(f.reason, str) else ""
            rows.append(f"<tr class='{f.status}'><td>{page}</td><td>{f.source if isinstance(f.source, str) else ''}"
                        f"</td><td>{f.status}</td><td>{f.rows_read}</td><td>{f.rows_loaded}</td>"
                        f"<td>{f.rows_rejected}</td><td>{f.run_id}</td><td>{reason}</td></tr>")
        body = ("<h1>car22 Data Docs: validation of every export</h1>"
                "<table><tr><th>file</th><th>source</th><th>status</th><th>rows read</th><th>loaded</th>"
                f"<th>rejected</th><th>run</th><th>reason</th></tr>{''.join(rows)}</table>")
        index = self.pages / "index.html"
        index.write_text(_page("car22 Data Docs", body), encoding="utf-8")
        return index


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f0f0f0}
tr.failed td,tr.quarantined td{background:#fde2e2}tr.warning td,tr.partially_loaded td{background:#fff4d6}
tr.duplicate td{color:#777}code{background:#f4f4f4}"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m car22.validation",
                                     description="Regenerate the suites under expectations/ from the source "
                                                 "descriptions.")
    parser.add_argument("--write-suites", action="store_true", help="write expectations/<source>.json")
    args = parser.parse_args(argv)
    if not args.write_suites:
        parser.print_help()
        return 2
    for path in write_suites():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
