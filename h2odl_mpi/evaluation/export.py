"""`python -m h2odl_mpi export --model M.h5 --mojo M.zip [--onnx M.onnx]`: a model file for
the runtimes H2O users deploy to: an H2O-3 Deep Learning MOJO (h2odl_mpi.model.mojo_writer;
h2o-genmodel's PredictCsv and H2O-3's upload_mojo read it) and an ONNX graph
(h2odl_mpi.model.onnx_writer; ONNX Runtime reads it).  One process, no MPI.

Both outputs are checked before anything is written (not the model file, a writable
place); a model the format cannot express is refused in one line naming what, and nothing
is written.  An ensemble file is refused (it is many networks).  ONNX needs the `onnx`
package (requirements-interop.txt): without it the command says in one line how to
install it.  docs/mojo.md lists what a MOJO cannot express.
"""
from h2odl_mpi.errors import UserError


def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="FILE",
                        help="model file written by train --model_out (or a checkpoint, or an H2O-3 MOJO)")
    parser.add_argument("--mojo", default=None, metavar="ZIP", help="the H2O-3 Deep Learning MOJO to write")
    parser.add_argument("--onnx", default=None, metavar="FILE", help="the ONNX graph to write")
    return parser


def run(ns):
    """The command: exit status 0, after printing what was written."""
    from h2odl_mpi.evaluation.predict import check_output, load_for_scoring
    if not ns.mojo and not ns.onnx:
        raise UserError("export: give --mojo ZIP and/or --onnx FILE")
    outputs = [(f"--{k}", getattr(ns, k)) for k in ("mojo", "onnx") if getattr(ns, k)]
    if len(outputs) == 2 and outputs[0][1] == outputs[1][1]:
        raise UserError(f"--onnx {ns.onnx}: is the --mojo file too")
    onnx_module = onnx_or_refuse() if ns.onnx else None
    network, model, info, params, attrs = load_for_scoring(ns.model, outputs=outputs, inputs=[("--model", ns.model)])
    if getattr(network, "is_ensemble", False):
        raise UserError(f"{ns.model}: an ensemble file is many networks: export one of its members "
                        "(docs/model_format.md, Ensembles)")
    threshold = model_threshold(info, params, attrs)
    notes = []
    if ns.onnx:   # (built and checked in memory first: a refusal leaves no MOJO behind either)
        from h2odl_mpi.model.onnx_writer import onnx_bytes
        graph = onnx_bytes(onnx_module, network, model, info, threshold, ns.onnx)
    if ns.mojo:
        from h2odl_mpi.model.mojo_writer import check_expressible
        check_expressible(network, info, params, ns.mojo)
    if ns.onnx:
        from h2odl_mpi.atomic import write_bytes
        write_bytes(ns.onnx, graph)
        print(f"ONNX graph written to {ns.onnx}")
    if ns.mojo:
        from h2odl_mpi.model.mojo_writer import write_mojo
        notes += write_mojo(ns.mojo, network, model, info, params, threshold)
        print(f"MOJO written to {ns.mojo}")
    for note in notes:
        print(note)
    return 0


def model_threshold(info, params, attrs):
    """The two-class labelling threshold the model file implies (as predict labels)."""
    if not info.classification or info.n_classes != 2:
        return 0.5
    from h2odl_mpi.evaluation.predict import model_threshold as threshold_of
    return threshold_of(attrs, params)


def onnx_or_refuse():
    """The `onnx` package, or a UserError saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise UserError("export --onnx needs the onnx package: pip install -r requirements-interop.txt "
                        "(or pip install onnx)") from None
    return onnx
