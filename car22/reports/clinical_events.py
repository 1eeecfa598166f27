"""What changed clinically tonight, for monitors: new MRD-positive samples, relapses, deaths, grade ≥ 3
toxicities (ICAHT grade >= 3 on its own, with its durations) and discordant CRS/ICANS grades.

Each fact is recorded once in ops.clinical_events with the run that first saw it, so "new tonight" is a
query (first_run_id = this run), rebuilt from tables like everything a monitor reads (design.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

# kind -> SQL yielding (participant_id, item, detail); item identifies the fact within the participant.
FACTS: dict[str, str] = {
    "MRD_POSITIVE": """
        SELECT participant_id, sample_id,
               mrd_status || ' marrow MRD on study day ' || coalesce(CAST(study_day AS VARCHAR), '?')
               || ' (' || events_leukemic || ' of ' || events_total || ' events)'
        FROM mart.mrd_assessments
        WHERE specimen = 'BM' AND mrd_status IN ('POSITIVE', 'POSITIVE_LOW', 'POSITIVE_NOT_QUANTIFIABLE')""",
    "RELAPSE": """
        SELECT participant_id, event_type,
               event_type || ' relapse on study day ' || time_days
        FROM mart.rfs
        WHERE analysis = 'sensitivity' AND event AND event_type <> 'DEATH'""",
    "DEATH": """
        SELECT participant_id, 'death',
               'died on study day ' || coalesce(CAST(death_date - infusion_date AS VARCHAR), '(not infused)')
               || coalesce(' (cause: ' || death_cause || ')', '')
        FROM core.participants
        WHERE death_date IS NOT NULL""",
    "GRADE_3_OR_MORE": """
        SELECT participant_id, toxicity || ' (' || scale || ')',
               toxicity || ' grade ' || max_grade || coalesce(' from study day ' || onset_day, '')
        FROM mart.toxicity_by_participant
        WHERE "window" = 'overall' AND max_grade >= 3 AND scale <> 'ICAHT (EHA/EBMT)'""",
    "ICAHT_GRADE_3_OR_MORE": """
        SELECT participant_id, scale || ' ' || phase,
               scale || ' ' || phase || ' grade ' || grade || ' ('
               || CASE scale WHEN 'N-ICAHT' THEN 'ANC <= 0.5 for ' ELSE 'platelets < 50 for ' END
               || days_below_primary || ' days, '
               || CASE scale WHEN 'N-ICAHT' THEN '<= 0.1 for ' ELSE '< 20 for ' END || days_below_severe
               || ' days, study days ' || CASE phase WHEN 'early' THEN '0' ELSE '31' END || '-' || window_end_day || ')'
        FROM mart.icaht
        WHERE grade >= 3""",
    "GRADE_DISCORDANT": """
        SELECT participant_id, scale,
               scale || ': derived grade ' || max_grade || ', investigator grade '
               || coalesce(CAST(investigator_max_grade AS VARCHAR), 'missing')
        FROM (SELECT participant_id, 'CRS ' || scale AS scale, max_grade, investigator_max_grade, grade_discordant
              FROM mart.crs_summary
              UNION ALL
              SELECT participant_id, 'ICANS ' || scale, max_grade, investigator_max_grade, grade_discordant
              FROM mart.icans_summary)
        WHERE grade_discordant""",
}

DDL = """
CREATE TABLE IF NOT EXISTS ops.clinical_events (
    kind           VARCHAR NOT NULL,
    participant_id VARCHAR NOT NULL,
    item           VARCHAR NOT NULL,
    detail         VARCHAR,
    first_run_id   INTEGER NOT NULL
);
COMMENT ON TABLE ops.clinical_events IS 'Clinical facts a monitor must not miss, each with the run that first saw it: new tonight = first_run_id of the last run.';
COMMENT ON COLUMN ops.clinical_events.kind IS 'MRD_POSITIVE | RELAPSE | DEATH | GRADE_3_OR_MORE | ICAHT_GRADE_3_OR_MORE | GRADE_DISCORDANT.';
COMMENT ON COLUMN ops.clinical_events.participant_id IS 'Participant concerned.';
COMMENT ON COLUMN ops.clinical_events.item IS 'What the fact is about (sample, relapse type, toxicity, scale): with kind and participant, its identity.';
COMMENT ON COLUMN ops.clinical_events.detail IS 'The fact in plain words, as first seen (study days, grades; no dates of birth).';
COMMENT ON COLUMN ops.clinical_events.first_run_id IS 'Run (ops.runs) that first derived this fact.';
"""


def _tables_read(sql: str) -> set[str]:
    return {f"{schema}.{table}" for schema, table in re.findall(r"\b(core|mart)\.(\w+)", sql)}


def record_clinical_events(con: duckdb.DuckDBPyConnection, run_id: int) -> None:
    """Append tonight's facts that no earlier run recorded (a fact whose mart table is not built is skipped)."""
    con.execute(DDL)
    existing = {f"{s}.{t}" for s, t in con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('core', 'mart')").fetchall()}
    for kind, facts in FACTS.items():
        if not _tables_read(facts) <= existing:
            continue
        con.execute(f"""
            INSERT INTO ops.clinical_events
            SELECT '{kind}', f.participant_id, f.item, f.detail, ?
            FROM ({facts}) AS f(participant_id, item, detail)
            WHERE NOT EXISTS (SELECT 1 FROM ops.clinical_events e
                              WHERE e.kind = '{kind}' AND e.participant_id = f.participant_id
                                AND e.item = f.item)
        """, [run_id])


# Ranking for the monitor (issue 18): what must be acted on first, each named; expected cytopenias after
# lymphodepletion (lab-derived CTCAE grades of blood counts: fludarabine and cyclophosphamide are given to
# deplete lymphocytes, and counts fall in nearly everyone) as one count with a pointer to their table.
FIRST = ("DEATH", "RELAPSE", "MRD_POSITIVE", "GRADE_4_OR_MORE")
LAST = ("GRADE_3", "GRADE_DISCORDANT")
LABELS = {"DEATH": "Death", "RELAPSE": "Relapse", "MRD_POSITIVE": "New MRD positivity",
          "GRADE_4_OR_MORE": "Grade ≥ 4", "ICAHT_GRADE_3_OR_MORE": "ICAHT grade ≥ 3", "GRADE_3": "Grade 3", "GRADE_DISCORDANT": "Grade discordant"}
EXPECTED_CYTOPENIAS = ("Anemia", "Lymphocyte count decreased", "Neutrophil count decreased",
                       "Platelet count decreased", "White blood cell decreased")
CYTOPENIA_TABLE = "trial_report.html#cytopenias"


@dataclass(frozen=True)
class Tonight:
    """The clinical facts a run saw first, ranked: `named` as (kind, participant, detail) in reading order,
    `cytopenias` as (participant, detail) counted on one line."""

    named: list[tuple[str, str, str]]
    cytopenias: list[tuple[str, str]]

    def __len__(self) -> int:
        return len(self.named) + len(self.cytopenias)


def rank(kind: str) -> tuple[int, str]:
    """FIRST in its order, then kinds not listed here (added by later rules), then LAST."""
    if kind in FIRST:
        return 0, f"{FIRST.index(kind)}"
    if kind in LAST:
        return 2, f"{LAST.index(kind)}"
    return 1, kind


def new_tonight(con: duckdb.DuckDBPyConnection, run_id: int) -> Tonight:
    """The facts first seen by this run, ranked. A GRADE_3_OR_MORE fact is split by the grade it was first
    seen with (its detail) into GRADE_4_OR_MORE and GRADE_3, except an expected cytopenia (a lab-derived
    CTCAE term of EXPECTED_CYTOPENIAS, any grade), which is counted, not named."""
    terms = "|".join(EXPECTED_CYTOPENIAS)
    rows = con.execute(f"""
        SELECT CASE WHEN kind <> 'GRADE_3_OR_MORE' THEN kind
                    WHEN regexp_full_match(item, '({terms}) \\(CTCAE v[0-9.]+\\)') THEN 'EXPECTED_CYTOPENIA'
                    WHEN TRY_CAST(regexp_extract(detail, ' grade ([0-9]+)', 1) AS INTEGER) >= 4
                        THEN 'GRADE_4_OR_MORE'
                    ELSE 'GRADE_3' END AS ranked,
               participant_id, detail
        FROM ops.clinical_events
        WHERE first_run_id = ?
        ORDER BY participant_id, item""", [run_id]).fetchall()
    named = sorted((r for r in rows if r[0] != "EXPECTED_CYTOPENIA"), key=lambda r: rank(r[0]))
    return Tonight(named, [(pid, detail) for kind, pid, detail in rows if kind == "EXPECTED_CYTOPENIA"])


def format_tonight(tonight: Tonight, shown: int | None = None, table: str = CYTOPENIA_TABLE) -> list[str]:
    """Plain lines: each named fact (the first `shown`, then how many more and where), then the expected
    cytopenias as one count line pointing to their table (`table`: where the reader finds it)."""
    lines = [f"{LABELS.get(kind, kind.replace('_', ' ').capitalize())}: {participant}: {detail}"
             for kind, participant, detail in tonight.named[:shown]]
    if shown is not None and len(tonight.named) > shown:
        lines.append(f"... and {len(tonight.named) - shown} more (ops.clinical_events)")
    if tonight.cytopenias:
        people = len({pid for pid, _ in tonight.cytopenias})
        lines.append(f"Expected cytopenias after lymphodepletion: {len(tonight.cytopenias)} new grade ≥ 3 "
                     f"in {people} participant{'s' if people != 1 else ''} (table: {table})")
    return lines
