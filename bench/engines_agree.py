"""Do the two validation engines agree on the benchmark's data? (issue #19: GX is the contract and the oracle)

    python bench/engines_agree.py FOLDER [--protocol FILE]

Every export in FOLDER is read as a night reads it (car22.loading.load.validation_input) and validated by the
compiled DuckDB SQL engine and by GX's own pandas engine; each expectation's outcome and every failing row with
its reason must be the same. Prints one JSON line (files, rows, expectation results compared, seconds per
engine, disagreements). Exit code 0 when they agree, 1 when they do not (the files are named), 2 on a usage
error.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def compare(folder: Path, protocol_file: Path | None) -> dict:
    from car22.config import load_protocol
    from car22.intake.reading import Unreadable, export_time, read_export
    from car22.intake.sources import EDC_ENROLLMENT
    from car22.loading.load import validation_input
    from car22.validation.runner import Validator

    protocol = load_protocol(str(protocol_file) if protocol_file else None)
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    frames = []
    for path in files:
        try:
            rows = read_export(path.read_bytes())
        except Unreadable:
            continue
        frames.append((path.name, rows.source, validation_input(rows)[2]))
    # The participants the exports enroll: the enrollment check then finds the same rows in both engines.
    enrolled = {pid for _, source, frame in frames if source is EDC_ENROLLMENT
                for pid in frame["participant_id"].dropna()}
    run_time = datetime.now()
    seconds = {"sql": 0.0, "gx": 0.0}
    compared, rows_checked, disagreements = 0, 0, []
    with tempfile.TemporaryDirectory() as docs:
        validators = {engine: Validator(Path(docs) / engine, protocol, engine=engine) for engine in seconds}
        for name, source, frame in frames:
            found = {}
            for engine, validator in validators.items():
                start = time.perf_counter()
                checked = validator.validate(source, frame, file_id=f"{engine}-{name}", file_name=name,
                                             export_time=export_time(name), run_time=run_time, enrolled_ids=enrolled)
                seconds[engine] += time.perf_counter() - start
                found[engine] = (checked.outcomes, checked.findings)
            compared += len(found["sql"][0])
            rows_checked += len(frame)
            if found["sql"] != found["gx"]:
                disagreements.append(name)
    return {"files": len(frames), "rows": rows_checked, "expectation_results": compared,
            "sql_seconds": round(seconds["sql"], 1), "gx_seconds": round(seconds["gx"], 1),
            "disagreements": disagreements}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("folder", type=Path, help="folder of export files (an inbox)")
    parser.add_argument("--protocol", type=Path, help="protocol settings file (default: the trial's)")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder of exports")
    result = compare(args.folder, args.protocol)
    print(json.dumps(result))
    return 1 if result["disagreements"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
