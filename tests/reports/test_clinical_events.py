"""What changed tonight, ranked (issue 18): deaths, relapses, new MRD positivity and grade >= 4 events
first, each named; expected cytopenias after lymphodepletion counted on one line with their table."""
from __future__ import annotations

import duckdb
import pytest

from car22.reports.clinical_events import DDL, format_tonight, new_tonight

# (kind, participant, item, detail, first_run_id), as record_clinical_events writes them.
EVENTS = [
    ("GRADE_3_OR_MORE", "CD22-001", "Neutrophil count decreased (CTCAE v5.0)",
     "Neutrophil count decreased grade 4 from study day -2", 2),
    ("GRADE_3_OR_MORE", "CD22-001", "Platelet count decreased (CTCAE v5.0)",
     "Platelet count decreased grade 3 from study day 3", 2),
    ("GRADE_3_OR_MORE", "CD22-002", "Anemia (CTCAE v5.0)", "Anemia grade 3 from study day 5", 2),
    ("GRADE_DISCORDANT", "CD22-001", "CRS ASTCT", "CRS ASTCT: derived grade 2, investigator grade 1", 2),
    ("GRADE_3_OR_MORE", "CD22-003", "Cytokine release syndrome (ASTCT)",
     "Cytokine release syndrome grade 4 from study day 2", 2),
    ("GRADE_3_OR_MORE", "CD22-002", "Febrile neutropenia (CTCAE v5.0 (investigator))",
     "Febrile neutropenia grade 3 from study day 6", 2),
    ("GRADE_3_OR_MORE", "CD22-004", "Anemia (CTCAE v5.0 (investigator))", "Anemia grade 3 from study day 9", 2),
    ("MRD_POSITIVE", "CD22-002", "S-17", "POSITIVE marrow MRD on study day 90 (120 of 500000 events)", 2),
    ("RELAPSE", "CD22-004", "MORPHOLOGIC", "MORPHOLOGIC relapse on study day 200", 2),
    ("ICAHT_LATE", "CD22-005", "ICAHT", "late ICAHT grade 3 from study day 40", 2),
    ("DEATH", "CD22-009", "death", "died on study day 240 (cause: leukemia)", 2),
    ("DEATH", "CD22-010", "death", "died on study day 12 (cause: CRS)", 1),   # seen by an earlier run
]


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA ops")
    con.execute(DDL)
    con.executemany("INSERT INTO ops.clinical_events VALUES (?, ?, ?, ?, ?)", EVENTS)
    return con


def test_ranked_named_first_cytopenias_counted(con):
    tonight = new_tonight(con, 2)
    assert len(tonight) == 11
    assert format_tonight(tonight) == [
        "Death: CD22-009: died on study day 240 (cause: leukemia)",
        "Relapse: CD22-004: MORPHOLOGIC relapse on study day 200",
        "New MRD positivity: CD22-002: POSITIVE marrow MRD on study day 90 (120 of 500000 events)",
        "Grade ≥ 4: CD22-003: Cytokine release syndrome grade 4 from study day 2",
        "Icaht late: CD22-005: late ICAHT grade 3 from study day 40",
        "Grade 3: CD22-002: Febrile neutropenia grade 3 from study day 6",
        "Grade 3: CD22-004: Anemia grade 3 from study day 9",
        "Grade discordant: CD22-001: CRS ASTCT: derived grade 2, investigator grade 1",
        "Expected cytopenias after lymphodepletion: 3 new grade ≥ 3 in 2 participants "
        "(table: trial_report.html#cytopenias)",
    ]


@pytest.mark.parametrize("shown, tail", [
    (2, ["... and 6 more (ops.clinical_events)"]),
    (8, []),
    (0, ["... and 8 more (ops.clinical_events)"]),
])
def test_a_long_list_says_how_many_more(con, shown, tail):
    lines = format_tonight(new_tonight(con, 2), shown=shown)
    assert lines[shown:-1] == tail
    assert lines[-1].startswith("Expected cytopenias after lymphodepletion: 3 new")


@pytest.mark.parametrize("run_id, lines", [
    (1, ["Death: CD22-010: died on study day 12 (cause: CRS)"]),
    (3, []),
])
def test_only_this_runs_facts(con, run_id, lines):
    assert format_tonight(new_tonight(con, run_id)) == lines


def test_one_participant_in_the_count_line(con):
    con.execute("DELETE FROM ops.clinical_events WHERE participant_id <> 'CD22-001'")
    assert format_tonight(new_tonight(con, 2), table="x.html#c")[-1] == (
        "Expected cytopenias after lymphodepletion: 2 new grade ≥ 3 in 1 participant (table: x.html#c)")
