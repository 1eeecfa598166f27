"""What changed clinically tonight, for monitors: new MRD-positive samples, relapses, deaths, grade ≥ 3
toxicities (ICAHT grade >= 3 on its own, with its durations) and discordant CRS/ICANS grades.

Each fact is recorded once in ops.clinical_events with the run that first saw it, so "new tonight" is a
query (first_run_id = this run), rebuilt from tables like everything a monitor reads (design.md).
"""
from __future__ import annotations

import re

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


def new_tonight(con: duckdb.DuckDBPyConnection, run_id: int) -> list[tuple[str, str, str]]:
    """(kind, participant_id, detail) first seen by this run, most serious kinds first."""
    order = ", ".join(f"'{kind}'" for kind in ("DEATH", "RELAPSE", "MRD_POSITIVE", "GRADE_3_OR_MORE",
                                                 "ICAHT_GRADE_3_OR_MORE", "GRADE_DISCORDANT"))
    return con.execute(f"""
        SELECT kind, participant_id, detail FROM ops.clinical_events
        WHERE first_run_id = ?
        ORDER BY list_position([{order}], kind), participant_id, item""", [run_id]).fetchall()
