"""`describe`: read a data set into the column store and print H2O's frame summary.

Per column: type (int, real, enum), the chunk encodings used (with chunk counts), NA count,
mean / sd / min / max or the levels, and compressed versus float64 size.  `--json` prints
one JSON object instead (keys `rows`, `columns`, `compressed_bytes`, ...).  Under mpirun
every rank reads its share; only rank 0 prints.

    python -m h2odl_mpi.data.frame.describe --data h2odl_mpi/datasets/airlines/allyears2k_headers.csv.gz
"""
import argparse
import json
import sys
import time

from h2odl_mpi.collectives import rank_and_size
from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.parse_options import na_strings_flag


def add_arguments(parser):
    """Add the describe options to an argparse parser."""
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="file, directory, glob or zip archive (CSV, SVMLight or Parquet; "
                             "gzip/bz2 allowed)")
    parser.add_argument("--format", choices=("csv", "svmlight", "parquet"), default=None,
                        help="input format (default: detected)")
    parser.add_argument("--sep", default=None, help="CSV separator (default: detected)")
    parser.add_argument("--header", choices=("auto", "yes", "no"), default="auto",
                        help="CSV header line (default: detected)")
    parser.add_argument("--na_strings", "--na-strings", dest="na_strings", type=na_strings_flag, default=None,
                        metavar="LIST", help="values read as missing besides empty fields, blanks, NA, NaN, nan, "
                                             "N/A and ?; comma separated (H2O-3's parse option na_strings)")
    parser.add_argument("--replicate", action="store_true",
                        help="every rank reads every row (default: each rank reads its share)")
    parser.add_argument("--levels", type=int, default=5, metavar="N",
                        help="categorical levels to list per column (default 5)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def _communicator():
    try:
        from mpi4py import MPI
    except ImportError:
        return None
    return MPI.COMM_WORLD if MPI.COMM_WORLD.Get_size() > 1 else None


def run(args):
    """Read args.data, print its summary on rank 0; returns the exit status (0).

    Raises UserError for bad input (the same on every rank)."""
    from h2odl_mpi.data.frame.frame import Frame
    comm = _communicator()
    options = {}
    if args.format in (None, "csv"):
        options = {"sep": args.sep, "header": {"auto": None, "yes": True, "no": False}[args.header]}
    elif args.sep is not None or args.header != "auto":
        raise UserError("--sep and --header apply to CSV input only")
    started = time.perf_counter()
    options["na_strings"] = getattr(args, "na_strings", None)
    frame = Frame.read(args.data, comm=comm, replicate=args.replicate, format=args.format, **options)
    seconds = time.perf_counter() - started
    summaries = frame.summary()
    if rank_and_size(comm)[0] != 0:
        return 0
    report = {
        "data": str(args.data),
        "rows": frame.n_rows,
        "n_columns": frame.n_columns,
        "ranks": rank_and_size(comm)[1],
        "replicated": frame.replicated,
        "compressed_bytes": frame.compressed_bytes if not frame.replicated else frame.local_compressed_bytes,
        "float64_bytes": 8 * frame.n_rows * frame.n_columns,
        "ingest_seconds": round(seconds, 4),
        "columns": [s.to_dict() for s in summaries],
    }
    for column in report["columns"]:
        column["levels"] = column["levels"][:args.levels]
        column["level_counts"] = column["level_counts"][:args.levels]
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(format_table(report))
    return 0


def format_table(report):
    """The text form of a describe report."""
    ratio = report["compressed_bytes"] / report["float64_bytes"] if report["float64_bytes"] else 0.0
    lines = [f"{report['data']}: {report['rows']:,} rows x {report['n_columns']} columns, "
             f"{_size(report['compressed_bytes'])} compressed ({ratio:.1%} of "
             f"{_size(report['float64_bytes'])} as float64), read by {report['ranks']} rank(s)"
             f"{' (replicated)' if report['replicated'] else ''} in {report['ingest_seconds']:.2f} s",
             ""]
    header = ("column", "type", "NAs", "mean", "sd", "min", "max", "zeros", "compressed",
              "float64", "encodings (chunks) / levels")
    rows = [header]
    for c in report["columns"]:
        encodings = ", ".join(f"{k}x{v}" for k, v in c["encodings"].items())
        if c["type"] == "enum":
            levels = ", ".join(c["levels"])
            more = "..." if c["cardinality"] > len(c["levels"]) else ""
            stats = ("", "", "", "", "")
            detail = f"{encodings} | {c['cardinality']} levels: {levels}{more}"
        else:
            stats = tuple(_number(c[k]) for k in ("mean", "sd", "min", "max")) + (str(c["zero_count"]),)
            detail = encodings
        rows.append((c["name"], c["type"], str(c["na_count"])) + stats +
                    (_size(c["compressed_bytes"]), _size(c["float64_bytes"]), detail))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        cells = [r[0].ljust(widths[0])] + [r[i].rjust(widths[i]) for i in range(1, len(widths))]
        lines.append("  ".join(cells + [r[-1]]))
    return "\n".join(lines)


def _number(value):
    if value is None:
        return "NA"
    if isinstance(value, str):
        return value
    return f"{value:.6g}"


def _size(nbytes):
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes} B"


def main(argv=None):
    parser = add_arguments(argparse.ArgumentParser(
        prog="python -m h2odl_mpi.data.frame.describe", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
