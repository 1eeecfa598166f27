"""Realistic, deterministic demo exports (exports.md formats) for a cohort on the trial.md schedule.

Each participant's story is drawn from a random stream of its own (seed and index), so the same seed gives
the same bytes and a larger cohort only adds participants. The default cohort (≤ 50 participants) also
carries the deliberate defects the checks must catch: an unknown unit, unknown participants, a duplicate
file, a corrected lab result (P → F → C), a file that is not CSV, a re-gated flow sample, a qPCR rerun and
an EDC record deleted between snapshots, and the planted hematotoxicity of PLANTED_LABS (ICAHT, CAR-HEMATOTOX).
"""
from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

TRIAL_START = date(2026, 2, 1)
LAB_EPOCH = datetime(2026, 1, 5, 2, 15)        # labs are exported every 14 days at 02:15
LAB_PERIOD = timedelta(days=14)
MARROW_DAYS = (28, 91, 182, 274, 365, 547, 730)
BLOOD_DAYS = (7, 14, 21, 28, 61, 91, 182, 274, 365, 547, 730)
LAB_DAYS = (-21, -7, *range(-5, 15), 16, 18, 21, 24, 28, 61, 91, 182, 274, 365, 547, 730)
CRS_DAYS = range(0, 15)

LAB_HEADER = ("SUBJECT_ID,ACCESSION,COLLECTED_AT,RESULTED_AT,TEST_CODE,LOINC,TEST_NAME,RESULT,UNITS,REF_LOW,"
              "REF_HIGH,FLAG,STATUS")
MRD_HEADER = (",$DATE,SUBJECT,COLLECTED,SPECIMEN,QC,CD45+/Viable | Count,CD45+/Viable/Blasts | Count,"
              "CD45+/Viable/Blasts | Freq. of Parent (%),CD45+/Viable/Blasts/CD19+ | Freq. of Parent (%),"
              "CD45+/Viable/Blasts/CD22+ | Freq. of Parent (%),CD22_ABC")
CAR_HEADER = (",$DATE,SUBJECT,COLLECTED,SPECIMEN,QC,Lymphocytes/Single Cells/Live/CD3+ | Count,CD3_ABS,"
              "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Freq. of Parent (%),"
              "Lymphocytes/Single Cells/Live/CD3+/CAR22+ | Count,"
              "Lymphocytes/Single Cells/Live/CD3+/CAR19+ | Freq. of Parent (%),"
              "Lymphocytes/Single Cells/Live/CD19+ B | Freq. of Parent (%),CD19B_ABS")
QPCR_HEADER = ("Subject,Sample ID,Collection Date,Specimen,Target,Copies/ug gDNA,LLOQ (copies/ug),gDNA input (ng),"
               "Run ID,QC")
REDCAP = "record_id,redcap_event_name"
REPEAT = "redcap_repeat_instrument,redcap_repeat_instance"
EDC_HEADERS = {
    "enrollment": f"{REDCAP},consent_date,dob,sex,weight_kg,height_cm,cd19_product,cd19_infusion_date,hsct_eligible",
    "eligibility": f"{REDCAP},lvef_pct,fs_pct,spo2_pct,crcl_measured,eligible_investigator",
    "treatment": f"{REDCAP},{REPEAT},agent,admin_date,dose_mg,car_cells_per_kg,bsa_used_m2",
    "crs_daily": f"{REDCAP},{REPEAT},assess_date,tmax_c,hypotension,vasopressin,oxygen,tocilizumab,steroids,"
                 "inv_crs_grade",
    "icans_daily": f"{REDCAP},{REPEAT},assess_date,tool,score,unable_to_assess,consciousness,seizure,"
                   "motor_weakness,cerebral_edema,inv_icans_grade",
    "adverse_events": f"{REDCAP},{REPEAT},ae_term,ae_grade,onset_date,resolution_date,serious,related",
    "disease_assessment": f"{REDCAP},{REPEAT},assess_date,bm_blasts_pct,cns_status,extramedullary,inv_response",
    "followup": f"{REDCAP},last_contact_date,vital_status,death_date,death_cause,hsct_date,next_therapy_date,"
                "off_study_date",
}

# test code -> (LOINC, name, unit of the main lab, reference low, high)
TESTS = {
    "WBC": ("6690-2", "WBC", "K/uL", 4.5, 11.0), "ANC": ("751-8", "Neutrophils", "K/uL", 1.5, 8.0),
    "ALC": ("731-0", "Lymphocytes", "K/uL", 1.0, 4.8), "HGB": ("718-7", "Hemoglobin", "g/dL", 12.0, 16.0),
    "PLT": ("777-3", "Platelets", "K/uL", 150, 400), "CREAT": ("2160-0", "Creatinine", "mg/dL", 0.3, 1.0),
    "TBILI": ("1975-2", "Bilirubin total", "mg/dL", 0.2, 1.2), "AST": ("1920-8", "AST", "U/L", 10, 40),
    "ALT": ("1742-6", "ALT", "U/L", 7, 56), "LDH": ("2532-0", "LDH", "U/L", 140, 280),
    "CRP": ("1988-5", "C-reactive protein", "mg/L", 0, 8), "FERR": ("2276-4", "Ferritin", "ng/mL", 20, 300),
    "FIBR": ("3255-7", "Fibrinogen", "mg/dL", 200, 400), "K": ("2823-3", "Potassium", "mmol/L", 3.5, 5.1),
    "IL6": ("26881-3", "Interleukin 6", "pg/mL", 0, 7),
}
SI = {"CREAT": ("µmol/L", 88.42), "TBILI": ("umol/L", 17.1), "HGB": ("g/L", 10.0)}

# Planted hematotoxicity of the default demo (derivations §4.5-4.6), asserted by tests/test_demo_hematotox.py:
# participant index -> {(test, study day): result text}, replacing the drawn result (the random draws are made
# all the same, so no other story changes). Days -3..21 are the marrow nadir of every other participant.
_ANC_NADIR = range(-3, 22)
PLANTED_LABS: dict[int, dict[tuple[str, int], str]] = {
    # early N-ICAHT 0 (ANC never <= 0.5); CAR-HEMATOTOX LOW with 1 point (platelets 150 on day -7)
    13: {("ANC", d): "0.8" for d in _ANC_NADIR} | {("PLT", -7): "150"},
    # early N-ICAHT 1: ANC <= 0.5 on days 3-5 (3 days)
    14: {("ANC", d): "0.4" if 3 <= d <= 5 else "0.8" for d in _ANC_NADIR},
    # early N-ICAHT 2: days 2-11 (10 days)
    15: {("ANC", d): "0.3" if 2 <= d <= 11 else "0.8" for d in _ANC_NADIR},
    # early N-ICAHT 3: days 0-16 with results, day 17 carried from 16 (18 days), never <= 0.1
    16: {("ANC", d): "0.3" if 0 <= d <= 16 else "0.8" for d in _ANC_NADIR},
    # early N-ICAHT 4: <= 0.1 from day 0 to 23 (day 21's result carried to 23), one below-LLOQ, one censored
    17: {("ANC", d): {10: "<0.1", 12: "BLQ"}.get(d, "0.05") for d in _ANC_NADIR},
    # late N-ICAHT 3: ANC <= 0.5 on both results of days 31-100 (days 61 and 91)
    18: {("ANC", 61): "0.4", ("ANC", 91): "0.4"},
    # CAR-HEMATOTOX HIGH: platelets 60 (2 points) and ferritin 2500 (2 points) on day -7
    19: {("PLT", -7): "60", ("FERR", -7): "2500"},
    # CAR-HEMATOTOX NULL: the only ferritin of the 14 days before lymphodepletion was cancelled
    20: {("FERR", -7): "Cancelled"},
}


@dataclass
class Story:
    """One participant's course: who, when, what happened."""

    index: int
    pid: str
    rng: random.Random
    consent: date
    dob: date
    age: float
    sex: int
    height: float
    weight: float
    infusion: date | None
    cd19_infusion: date
    crs_grade: int = 0
    crs_onset: int = 0
    crs_days: int = 0
    icans_grade: int = 0
    relapse_day: int | None = None          # MRD relapse
    morphologic_day: int | None = None
    hsct_day: int | None = None
    death_day: int | None = None
    death_cause: int | None = None
    next_therapy_day: int | None = None
    referral_lab: bool = False
    cd22_dim: bool = False
    bca_loss_day: int | None = None
    discordant: bool = False
    planted: bool = False                  # PLANTED_LABS apply (the default demo only)
    peak_pct: float = 20.0
    end: date = field(default_factory=date.today)

    @property
    def bsa(self) -> float:
        return math.sqrt(self.height * self.weight / 3600)

    def day(self, d: int) -> date:
        anchor = self.infusion or (self.consent + timedelta(days=30))
        return anchor + timedelta(days=d)


def _story(index: int, participants: int, seed: int, as_of: date) -> Story:
    rng = random.Random(seed * 1_000_003 + index)
    width = 3 if participants <= 999 else len(str(participants)) + 1
    pid = f"CD22-{index:0{width}d}"
    consent = TRIAL_START + timedelta(days=int((index - 1) * 365 / max(participants, 1)) + rng.randint(0, 6))
    child = rng.random() < 0.6
    age = rng.uniform(3.5, 17.9) if child else rng.uniform(18.5, 64.5)
    dob = consent - timedelta(days=int(age * 365.25))
    age = (consent - dob).days / 365.25
    height = min(175.0, 75 + 6.2 * age) if child else rng.uniform(155, 190)
    weight = min(70.0, 2.3 * age + 9) if child else rng.uniform(50, 100)
    screen_failure = index == 2
    infusion = None if screen_failure else consent + timedelta(days=rng.randint(26, 34))
    ld_start = (infusion or consent + timedelta(days=30)) - timedelta(days=5)
    story = Story(index, pid, rng, consent, dob, age, rng.choice((1, 2)), round(height, 1), round(weight, 1),
                  infusion, ld_start - timedelta(days=rng.randint(70, 200)))
    story.end = as_of
    if infusion is None:
        return story
    demo = participants <= 50
    roll = rng.random()
    if rng.random() < 0.5:
        story.crs_grade = 3 if (demo and index == 5) else rng.choice((1, 1, 2, 2, 3) if not demo else (1, 2))
        story.crs_onset, story.crs_days = rng.randint(1, 5), rng.randint(2, 7)
    if (demo and index in (5, 9)) or (not demo and rng.random() < 0.15):
        story.icans_grade = rng.choice((1, 2, 3)) if not demo else (2 if index == 5 else 1)
    story.referral_lab = (demo and index in (4, 8)) or (not demo and rng.random() < 0.1)
    story.discordant = demo and index == 9
    story.planted = demo
    story.peak_pct = rng.lognormvariate(math.log(20), 0.6)
    if (demo and index == 3) or (not demo and roll < 0.12):       # MRD relapse, then morphologic, then death
        story.relapse_day, story.morphologic_day = 91, 182
        story.next_therapy_day, story.death_day, story.death_cause = 190, 300, 1
    elif (demo and index == 7) or (not demo and roll < 0.2):      # CD22-dim MRD relapse, next therapy
        story.relapse_day, story.cd22_dim, story.next_therapy_day = 182, True, 200
    elif (demo and index == 11) or (not demo and roll < 0.25):    # consolidative transplant: censored
        story.hsct_day = 120
    if (demo and index in (6, 12)) or (not demo and rng.random() < 0.15):
        story.bca_loss_day = 182
    last = (as_of - infusion).days
    if story.death_day is not None and story.death_day > last:
        story.death_day = story.death_cause = None
    return story


def _alive_on(story: Story, d: int) -> bool:
    """Trial data exist up to death, the next therapy or the data cut, whichever is first."""
    stop = min(x for x in (story.death_day, story.next_therapy_day, story.hsct_day, 10_000) if x is not None)
    return d <= stop and story.day(d) <= story.end - timedelta(days=1)


# --- lab values -----------------------------------------------------------------------------------------

def _crs_level(story: Story, d: int) -> int:
    if not story.crs_grade or not story.crs_onset <= d < story.crs_onset + story.crs_days:
        return 0
    peak = story.crs_onset + story.crs_days // 2
    return max(1, story.crs_grade - abs(d - peak))


def _lab_value(story: Story, code: str, d: int) -> float:
    rng = story.rng
    marrow_down = -3 <= d <= 21
    recovery = min(1.0, max(0.0, (d - 14) / 21)) if d > 14 else 0.0
    inflammation = _crs_level(story, d)
    relapsed = story.morphologic_day is not None and d >= story.morphologic_day
    noise = rng.uniform(0.85, 1.15)
    if code == "ANC":
        base = 0.05 + 0.25 * rng.random() if marrow_down else 2.5
        value = base + (2.2 * recovery if d > 14 else 0)
    elif code == "ALC":
        value = (0.03 + 0.1 * rng.random()) if marrow_down else (0.3 + 0.9 * recovery if d > 0 else 1.3)
    elif code == "WBC":
        value = _lab_value(story, "ANC", d) + _lab_value(story, "ALC", d) + 0.3 + (20 if relapsed else 0)
    elif code == "PLT":
        value = (15 + 45 * rng.random()) if 2 <= d <= 18 else (110 + 120 * recovery if d > 0 else 230)
        value = value * (0.3 if relapsed else 1)
    elif code == "HGB":
        value = (7.4 + 1.6 * rng.random()) if 2 <= d <= 21 else 11.8
    elif code == "CREAT":
        value = (0.35 if story.age < 10 else 0.7) * (1.6 if inflammation >= 3 else 1.0)
    elif code == "TBILI":
        value = 0.5 + 0.6 * inflammation
    elif code in ("AST", "ALT"):
        value = 25 + 60 * inflammation * rng.random() + (120 if inflammation >= 3 else 0)
    elif code == "LDH":
        value = 210 + 150 * inflammation + (600 if relapsed else 0)
    elif code == "CRP":
        value = 2 + 60 * inflammation * (1 + rng.random())
    elif code == "FERR":
        value = 250 + 1800 * inflammation * (1 + rng.random())
    elif code == "FIBR":
        value = 320 - 60 * inflammation
    elif code == "K":
        value = rng.uniform(3.8, 4.6) - (1.0 if d in (3, 4) and story.index % 4 == 0 else 0)
        noise = 1.0
    else:  # IL6
        value = 1.2 + 300 * inflammation * (1 + rng.random())
    return value * noise


def _format_number(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def _flag(value: float, low: float, high: float) -> str:
    if value < low * 0.5:
        return "LL"
    if value < low:
        return "L"
    if value > high * 3:
        return "HH"
    return "H" if value > high else ""


def _lab_rows(story: Story) -> list[tuple[datetime, str]]:
    """(resulted_at, CSV row) for every lab result of the participant."""
    rows = []
    rng = story.rng
    for visit, d in enumerate(LAB_DAYS):
        if not _alive_on(story, d) or (story.infusion is None and d > -5):
            continue
        collected = datetime.combine(story.day(d), time(7 + rng.randint(0, 3), rng.choice((0, 15, 30, 45))))
        accession = f"A{story.index:05d}{visit:03d}"
        si = story.referral_lab and d >= 61
        for code, (loinc, name, unit, low, high) in TESTS.items():
            resulted = collected + timedelta(hours=rng.randint(1, 6), minutes=rng.randint(0, 59))
            value = _lab_value(story, code, d)
            flag = _flag(value, low, high)
            if code in SI and si:
                unit, factor = SI[code]
                value, low, high = value * factor, low * factor, high * factor
            elif unit == "K/uL" and rng.random() < 0.3:
                unit = "K/µL"
            text = _format_number(value)
            if code in ("IL6", "CRP") and value < 2.0:
                text, flag = "<2.0", ""
            elif code == "K" and rng.random() < 0.01:
                text, flag = "Hemolyzed", ""
            planted = PLANTED_LABS.get(story.index, {}).get((code, d)) if story.planted else None
            if planted is not None:
                text, flag = planted, _flag(float(planted), low, high) if planted[0].isdigit() else ""
            rows.append((resulted, f"{story.pid},{accession},{collected:%Y-%m-%d %H:%M},{resulted:%Y-%m-%d %H:%M},"
                                   f"{code},{loinc},{name},{text},{unit},{_format_number(low)},"
                                   f"{_format_number(high)},{flag},F"))
    return rows


# --- flow and qPCR --------------------------------------------------------------------------------------

def _count(value: int, scientific: bool) -> str:
    return f"{value:.2E}" if scientific else str(value)


def _mrd_row(story: Story, d: int, qc: str, regated: bool = False) -> tuple[date, list[str]]:
    rng = story.rng
    collected = story.day(d)
    total = int(float(f"{rng.randint(200_000, 1_000_000):.2E}"))
    blasts = rng.randint(0, 8)
    cd22_abc = ""
    if story.relapse_day is not None and d >= story.relapse_day:
        blasts = int(total * (0.25 if story.morphologic_day is not None and d >= story.morphologic_day else 3e-4))
    if story.index == 10 and d == 28:           # too few events for the 1e-4 threshold
        total, blasts = 150_000, 3
    if story.index == 6 and d == 274:           # detectable, below the threshold
        total, blasts = 900_000, 60
    if regated:
        blasts += 2
    cd19 = cd22 = ""
    if blasts >= 20:
        cd19 = f"{rng.uniform(2, 15):.1f}"
        cd22 = f"{rng.uniform(80, 90):.1f}" if story.cd22_dim else f"{rng.uniform(92, 99):.1f}"
        cd22_abc = "" if rng.random() < 0.2 else f"{rng.uniform(700, 1200) if story.cd22_dim else rng.uniform(2500, 6000):.0f}"
    acquired = collected + timedelta(days=rng.randint(0, 2))
    label = "SCR" if d < 0 else f"D{d}"
    return acquired, [f"{story.pid}_BM_{label}.fcs", acquired.strftime("%d-%b-%Y").upper(), story.pid,
                      collected.isoformat(), "BM", qc, _count(total, rng.random() < 0.5), str(blasts),
                      f"{100 * blasts / total:.4f}", cd19, cd22, cd22_abc]


def _car_level(story: Story, d: int) -> float:
    peak_day = 7 if story.index % 2 else 14
    if d <= 0:
        return 0.0
    if d <= peak_day:
        return story.peak_pct * d / peak_day
    level = story.peak_pct * math.exp(-(d - peak_day) / 25) + 0.4 * math.exp(-(d - peak_day) / 200)
    return 0.0 if level < 0.05 else level


def _car_row(story: Story, d: int) -> tuple[date, list[str]]:
    rng = story.rng
    collected = story.day(d)
    pct = _car_level(story, d)
    cd3_events = rng.randint(5_000, 30_000)
    cd3_abs = rng.uniform(100, 300) if 0 < d <= 14 else rng.uniform(500, 1500)
    car19 = max(0.0, 0.8 - d / 150) if d > 0 else 1.0
    b_pct = 0.0 if story.bca_loss_day is None or d < story.bca_loss_day else rng.uniform(4, 10)
    if d < 0:
        b_pct = 0.1
    lymphocytes = cd3_abs / 0.8
    acquired = collected + timedelta(days=rng.randint(0, 1))
    label = "BL" if d < 0 else f"D{d}"
    return acquired, [f"{story.pid}_PB_{label}.fcs", acquired.strftime("%d-%b-%Y").upper(), story.pid,
                      collected.isoformat(), "PB", "FAIL" if rng.random() < 0.02 else "PASS",
                      _count(cd3_events, rng.random() < 0.4), f"{cd3_abs:.0f}", f"{pct:.2f}",
                      str(round(cd3_events * pct / 100)), f"{car19:.2f}", f"{b_pct:.2f}",
                      f"{lymphocytes * b_pct / 100:.1f}"]


def _copies(value: float, rng: random.Random) -> str:
    if value < 50:
        return rng.choice(("BLQ", "ND", "<LLOQ"))
    return f"{value:.1f}"


def _qpcr_rows(story: Story, d: int, run: str) -> list[list[str]]:
    rng = story.rng
    collected = story.day(d)
    cd22 = _car_level(story, d) / max(story.peak_pct, 1) * rng.uniform(2e4, 8e4)
    cd19 = max(0.0, 400 * math.exp(-d / 60)) if d > 0 else 500.0
    sample = f"Q{story.index:05d}{d + 10:04d}"
    return [[story.pid, sample, collected.strftime("%m/%d/%Y"), "PB", target, _copies(value, rng), "50",
             f"{rng.uniform(80, 120):.0f}", run, "PASS"] for target, value in (("CD22CAR", cd22), ("CD19CAR", cd19))]


# --- EDC ------------------------------------------------------------------------------------------------

def _edc_records(story: Story) -> dict[str, list[tuple[date, list[str]]]]:
    """Per instrument: (the date the record exists from, its fields after record_id)."""
    rng = story.rng
    pid = story.pid
    records: dict[str, list[tuple[date, list[str]]]] = {name: [] for name in EDC_HEADERS}
    product = 1 if story.age < 18 else rng.choice((1, 2, 3))
    records["enrollment"].append((story.consent, [pid, "screening_arm_1", story.consent.isoformat(),
                                                  story.dob.isoformat(), str(story.sex), f"{story.weight}",
                                                  f"{story.height}", str(product), story.cd19_infusion.isoformat(),
                                                  "0"]))
    failing = story.infusion is None
    records["eligibility"].append((story.consent, [pid, "screening_arm_1", "38" if failing else
                                                   f"{rng.uniform(52, 68):.0f}", "22" if failing else
                                                   f"{rng.uniform(30, 40):.0f}", f"{rng.uniform(95, 100):.0f}", "",
                                                   "0" if failing else "1"]))
    if story.infusion is None:
        records["followup"].append((story.consent, [pid, "followup_arm_1", (story.consent + timedelta(days=20))
                                                    .isoformat(), "1", "", "", "", "",
                                                    (story.consent + timedelta(days=20)).isoformat()]))
        return records
    instance = 0
    for agent, per_m2, days in ((1, 30, (-5, -4, -3, -2)), (2, 500, (-3, -2))):
        for d in days:
            instance += 1
            dose = per_m2 * story.bsa * (1.2 if (story.index == 6 and agent == 2 and d == -2) else 1.0)
            records["treatment"].append((story.day(d), [pid, "treatment_arm_1", "treatment", str(instance),
                                                        str(agent), story.day(d).isoformat(), f"{dose:.1f}", "",
                                                        f"{story.bsa:.2f}"]))
    instance += 1
    records["treatment"].append((story.day(0), [pid, "treatment_arm_1", "treatment", str(instance), "3",
                                                story.day(0).isoformat(), "", rng.choice(("1000000", "3000000")),
                                                ""]))
    ice = story.age >= 12
    for i, d in enumerate(CRS_DAYS, start=1):
        if not _alive_on(story, d):
            break
        level = _crs_level(story, d)
        toci = int(story.crs_grade >= 2 and level >= 2)
        masked = story.crs_grade >= 2 and d == story.crs_onset + story.crs_days - 1
        fever = level >= 1 and not masked
        hypotension = {3: 2, 2: 1}.get(level, 0) if not masked else 0
        oxygen = 1 if level >= 2 else 0
        inv = (level + 1 if story.discordant and level == story.crs_grade else level) if level else 0
        records["crs_daily"].append((story.day(d), [pid, "treatment_arm_1", "crs_daily", str(i),
                                                    story.day(d).isoformat(),
                                                    f"{rng.uniform(38.2, 39.8) if fever else rng.uniform(36.5, 37.7):.1f}",
                                                    str(hypotension), "0", str(oxygen), str(toci),
                                                    str(int(level >= 3)), str(inv)]))
        neuro = story.icans_grade if story.icans_grade and 4 <= d <= 5 else 0
        score = {0: 10, 1: 8, 2: 5, 3: 2}[neuro] if ice else {0: 0, 1: 4, 2: 6, 3: 10}[neuro]
        records["icans_daily"].append((story.day(d), [pid, "treatment_arm_1", "icans_daily", str(i),
                                                      story.day(d).isoformat(), "1" if ice else "2", str(score), "0",
                                                      "1" if neuro >= 2 else "0", "0", "0", "0", str(neuro)]))
    aes = []
    if rng.random() < 0.6:
        aes.append(("Febrile neutropenia", 3, 5, 9, 1, 1))
    if story.crs_grade:
        aes.append(("Cytokine release syndrome", story.crs_grade, story.crs_onset,
                    story.crs_onset + story.crs_days, int(story.crs_grade >= 3), 1))
    if story.crs_grade >= 2:
        aes.append(("Hypotension", 2, story.crs_onset + 1, story.crs_onset + 3, 0, 1))
    if story.death_day is not None:
        aes.append(("Disease progression", 5, story.death_day, story.death_day, 1, 0))
    for i, (term, grade, onset, resolved, serious, related) in enumerate(aes, start=1):
        if _alive_on(story, onset) or term == "Disease progression":
            records["adverse_events"].append((story.day(onset), [
                pid, "treatment_arm_1", "adverse_events", str(i), term, str(grade), story.day(onset).isoformat(),
                story.day(resolved).isoformat() if story.day(resolved) < story.end else "", str(serious),
                str(related)]))
    for i, d in enumerate(MARROW_DAYS, start=1):
        if not _alive_on(story, d):
            break
        relapsed = story.relapse_day is not None and d >= story.relapse_day
        morph = story.morphologic_day is not None and d >= story.morphologic_day
        response = "3" if morph else ("2" if relapsed else "1")
        records["disease_assessment"].append((story.day(d), [
            pid, "followup_arm_1", "disease_assessment", str(i), story.day(d).isoformat(),
            f"{25.0 if morph else rng.uniform(0, 2):.1f}", "1", "0", response]))
    last_day = min((story.end - timedelta(days=1) - story.infusion).days,
                   story.death_day if story.death_day is not None else 10_000)
    followup = [pid, "followup_arm_1", story.day(last_day).isoformat(),
                "2" if story.death_day is not None else "1",
                story.day(story.death_day).isoformat() if story.death_day is not None else "",
                str(story.death_cause) if story.death_cause else "",
                story.day(story.hsct_day).isoformat() if story.hsct_day is not None and _alive_on(story, story.hsct_day) else "",
                story.day(story.next_therapy_day).isoformat() if story.next_therapy_day is not None
                and story.day(story.next_therapy_day) < story.end else "",
                story.day(story.death_day).isoformat() if story.death_day is not None else ""]
    records["followup"].append((story.day(last_day), followup))
    return records


# --- writing --------------------------------------------------------------------------------------------

def _write(path: Path, header: str, rows: list[str], *, bom: bool = False, crlf: bool = False,
           trailer: bool = False) -> Path:
    newline = "\r\n" if crlf else "\n"
    lines = [header, *rows] + (["*** END OF REPORT ***"] if trailer else [])
    data = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return path


def _lab_export_time(resulted: datetime, as_of: date) -> datetime:
    periods = math.ceil((resulted - LAB_EPOCH) / LAB_PERIOD)
    return min(LAB_EPOCH + periods * LAB_PERIOD, datetime.combine(as_of, time(23, 0)))


def _monthly_export(acquired: date, day_of_month: int, at: time, as_of: date) -> datetime:
    month = acquired.replace(day=1) + timedelta(days=32)
    return min(datetime.combine(month.replace(day=day_of_month), at), datetime.combine(as_of, time(23, 30)))


def _flow_summary(rows: list[list[str]], width: int) -> list[str]:
    """FlowJo's Mean and SD rows over the statistic columns (exports.md §B)."""
    lines = []
    for label, fn in (("Mean", statistics.fmean), ("SD", statistics.pstdev)):
        cells = [label] + [""] * 5
        for column in range(6, width):
            values = [float(r[column]) for r in rows if r[column] not in ("",)]
            cells.append(f"{fn(values):.4g}" if values else "")
        lines.append(",".join(cells))
    return lines


def generate(out_dir: Path, participants: int = 20, seed: int = 22, as_of: date = date(2028, 6, 30),
             progress: Callable[[int], None] | None = None) -> list[Path]:
    """Write the export files into out_dir; return the paths written (sorted)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    demo = participants <= 50
    labs: dict[datetime, list[str]] = {}
    mrd: dict[datetime, list[list[str]]] = {}
    car: dict[datetime, list[list[str]]] = {}
    qpcr: dict[datetime, list[list[str]]] = {}
    edc: dict[str, list[tuple[date, list[str]]]] = {name: [] for name in EDC_HEADERS}
    for index in range(1, participants + 1):
        story = _story(index, participants, seed, as_of)
        for resulted, row in _lab_rows(story):
            labs.setdefault(_lab_export_time(resulted, as_of), []).append(row)
        for d in (-14, *MARROW_DAYS):
            if (story.infusion is None and d > 0) or (d > 0 and not _alive_on(story, d)):
                continue
            qc = "FAIL" if story.rng.random() < 0.03 else "PASS"
            acquired, row = _mrd_row(story, d, qc)
            if acquired < as_of:
                mrd.setdefault(_monthly_export(acquired, 1, time(9, 0), as_of), []).append(row)
        for d in (-5, *BLOOD_DAYS):
            if story.infusion is None or not _alive_on(story, d):
                continue
            acquired, row = _car_row(story, d)
            if acquired < as_of:
                car.setdefault(_monthly_export(acquired, 1, time(9, 30), as_of), []).append(row)
                export = _monthly_export(story.day(d), 3, time(11, 0), as_of)
                qpcr.setdefault(export, []).extend(_qpcr_rows(story, d, f"R{export:%Y%m}"))
        for name, records in _edc_records(story).items():
            edc[name].extend(records)
        if progress is not None:
            progress(index)
    written: list[Path] = []
    if demo:
        written += _defects(out_dir, labs, mrd, qpcr, as_of, seed)
    for i, (export, rows) in enumerate(sorted(labs.items())):
        written.append(_write(out_dir / f"labs_{export:%Y%m%dT%H%M}.csv", LAB_HEADER, rows,
                              crlf=i % 2 == 0, trailer=i % 3 == 0, bom=i % 5 == 1))
    rng = random.Random(seed)
    for prefix, header, batches in (("flow_mrd", MRD_HEADER, mrd), ("flow_car", CAR_HEADER, car)):
        for i, (export, rows) in enumerate(sorted(batches.items())):
            width = len(header.split(","))
            controls = [",".join([f"FMO_CD22_{export:%Y%m}.fcs", export.strftime("%d-%b-%Y").upper(), "", "",
                                  "BM" if prefix == "flow_mrd" else "PB", "PASS"] + ["1000"] + [""] * (width - 7)),
                        ",".join([f"Compensation Controls_{rng.randint(1, 9)}.fcs"] + [""] * (width - 1))]
            lines = [",".join(r) for r in rows] + controls + _flow_summary(rows, width)
            written.append(_write(out_dir / f"{prefix}_{export:%Y%m%dT%H%M}.csv", header, lines, bom=i % 4 == 2))
    for export, rows in sorted(qpcr.items()):
        written.append(_write(out_dir / f"qpcr_{export:%Y%m%dT%H%M}.csv", QPCR_HEADER, [",".join(r) for r in rows]))
    snapshots = (datetime.combine(as_of - timedelta(days=182), time(1, 0)), datetime.combine(as_of, time(1, 0)))
    for name, records in edc.items():
        for snapshot in snapshots:
            rows = [",".join(fields) for since, fields in records if since <= snapshot.date()]
            if demo and name == "adverse_events" and snapshot == snapshots[0]:
                rows.append("CD22-001,treatment_arm_1,adverse_events,99,Rash maculo-papular,1,"
                            f"{(snapshot.date() - timedelta(days=30)).isoformat()},,0,0")  # deleted later
            if rows:
                written.append(_write(out_dir / f"edc_{name}_{snapshot:%Y%m%dT%H%M}.csv", EDC_HEADERS[name], rows))
    return sorted(written)


def _defects(out_dir: Path, labs: dict, mrd: dict, qpcr: dict, as_of: date, seed: int) -> list[Path]:
    """The deliberate defects of the default demo (docstring of this module)."""
    if len(labs) < 7 or len(mrd) < 4 or len(qpcr) < 3:
        raise ValueError(f"as of {as_of} the cohort has {len(labs)} lab, {len(mrd)} MRD and {len(qpcr)} qPCR "
                         "exports; the deliberate defects need at least 7, 4 and 3: choose a later --as-of")
    rng = random.Random(seed + 1)
    exports = sorted(labs)
    first, later = exports[3], exports[4:7]
    row = next(r for r in labs[first] if r.startswith("CD22-001,") and ",ANC," in r)
    fields = row.split(",")
    unknown_unit = list(fields)
    unknown_unit[1], unknown_unit[7], unknown_unit[8] = fields[1] + "X", "1200", "cells/mm3"
    labs[first].append(",".join(unknown_unit))                                  # unknown unit
    for pid in ("CD-22-7", "CD22-099"):                                          # unknown participants
        stranger = list(fields)
        stranger[0], stranger[1] = pid, f"B{rng.randint(1000, 9999)}"
        labs[first].append(",".join(stranger))
    fields[12] = "P"
    labs[first][labs[first].index(row)] = ",".join(fields)                     # P, then F, then C
    for export, status, value in ((later[0], "F", fields[7]), (later[2], "C", _format_number(float(fields[7]) * 1.5))):
        corrected = list(fields)
        corrected[3] = (export - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M")
        corrected[7], corrected[12] = value, status
        labs[export].append(",".join(corrected))
    mrd_exports = sorted(mrd)
    regated = list(mrd[mrd_exports[1]][0])
    regated[7] = str(int(regated[7]) + 2)
    mrd.setdefault(mrd_exports[2], []).append(regated)                          # re-gated sample
    qpcr_exports = sorted(qpcr)
    rerun = list(qpcr[qpcr_exports[1]][0])
    rerun[8] = rerun[8] + "-RERUN"
    qpcr.setdefault(qpcr_exports[2], []).append(rerun)                         # qPCR rerun
    original = _write(out_dir / f"qpcr_{qpcr_exports[0]:%Y%m%dT%H%M}.csv", QPCR_HEADER,
                      [",".join(r) for r in qpcr.pop(qpcr_exports[0])])
    duplicate = out_dir / f"qpcr_{qpcr_exports[0] + timedelta(days=1):%Y%m%dT%H%M}.csv"
    duplicate.write_bytes(original.read_bytes())                                # same bytes, another name
    not_csv = out_dir / f"flow_mrd_{mrd_exports[3] + timedelta(hours=1):%Y%m%dT%H%M}.csv"
    not_csv.write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(rng.getrandbits(8) for _ in range(200)))
    return [original, duplicate, not_csv]
