"""Benchmark the nightly run against bare DuckDB, in the same run (issue: "the ratio is the figure that counts").

    python bench/run.py --participants 2000          (make bench N=2000)

1. Demo exports for N participants (generated once per N and seed, kept under bench/out/).
2. Cold run of the nightly flow on all but the newest lab export: wall time, rows/s and peak RSS per stage
   (parse, validate, load, core, derive, issues, publish, submission, report; "other" is the rest of the
   flow after Prefect's start).
3. Baseline: bench/baseline.py on the same files (DuckDB read_csv + SQL, nothing else), before the nights and
   again after them; the ratios are against the mean of the two, so that the machine's drift during a run (the
   baseline alone took 44-75 s at 20,000 participants on one day) weighs less on them.
4. Incremental night: the held-back newest lab export on top of the cold warehouse, as a fraction of the cold
   run (issue #19: one lab export <= 5 % of the cold night).
5. Fixed cost: a run on an empty inbox, and how much of it is Prefect's start.
6. The two validation engines (DuckDB SQL and GX's pandas engine) agree on the benchmark's exports
   (bench/engines_agree.py): every file up to 2,000 participants, beyond that the newest two files of each
   source (GX's engine would take most of an hour on 20,000 participants' files). --no-agreement skips it.
Each measurement runs in its own process, so peak RSS (VmHWM) is the measurement's own, and starts after the files
the one before it wrote are on disk (os.sync): nights are a day apart, and the cold night's writes are not tonight's
cost.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STAGES = ("parse", "validate", "load", "core", "derive", "issues", "publish", "submission", "report")
# Up to this many participants the engines are compared on every file; beyond, on the newest files.
AGREEMENT_ALL_FILES_UP_TO = 2000


def measure_night(data_dir: str) -> dict:
    """One nightly flow in this process; its stage times and peak RSS."""
    from car22.night import timing
    from car22.night.paths import Paths

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
    start = time.perf_counter()
    from flows.nightly import nightly

    paths = Paths.under(Path(data_dir))
    summary = nightly(data_dir=data_dir, protocol_file=str(bench_protocol(Path(data_dir))))
    total = time.perf_counter() - start
    return {"total": total, "stages": dict(timing.seconds), "peak_rss_mb": dict(timing.peak_rss_mb),
            "prefect_start": timing.marks.get("flow_start", start) - start,
            "rows": summary.rows_read, "files": summary.files_seen, "warehouse": str(paths.warehouse),
            "process_peak_rss_mb": timing.process_peak_mb()}


def bench_protocol(folder: Path) -> Path:
    """The trial's protocol with the participant ID pattern widened: a consortium cohort has more than 999."""
    import yaml

    from car22.config import DEFAULT_PROTOCOL

    settings = yaml.safe_load(DEFAULT_PROTOCOL.read_text())
    settings["study"]["participant_id_pattern"] = "^CD22-[0-9]{3,6}$"
    path = folder / "protocol-bench.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def measure_baseline(inbox: str) -> dict:
    sys.path.insert(0, str(Path(__file__).parent))
    from baseline import run

    from car22.night import timing

    start = time.perf_counter()
    times = run(Path(inbox))
    return {"total": time.perf_counter() - start, **times,
            "process_peak_rss_mb": timing.process_peak_mb()}


def _child(kind: str, argument: str) -> dict:
    # Nights are a day apart: each measurement starts with what the one before it wrote on disk, instead of
    # paying for flushing it (the cold night writes an 11 GB package at 20,000 participants).
    os.sync()
    result = subprocess.run([sys.executable, __file__, f"--measure-{kind}", argument], capture_output=True,
                            text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0:
        raise SystemExit(f"{kind} measurement failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def exports(participants: int, seed: int, out: Path) -> tuple[list[Path], list[Path]]:
    """All files, split into the cold set and tonight's (the newest lab export)."""
    from car22.demo import generate

    folder = out / f"exports-{participants}-{seed}"
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        generate(folder, participants=participants, seed=seed, as_of=date(2028, 6, 30))
        (folder / ".complete").touch()
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    tonight = max((p for p in files if p.name.startswith("labs_")), key=lambda p: p.name)
    return [p for p in files if p != tonight], [tonight]


def stage_in(files: list[Path], inbox: Path) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    for path in files:
        shutil.copyfile(path, inbox / path.name)


def agreement(folder: Path, run_dir: Path, participants: int) -> dict:
    """bench/engines_agree.py in its own process, on every file or on the newest two files of each source."""
    chosen = folder
    if participants > AGREEMENT_ALL_FILES_UP_TO:
        chosen = run_dir / "agreement"
        shutil.rmtree(chosen, ignore_errors=True)
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
        by_source: dict[str, list[Path]] = {}
        for path in files:
            by_source.setdefault(path.name.rsplit("_", 1)[0], []).append(path)
        stage_in([p for paths in by_source.values() for p in paths[-2:]], chosen)
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("engines_agree.py")), str(chosen),
                             "--protocol", str(bench_protocol(run_dir))], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode not in (0, 1):
        raise SystemExit(f"engines agreement check failed:\n{result.stderr[-3000:]}")
    found = json.loads(result.stdout.strip().splitlines()[-1])
    return {**found, "sample": participants > AGREEMENT_ALL_FILES_UP_TO}


def mean_baseline(before: dict, after: dict) -> dict:
    """The baseline the ratios are against: each time the mean of the two measurements, the peak the larger."""
    return {**{key: (before[key] + after[key]) / 2 for key in ("total", "load", "derive")},
            "process_peak_rss_mb": max(before["process_peak_rss_mb"], after["process_peak_rss_mb"]),
            "measured": (before["total"], after["total"])}


def table(participants: int, cold: dict, baseline: dict, incremental: dict, empty: dict, lab_rows: int,
          agreed: dict | None) -> str:
    """The results page; `baseline` is mean_baseline's."""
    rows = cold["rows"]
    lines = [f"N = {participants} participants, {lab_rows:,} lab rows in the cold set, {rows:,} rows in all; "
             f"{os.cpu_count()} cores, {_memory_gb():.0f} GB, Python {platform.python_version()}; validation engine "
             f"{os.environ.get('CAR22_VALIDATION_ENGINE') or 'sql'} (CAR22_VALIDATION_ENGINE)", "",
             "| stage | pipeline s | rows/s | peak RSS MB | baseline s | ratio |", "| --- | --- | --- | --- | --- | --- |"]
    base = {"load": baseline["load"], "derive": baseline["derive"]}
    other = cold["total"] - cold["prefect_start"] - sum(cold["stages"].get(s, 0.0) for s in STAGES)
    for stage in STAGES:
        seconds = cold["stages"].get(stage, 0.0)
        b = base.get(stage)
        lines.append(f"| {stage} | {seconds:.1f} | {rows / seconds if seconds else 0:,.0f} | "
                     f"{cold['peak_rss_mb'].get(stage, 0):.0f} | {'' if b is None else f'{b:.1f}'} | "
                     f"{'' if b is None else f'{seconds / b:.1f}x'} |")
    read_parse_load = sum(cold["stages"].get(s, 0) for s in ("parse", "validate", "load", "core"))
    lines += [f"| other (the flow's own steps between stages) | {other:.1f} | | | | |",
              f"| Prefect's start | {cold['prefect_start']:.1f} | | | | |",f"| read+check+load (parse, validate, load, core) vs baseline read_csv | {read_parse_load:.1f} | | | "
              f"{baseline['load']:.1f} | {read_parse_load / baseline['load']:.1f}x |",
              f"| **overall** | **{cold['total']:.1f}** | {rows / cold['total']:,.0f} | "
              f"{cold['process_peak_rss_mb']:.0f} | **{baseline['total']:.1f}** | "
              f"**{cold['total'] / baseline['total']:.1f}x** |", "",
              f"- incremental night (one lab export, {incremental['rows']:,} rows): "
              f"{incremental['total']:.1f} s = {100 * incremental['total'] / cold['total']:.0f} % of the cold run "
              f"(Prefect start {incremental['prefect_start']:.1f} s; " + ", ".join(
                  f"{stage} {incremental['stages'].get(stage, 0.0):.1f} s" for stage in STAGES) + "; derive = "
              "core and mart of the touched participants)",
              f"- fixed cost (empty inbox): {empty['total']:.1f} s, of which Prefect's start "
              f"{empty['prefect_start']:.1f} s",
              f"- cold run: Prefect start {cold['prefect_start']:.1f} s; process peak RSS "
              f"{cold['process_peak_rss_mb']:.0f} MB; baseline peak RSS {baseline['process_peak_rss_mb']:.0f} MB",
              "- baseline: {:.1f} s before the nights, {:.1f} s after them; the table shows their mean".format(
                  *baseline["measured"])]
    if agreed is not None:
        scope = "the newest two files of each source" if agreed["sample"] else "every file"
        verdict = ("agree" if not agreed["disagreements"] else
                   f"DISAGREE on {len(agreed['disagreements'])} files: {', '.join(agreed['disagreements'][:5])}")
        lines.append(f"- validation engines (bench/engines_agree.py, {scope}): SQL and GX {verdict}; "
                     f"{agreed['files']} files, {agreed['rows']:,} rows, {agreed['expectation_results']:,} expectation "
                     f"results compared (SQL {agreed['sql_seconds']:.1f} s, GX pandas {agreed['gx_seconds']:.1f} s)")
    return "\n".join(lines)


def _memory_gb() -> float:
    with open("/proc/meminfo") as handle:
        return int(handle.readline().split()[1]) / 1024 / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--participants", "-n", type=int, default=int(os.environ.get("N", 2000)))
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("out"))
    parser.add_argument("--no-agreement", action="store_true", help="skip the validation engines' agreement check")
    parser.add_argument("--measure-night", help=argparse.SUPPRESS)
    parser.add_argument("--measure-baseline", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_night:
        print(json.dumps(measure_night(args.measure_night)))
        return 0
    if args.measure_baseline:
        print(json.dumps(measure_baseline(args.measure_baseline)))
        return 0
    print(f"generating exports for {args.participants} participants ...", file=sys.stderr)
    cold_files, tonight = exports(args.participants, args.seed, args.out)
    run_dir = args.out / f"run-{args.participants}"
    shutil.rmtree(run_dir, ignore_errors=True)
    stage_in(cold_files, run_dir / "cold" / "inbox")
    lab_rows = sum(sum(1 for _ in open(p, "rb")) - 1 for p in cold_files if p.name.startswith("labs_"))
    print("baseline ...", file=sys.stderr)
    baseline_before = _child("baseline", str(run_dir / "cold" / "inbox"))
    print("cold night ...", file=sys.stderr)
    cold = _child("night", str(run_dir / "cold"))
    print("incremental night ...", file=sys.stderr)
    stage_in(tonight, run_dir / "cold" / "inbox")
    incremental = _child("night", str(run_dir / "cold"))
    print("empty night ...", file=sys.stderr)
    empty = _child("night", str(run_dir / "cold"))
    print("baseline again ...", file=sys.stderr)
    stage_in(cold_files, run_dir / "baseline")
    baseline = mean_baseline(baseline_before, _child("baseline", str(run_dir / "baseline")))
    shutil.rmtree(run_dir / "baseline")
    agreed = None
    if not args.no_agreement:
        print("validation engines agreement ...", file=sys.stderr)
        agreed = agreement(args.out / f"exports-{args.participants}-{args.seed}", run_dir, args.participants)
    report = table(args.participants, cold, baseline, incremental, empty, lab_rows, agreed)
    (args.out / f"results-{args.participants}.md").write_text(report + "\n")
    print(report)
    return 1 if agreed and agreed["disagreements"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
