"""`evaluate`: a saved model's metrics on a labelled data file, H2O's model_performance.

    mpirun -n 4 python -m h2odl_mpi evaluate --model model.h5 --data test.csv --json perf.json

Every rank reads its share of the file and scores it; the metrics are combined exactly over
the ranks (performance.model_performance).  Rank 0 prints them as H2O does and, with
--json, writes them under the summary JSON's metric names plus H2O's tables
(ModelPerformance.as_dict(); NaN and infinities as null), atomically.  The JSON file is
checked before anything is read (not a directory or device, in a writable directory, not
the data or model file); errors are one line naming the file, column or parameter.
`--model` may be an ensemble file (h2odl_mpi.workflows.ensemble): its members' weighted mean is scored.
"""
from h2odl_mpi import params as P
from h2odl_mpi.atomic import write_bytes
from h2odl_mpi.collectives import rank_and_size
from h2odl_mpi.errors import UserError, agree
from h2odl_mpi.data.frame import Frame
from h2odl_mpi.data.frame.parse_options import na_strings_flag
from h2odl_mpi.evaluation.performance import AUC_TYPES, model_performance
from h2odl_mpi.evaluation.predict import load_for_scoring


def add_arguments(parser):
    parser.add_argument("--model", required=True, help="model file (HDF5) written by train --model_out")
    parser.add_argument("--data", required=True, help="labelled data file to score")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="write the metrics and tables as JSON (the summary JSON's metric names)")
    parser.add_argument("--threads", type=int, default=0,
                        help=f"kernel threads (0: all cores; at most {P.THREADS_PER_CORE} x the cores)")
    parser.add_argument("--auc_type", "--auc-type", dest="auc_type", default="AUTO", choices=AUC_TYPES,
                        help="multinomial AUC reported as auc (H2O's auc_type; AUTO: MACRO_OVR)")
    parser.add_argument("--na_strings", "--na-strings", dest="na_strings", default=None, type=na_strings_flag,
                        metavar="LIST", help="values read as missing in --data, besides empty fields, blanks, NA, "
                                             "NaN, nan, N/A and ?; comma separated (H2O-3's parse option "
                                             "na_strings; give the model's train --na_strings)")


def run(ns, comm):
    """The subcommand on every rank of `comm` (--threads checked by the CLI); exit status 0."""
    evaluate_file(ns.model, ns.data, ns.json, comm, threads=ns.threads or None, auc_type=ns.auc_type,
                  na_strings=getattr(ns, "na_strings", None))
    return 0


def evaluate_file(model_path, data_path, json_path=None, comm=None, threads=None, auc_type="AUTO",
                  say=print, na_strings=None):
    """Collective: the ModelPerformance of the model on the file; rank 0 says it and writes
    `json_path` (if given).  `na_strings`: H2O-3's parse option for the data file."""
    outputs = [("--json", json_path)] if json_path else []
    network, model, info, params, _attrs = load_for_scoring(
        model_path, comm, outputs=outputs, inputs=[("--data", data_path), ("--model", model_path)])
    frame = Frame.read(data_path, comm=comm, na_strings=na_strings)
    perf = model_performance(network, model, info, frame, comm, threads, params=params, auc_type=auc_type)
    error = None
    if rank_and_size(comm)[0] == 0:
        say(perf.text(on=data_path))
        if json_path:
            try:
                write_bytes(json_path, perf.to_json().encode())
            except OSError as e:
                error = UserError(f"--json {json_path}: cannot write: {e.strerror or e}")
    agree(comm, error, own_first=True)
    return perf
