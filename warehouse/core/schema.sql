-- core: the current version of every record of an enrolled participant, typed, in canonical units,
-- with study days (trial.md: study day = date - CD22 CAR infusion date; NULL when not infused).
-- These are the analysts' contract (warehouse.md §core). The models beside this file fill them; the
-- mart models read only from here. Codes from the EDC are decoded to the labels noted in comments.
CREATE SCHEMA IF NOT EXISTS core;

CREATE TABLE IF NOT EXISTS core.participants (
    participant_id        VARCHAR NOT NULL,
    sex                   VARCHAR,   -- 'M' | 'F'
    consent_date          DATE,
    age_at_consent_years  INTEGER,   -- completed years (derivations §6.1)
    age_at_infusion_years INTEGER,   -- completed years
    weight_kg             DOUBLE,
    height_cm             DOUBLE,
    bsa_m2                DOUBLE,
    cd19_product          VARCHAR,   -- 'tisagenlecleucel' | 'brexucabtagene autoleucel' | 'obecabtagene autoleucel'
    cd19_infusion_date    DATE,
    hsct_eligible         BOOLEAN,
    ld_start_date         DATE,
    infusion_date         DATE,
    cells_per_kg          DOUBLE,
    infused               BOOLEAN NOT NULL,
    hsct_date             DATE,
    next_therapy_date     DATE,
    vital_status          VARCHAR,   -- 'alive' | 'dead'
    death_date            DATE,
    death_cause           VARCHAR,   -- 'leukemia' | 'CRS' | 'infection' | 'other'
    last_contact_date     DATE,
    off_study_date        DATE
);

CREATE TABLE IF NOT EXISTS core.eligibility_assessments (
    participant_id        VARCHAR NOT NULL,
    event                 VARCHAR,
    lvef_pct              DOUBLE,
    fs_pct                DOUBLE,
    spo2_pct              DOUBLE,
    crcl_measured         DOUBLE,   -- mL/min/1.73 m2, NULL when not measured
    eligible_investigator BOOLEAN,
    version               INTEGER,
    file_id               VARCHAR
);

CREATE TABLE IF NOT EXISTS core.lab_results (
    participant_id VARCHAR NOT NULL,
    accession      VARCHAR NOT NULL,
    test_code      VARCHAR NOT NULL,
    loinc          VARCHAR,
    test_name      VARCHAR,
    collected_at   TIMESTAMP,
    resulted_at    TIMESTAMP,
    study_day      INTEGER,
    value          DOUBLE,    -- canonical unit; for a censored result, the limit; NULL when no number
    unit           VARCHAR,   -- canonical unit (derivations §1.1)
    comparator     VARCHAR,   -- '<' | '>' | NULL
    below_lloq     BOOLEAN,
    result_kind    VARCHAR,   -- 'VALUE' | 'CENSORED' | 'BELOW_LLOQ' | 'NO_RESULT' (derivations §1.2)
    ref_low        DOUBLE,    -- canonical unit
    ref_high       DOUBLE,    -- canonical unit
    flag           VARCHAR,
    orig_result    VARCHAR,
    orig_unit      VARCHAR,
    orig_ref_low   DOUBLE,    -- original unit
    orig_ref_high  DOUBLE,    -- original unit
    status         VARCHAR,   -- 'P' | 'F' | 'C'
    version        INTEGER,
    file_id        VARCHAR
);

CREATE TABLE IF NOT EXISTS core.flow_samples (
    participant_id     VARCHAR NOT NULL,
    sample_id          VARCHAR NOT NULL,   -- the FCS file name
    panel              VARCHAR NOT NULL,   -- 'MRD' | 'CAR'
    specimen           VARCHAR,            -- 'BM' | 'PB'
    collected_on       DATE,
    acquired_on        DATE,               -- FCS $DATE
    study_day          INTEGER,
    qc                 VARCHAR,            -- 'PASS' | 'FAIL'
    -- MRD panel (derivations §2)
    events_total       BIGINT,             -- N: CD45+/Viable | Count
    events_leukemic    BIGINT,             -- E: CD45+/Viable/Blasts | Count
    blasts_pct         DOUBLE,             -- as exported; never used for the MRD call
    cd19_pos_pct       DOUBLE,             -- % of blasts
    cd22_pos_pct       DOUBLE,             -- % of blasts
    cd22_abc           DOUBLE,             -- antibodies bound per cell
    -- CAR panel (derivations §3)
    cd3_count          BIGINT,             -- CD3+ events
    cd3_abs_cells_ul   DOUBLE,             -- CD3_ABS, cells/µL as exported
    cd3_abs            DOUBLE,             -- canonical 10^9/L
    car22_pct          DOUBLE,             -- CAR22+ % of CD3+
    car22_count        BIGINT,
    car19_pct          DOUBLE,             -- CAR19+ % of CD3+
    cd19b_pct          DOUBLE,             -- CD19+ B cells % of lymphocytes
    cd19b_abs_cells_ul DOUBLE,             -- CD19B_ABS, cells/µL as exported
    cd19b_abs          DOUBLE,             -- canonical 10^9/L
    version            INTEGER,
    file_id            VARCHAR
);

CREATE TABLE IF NOT EXISTS core.qpcr_results (
    participant_id    VARCHAR NOT NULL,
    sample_id         VARCHAR NOT NULL,
    target            VARCHAR NOT NULL,   -- 'CD22CAR' | 'CD19CAR'
    specimen          VARCHAR,
    collected_on      DATE,
    study_day         INTEGER,
    copies_per_ug     DOUBLE,             -- NULL when below the limit
    below_lloq        BOOLEAN,
    orig_result       VARCHAR,
    lloq_copies_per_ug DOUBLE,
    gdna_input_ng     DOUBLE,
    run_id            VARCHAR,
    qc                VARCHAR,            -- 'PASS' | 'FAIL'
    version           INTEGER,
    file_id           VARCHAR
);

CREATE TABLE IF NOT EXISTS core.treatments (
    participant_id   VARCHAR NOT NULL,
    event            VARCHAR,
    instance         INTEGER,
    agent            VARCHAR,   -- 'fludarabine' | 'cyclophosphamide' | 'cd22_car'
    admin_date       DATE,
    study_day        INTEGER,
    dose_mg          DOUBLE,
    car_cells_per_kg DOUBLE,
    bsa_used_m2      DOUBLE,
    version          INTEGER,
    file_id          VARCHAR
);

CREATE TABLE IF NOT EXISTS core.crs_assessments (
    participant_id VARCHAR NOT NULL,
    event          VARCHAR,
    instance       INTEGER,
    assess_date    DATE,
    study_day      INTEGER,
    tmax_c         DOUBLE,
    hypotension    INTEGER,   -- 0 none, 1 no vasopressor, 2 one vasopressor, 3 multiple
    vasopressin    BOOLEAN,
    oxygen         INTEGER,   -- 0 none, 1 low-flow <= 6 L/min, 2 high-flow > 6 L/min etc., 3 positive pressure
    tocilizumab    BOOLEAN,
    steroids       BOOLEAN,
    inv_crs_grade  INTEGER,
    version        INTEGER,
    file_id        VARCHAR
);

CREATE TABLE IF NOT EXISTS core.icans_assessments (
    participant_id   VARCHAR NOT NULL,
    event            VARCHAR,
    instance         INTEGER,
    assess_date      DATE,
    study_day        INTEGER,
    tool             VARCHAR,   -- 'ICE' | 'CAPD'
    score            INTEGER,
    unable_to_assess BOOLEAN,
    consciousness    INTEGER,   -- 0 alert, 1 wakes to voice, 2 wakes to touch only, 3 unarousable
    seizure          INTEGER,   -- 0 none, 1 rapidly resolving or EEG-only, 2 prolonged or repetitive
    motor_weakness   BOOLEAN,
    cerebral_edema   INTEGER,   -- 0 none, 1 focal, 2 diffuse / posturing / papilledema
    inv_icans_grade  INTEGER,
    version          INTEGER,
    file_id          VARCHAR
);

CREATE TABLE IF NOT EXISTS core.adverse_events (
    participant_id  VARCHAR NOT NULL,
    event           VARCHAR,
    instance        INTEGER,
    ae_term         VARCHAR,
    ae_grade        INTEGER,
    onset_date      DATE,
    onset_day       INTEGER,
    resolution_date DATE,
    serious         BOOLEAN,
    related         BOOLEAN,
    version         INTEGER,
    file_id         VARCHAR
);

CREATE TABLE IF NOT EXISTS core.disease_assessments (
    participant_id VARCHAR NOT NULL,
    event          VARCHAR,
    instance       INTEGER,
    assess_date    DATE,
    study_day      INTEGER,
    bm_blasts_pct  DOUBLE,    -- morphology
    cns_status     VARCHAR,   -- 'CNS1' | 'CNS2' | 'CNS3'
    extramedullary BOOLEAN,
    inv_response   VARCHAR,   -- 'MRD_NEGATIVE_CR' | 'MRD_POSITIVE_CR' | 'RELAPSE' | 'NOT_EVALUABLE'
    version        INTEGER,
    file_id        VARCHAR
);
