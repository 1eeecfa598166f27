"""The demo exports: deterministic, every quirk of exports.md and every deliberate defect present."""
from __future__ import annotations

import hashlib
from datetime import date

import pytest

from car22.demo import generate
from car22.intake.reading import export_time, read_export

AS_OF = date(2028, 6, 30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("demo")
    return {p.name: p.read_bytes() for p in generate(folder, seed=22)}


def digest(files: dict[str, bytes]) -> str:
    return hashlib.sha256(b"".join(name.encode() + data for name, data in sorted(files.items()))).hexdigest()


def test_same_seed_same_bytes_other_seed_other_bytes(demo, tmp_path):
    again = {p.name: p.read_bytes() for p in generate(tmp_path / "a", seed=22)}
    other = {p.name: p.read_bytes() for p in generate(tmp_path / "b", seed=23)}
    assert digest(again) == digest(demo) and digest(other) != digest(demo)


def test_every_file_but_the_defect_is_a_recognised_export(demo):
    sources = {}
    for name, data in demo.items():
        if data.startswith(b"PK"):
            continue
        rows = read_export(data)
        assert name.startswith(rows.source.prefix), name
        assert not rows.malformed
        sources[rows.source.name] = sources.get(rows.source.name, 0) + 1
    assert len(sources) == 12


def test_quirks_are_exercised(demo):
    everything = b"".join(demo.values())
    assert any(d.startswith(b"\xef\xbb\xbf") for d in demo.values())
    assert any(b"\r\n" in d for n, d in demo.items() if n.startswith("labs"))
    assert any(d.rstrip().endswith(b"*** END OF REPORT ***") for d in demo.values())
    assert all(d.lstrip(b"\xef\xbb\xbf").startswith(b",$DATE") for n, d in demo.items()
               if n.startswith("flow") and not d.startswith(b"PK"))
    assert b"\nMean," in everything and b"\nSD," in everything and b"FMO_" in everything
    assert b"E+05" in everything
    assert b"-APR-2026" in everything or b"-MAR-2026" in everything
    assert b"BLQ" in everything and b"<2.0" in everything
    assert "K/µL".encode() in everything and b"K/uL" in everything and "µmol/L".encode() in everything
    assert b",crs_daily,14," in everything


def test_deliberate_defects_are_present(demo):
    everything = b"".join(demo.values())
    assert b"cells/mm3" in everything and b"CD-22-7," in everything and b"CD22-099," in everything
    digests = [hashlib.sha256(d).hexdigest() for n, d in demo.items() if n.startswith("qpcr")]
    assert len(digests) != len(set(digests))
    assert sum(d.startswith(b"PK\x03\x04") for d in demo.values()) == 1
    statuses = [line.split(b",")[-1].strip() for line in everything.splitlines()
                if line.startswith(b"CD22-001,A00001") and b",ANC," in line and b"cells/mm3" not in line]
    assert sorted(set(statuses) & {b"P", b"F", b"C"}) == [b"C", b"F", b"P"]
    ae = sorted(n for n in demo if n.startswith("edc_adverse_events"))
    assert b"Rash maculo-papular" in demo[ae[0]] and b"Rash maculo-papular" not in demo[ae[-1]]


def test_no_date_after_the_data_cut_and_one_participant_never_infused(demo):
    for name in demo:
        exported = export_time(name)
        assert exported is not None and exported.date() <= AS_OF
    treatment = demo[max(n for n in demo if n.startswith("edc_treatment"))].decode()
    infused = {line.split(",")[0] for line in treatment.splitlines() if line.split(",")[4:5] == ["3"]}
    assert len(infused) == 19 and "CD22-002" not in infused
    followup = demo[max(n for n in demo if n.startswith("edc_followup"))].decode().splitlines()[1:]
    assert sum(line.split(",")[3] == "2" for line in followup) == 1        # one death
    assert sum(bool(line.split(",")[6]) for line in followup) == 1         # one HSCT
