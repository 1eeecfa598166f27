"""The `car22` command: ingest the inbox, rebuild the trial report, write the submission package, write demo
exports.

Exit codes: 0 success (a run that quarantined files still completed), 1 the run failed, 2 usage error.
Every path can come from a flag or a CAR22_* environment variable (flags win).
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Prefect without a server starts a temporary one: keep it quiet and offline (no telemetry here).
QUIET_PREFECT = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # The terminal gets a progress bar and the summary; per-file lines and errors go to Prefect's log.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL",
    "PREFECT_SERVER_LOGGING_LEVEL": "ERROR",
    "GX_ANALYTICS_ENABLED": "false",
}


def _paths(args: argparse.Namespace):
    """The folders from the flags a subcommand has, the rest from CAR22_* variables and the data folder."""
    from car22.night.paths import Paths

    flag = {"inbox": "inbox", "warehouse": "warehouse", "archive": "archive", "reports": "reports",
            "work": "work_dir"}
    return Paths.resolve(getattr(args, "data_dir", None),
                         **{name: getattr(args, attribute, None) for name, attribute in flag.items()})


def _version() -> str:
    try:
        return version("car22")
    except PackageNotFoundError:
        return "unknown"


class _Command(argparse.ArgumentParser):
    """A subcommand's parser: an unknown flag is reported with this subcommand's usage, not the top level's."""

    def parse_known_args(self, args=None, namespace=None):
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _flags() -> dict[str, argparse.ArgumentParser]:
    """Flags shared by several subcommands, as parent parsers: a subcommand lists the groups it uses.
    `-q` and `--version` are accepted before and after the subcommand (SUPPRESS: the subcommand's default
    does not overwrite a `-q` given before it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bar")
    common.add_argument("--version", action="version", version=f"car22 {_version()}")
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data-dir", type=Path, help="root of the default folders (env CAR22_DATA_DIR; ./data)")
    data.add_argument("--warehouse", type=Path,
                      help="published read-only DuckDB file (env CAR22_WAREHOUSE; DATA/warehouse.duckdb)")
    night = argparse.ArgumentParser(add_help=False)
    night.add_argument("--inbox", type=Path, help="folder of new exports (env CAR22_INBOX; DATA/inbox)")
    night.add_argument("--archive", type=Path, help="byte-for-byte copies of every file (env CAR22_ARCHIVE)")
    night.add_argument("--reports", type=Path, help="Data Docs and trial report (env CAR22_REPORTS)")
    night.add_argument("--work-dir", type=Path, help="the writer's private folder (env CAR22_WORK)")
    night.add_argument("--protocol", type=Path, help="protocol settings file (env CAR22_PROTOCOL)")
    return {"common": common, "data": data, "night": night}


def cmd_ingest(args: argparse.Namespace) -> int:
    for key, value in QUIET_PREFECT.items():
        os.environ.setdefault(key, value)
    paths = _paths(args)
    if not paths.inbox.is_dir():
        print(f"car22: inbox {paths.inbox} is not a folder: create it and drop the exports there, "
              f"or pass --inbox", file=sys.stderr)
        return EXIT_USAGE
    from tqdm import tqdm

    from car22.night import progress
    from car22.reports.run_summary import format_summary
    from flows.nightly import nightly

    bar = tqdm(total=0, unit="file", desc="ingest", disable=not sys.stderr.isatty() or args.quiet)

    def on_progress(event: str, count: int) -> None:
        if event == "total":
            bar.total = count
            bar.refresh()
        else:
            bar.update(count)

    progress.listen(on_progress)
    try:
        summary = nightly(inbox=str(paths.inbox), warehouse=str(paths.warehouse), archive=str(paths.archive),
                          reports=str(paths.reports), work=str(paths.work),
                          protocol_file=str(args.protocol) if args.protocol else None)
    except Exception as error:  # the run failed: say why and what to do, without a traceback
        bar.close()
        from car22.night.paths import explain_failure

        print(f"car22: the run failed: {type(error).__name__}: {error}\n"
              f"Nothing was published; yesterday's warehouse is intact and the files wait in "
              f"{paths.work / 'pending'} or the inbox for the next run.\n"
              f"What to do: {explain_failure(error)} (`car22 ingest`).", file=sys.stderr)
        return EXIT_FAILED
    finally:
        progress.listen(None)
    bar.close()
    print(format_summary(summary))
    print(f"  warehouse (read-only): {paths.warehouse}")
    report = paths.reports / "trial_report.html"
    print(f"  trial report:          {report}" + ("" if report.exists() else
                                                   "  (NOT WRITTEN: see the Prefect log, then `car22 report`)"))
    print(f"  Data Docs:             {paths.reports / 'data_docs' / 'index.html'}")
    from car22.submission.manifest import package_folder, read_manifest

    package = package_folder(paths.warehouse)
    print(f"  submission package:    {package}" + ("" if read_manifest(package) else
                                                   "  (NOT WRITTEN: see the Prefect log, then `car22 submission`)"))
    print(f"  archive:               {paths.archive}")
    return EXIT_OK


def cmd_demo_data(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from car22.demo import generate

    try:
        with tqdm(total=args.participants, unit="participant", desc="demo-data",
                  disable=not sys.stderr.isatty() or args.quiet) as bar:
            written = generate(args.out, participants=args.participants, seed=args.seed, as_of=args.as_of,
                               progress=lambda done: bar.update(done - bar.n))
    except ValueError as problem:  # a date too early for the demo's stories: say which and what to do
        print(f"car22: {problem}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {len(written)} export files to {args.out}")
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    paths = _paths(args)
    if not paths.warehouse.is_file():
        print(f"car22: no warehouse at {paths.warehouse}: run `car22 ingest` first or pass --warehouse",
              file=sys.stderr)
        return EXIT_USAGE
    from car22.reports.trial_report import write_report

    out = args.out or paths.reports
    print(f"trial report: {write_report(paths.warehouse, out)}")
    return EXIT_OK


def cmd_data_issues(args: argparse.Namespace) -> int:
    """List the data issues of the published warehouse, or write a decisions file into the inbox."""
    from car22.reports import data_issues

    paths = _paths(args)
    decide = args.accept or args.reopen
    if args.decide and not decide or decide and not args.decide:
        print("car22: --decide ID... needs --accept or --reopen (and --accept/--reopen need --decide)",
              file=sys.stderr)
        return EXIT_USAGE
    if args.decide and (not (args.reason or "").strip() or not data_issues.USER.fullmatch(args.by or "")):
        print("car22: a decision needs --reason TEXT and --by USER (initials or a login: letters, digits, . _ -)",
              file=sys.stderr)
        return EXIT_USAGE
    if not paths.warehouse.is_file():
        print(f"car22: no warehouse at {paths.warehouse}: run `car22 ingest` first or pass --warehouse",
              file=sys.stderr)
        return EXIT_USAGE
    import duckdb

    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        issues = (data_issues.list_issues(con, status="all") if args.decide else
                  data_issues.list_issues(con, status=args.status, source=args.source, older_than=args.older_than))
    if args.decide:
        known = {i["issue_id"] for i in issues}
        unknown = [i for i in args.decide if i not in known]
        if unknown:
            print(f"car22: no such issue in {paths.warehouse}: {', '.join(unknown)} (nothing written)",
                  file=sys.stderr)
            return EXIT_FAILED
        written = data_issues.write_decisions(paths.inbox, args.decide, "ACCEPT" if args.accept else "REOPEN",
                                              args.reason.strip(), args.by)
        print(f"wrote {written}: {len(args.decide)} decision(s); the next run (`car22 ingest`) records them")
        return EXIT_OK
    print(data_issues.as_csv(issues) if args.csv else data_issues.as_table(issues), end="" if args.csv else "\n")
    return EXIT_OK


def cmd_submission(args: argparse.Namespace) -> int:
    from car22.night.paths import Paths
    from car22.submission.manifest import package_folder

    warehouse = Paths.resolve(args.data_dir, warehouse=args.warehouse).warehouse
    if not warehouse.is_file():
        print(f"car22: no warehouse at {warehouse}: run `car22 ingest` first or pass --warehouse", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or package_folder(warehouse)
    from car22.config import load_protocol
    from car22.submission.package import write_package

    try:
        written = write_package(warehouse, out, load_protocol(args.protocol), whole=args.whole)
    except Exception as error:  # the old package, if any, is untouched: say why without a traceback
        print(f"car22: the submission package was not written: {type(error).__name__}: {error}\n"
              f"The package in {out}, if any, is unchanged.", file=sys.stderr)
        return EXIT_FAILED
    print(f"submission package: {written.folder} ({len(written.records)} datasets; {written.reuse()}; "
          f"written {written.written_at})")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser; each subcommand is one block naming its shared flag groups (`_flags`)."""
    flags = _flags()
    # The top level's own copy of the common flags: parents share their actions, and its default must not
    # become the subcommands' (which would overwrite a `-q` given before the subcommand).
    parser = argparse.ArgumentParser(prog="car22", description=__doc__.split("\n")[0],
                                     parents=[_flags()["common"]],
                                     epilog="Exit codes: 0 success, 1 run failed, 2 usage error.")
    parser.set_defaults(quiet=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Command)

    ingest = commands.add_parser("ingest", parents=[flags["common"], flags["data"], flags["night"]],
                                 help="run the nightly flow once over the inbox",
                                 description="Run the nightly flow once: every new file of the inbox is "
                                             "archived, validated and loaded; the trial tables are derived and "
                                             "the warehouse is published. Exits 0 when the run completed, even "
                                             "if files were quarantined; 1 when the run itself failed.")
    ingest.set_defaults(handler=cmd_ingest)

    rebuild = commands.add_parser("report", parents=[flags["common"], flags["data"]],
                                  help="rebuild the trial summary page from a published warehouse",
                                  description="Rebuild the monitors' trial summary and the participant pages "
                                              "(static HTML, works offline) from a published warehouse, "
                                              "without ingesting anything.")
    rebuild.add_argument("--out", type=Path,
                         help="folder for trial_report.html (env CAR22_REPORTS; DATA/reports)")
    rebuild.set_defaults(handler=cmd_report)

    package = commands.add_parser(
        "submission", parents=[flags["common"], flags["data"]],
        help="write the CDISC submission package (SDTM, ADaM, define.xml) from a published warehouse",
        description="Write the CDISC package from a published warehouse: sdtm/ and adam/ with one SAS transport "
                    "v5 file (.xpt) and one Dataset-JSON v1.1 file (.json) per dataset and a define.xml each, and "
                    "manifest.json. The package is replaced as a whole. Exits 0 when written, 1 when it could not "
                    "be written (the previous package stays), 2 on a usage error.")
    package.add_argument("--out", type=Path, help="package folder (default: submission/ beside the warehouse)")
    package.add_argument("--protocol", type=Path, help="protocol settings file (env CAR22_PROTOCOL)")
    package.add_argument("--whole", action="store_true",
                         help="encode every record anew instead of copying the unchanged subjects' records from the "
                              "previous package (the bytes are the same either way)")
    package.set_defaults(handler=cmd_submission)

    issues = commands.add_parser(
        "data-issues", parents=[flags["common"], flags["data"]],
        help="the data manager's work list; --decide writes a decisions file into the inbox",
        description="List the data issues of the published warehouse (ops.data_issues): by source and check, "
                    "oldest first. With --decide, write dm_decisions_YYYYMMDDTHHMM.csv into the inbox for the "
                    "next run (exports.md §E); the warehouse itself is never written. Exits 0 on success, 1 "
                    "when --decide names an issue the warehouse does not have, 2 on a usage error.")
    issues.add_argument("--inbox", type=Path, help="where --decide writes its file (env CAR22_INBOX; DATA/inbox)")
    issues.add_argument("--status", choices=("open", "resolved", "accepted", "all"), default="open",
                        help="which issues to list (default open)")
    issues.add_argument("--source", help="only this source (labs, flow_mrd, edc_<instrument>, ...)")
    issues.add_argument("--older-than", type=int, metavar="DAYS", help="only issues first seen more than DAYS ago")
    issues.add_argument("--csv", action="store_true", help="CSV on standard output, for a spreadsheet")
    issues.add_argument("--decide", nargs="+", metavar="ID", help="issue ids to decide on")
    verdict = issues.add_mutually_exclusive_group()
    verdict.add_argument("--accept", action="store_true", help="close the issues: no correction will come")
    verdict.add_argument("--reopen", action="store_true", help="open the issues again")
    issues.add_argument("--reason", help="why (required with --decide)")
    issues.add_argument("--by", metavar="USER", help="the data manager's user id (required with --decide)")
    issues.set_defaults(handler=cmd_data_issues)

    demo = commands.add_parser("demo-data", parents=[flags["common"]],
                               help="write a realistic, deterministic set of demo exports",
                               description="Write realistic demo exports (with deliberate defects) for a "
                                           "cohort of N participants; the same seed gives the same bytes.")
    demo.add_argument("--out", type=Path, default=Path(os.environ.get("CAR22_INBOX") or "data/inbox"),
                      help="folder to write into (env CAR22_INBOX; data/inbox)")
    demo.add_argument("--participants", type=int, default=20, help="cohort size (default 20)")
    demo.add_argument("--seed", type=int, default=22, help="random seed (default 22)")
    demo.add_argument("--as-of", type=date.fromisoformat, default=date(2028, 6, 30),
                      help="data cut-off date, YYYY-MM-DD (default 2028-06-30)")
    demo.set_defaults(handler=cmd_demo_data)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("car22: interrupted; nothing was published. Run the command again to finish.", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
