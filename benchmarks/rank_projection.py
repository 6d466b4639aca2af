"""A PROJECTION, not a measurement: wall time to a test error at 64 and 1,024 ranks against one
rank's, from what benchmarks/rank_accuracy.py measured and a stated network model.

Measured (inputs): the epochs to the target at the largest measured rank count (mean over the
seeds; assumed to hold at 64 and 1,024 ranks, which is the projection's main assumption), the
one-rank compute time per row (1 thread), the model's buffer (weights, biases and the
optimizer state, all of which every combine sends) and the rows per data set.

Network model: one rank per node, each on its own port of the interconnect; a combine is a
Reduce_scatter and an Allgatherv (collectives.weighted_mean), modelled as recursive halving and
doubling (Rabenseifner; Thakur, Rabenseifner and Gropp, IJHPCA 2005):

    t_combine = 2 ceil(log2 P) alpha + 2 (P - 1) / P x bytes / beta

alpha the small-message MPI latency, beta the large-message MPI bandwidth, both from the
published figures below; the reduction arithmetic, the combining rule's own arithmetic and any
contention in the fabric are left out (the projection is optimistic about them).

Rows between combines at P ranks: "fixed" runs the benchmark's fixed setting (BlockMomentum's
cap, about 3 P combines an epoch); "defaults" runs the auto-tuner's rule
(h2odl_mpi.training.iteration_rows.AutoTuner with the cap of the default combining rule, fed
the modelled combine time and the measured compute time per row), so the projection uses the
code's own rule, not a copy of it.

Interconnect figures (published, not measured here):
  hdr200: Microsoft, "HBv2-series virtual machine sizes" (performance page of the Azure
          HBv2 VMs, 200 Gb/s HDR InfiniBand), https://learn.microsoft.com/en-us/azure/virtual-machines/hbv2-performance
          (source: github.com/MicrosoftDocs/azure-docs, articles/virtual-machines/hbv2-performance.md):
          "RDMA latency & bandwidth: 1.2 microseconds, 190 Gb/s"; the page runs the OSU
          micro-benchmarks' osu_latency and osu_bw (MVAPICH2) for its MPI latency and
          bandwidth figures.
  edr100: the same for the Azure HB VMs (100 Gb/s EDR InfiniBand), "HB-series virtual machine
          sizes", https://learn.microsoft.com/en-us/azure/virtual-machines/hb-series-performance:
          "RDMA latency & bandwidth: 1.27 microseconds, 99.1 Gb/s", osu_latency and osu_bw.
"""
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from h2odl_mpi.params import SPEC  # noqa: E402
from h2odl_mpi.training.combine import BlockMomentum  # noqa: E402
from h2odl_mpi.training.iteration_rows import AutoTuner  # noqa: E402

INTERCONNECTS = {
    "hdr200": {"name": "200 Gb/s HDR InfiniBand (Azure HBv2, published OSU figures)", "latency_s": 1.2e-6,
               "bandwidth_Bps": 190e9 / 8,
               "source": 'Microsoft, "HBv2-series virtual machine sizes", '
                         "https://learn.microsoft.com/en-us/azure/virtual-machines/hbv2-performance"},
    "edr100": {"name": "100 Gb/s EDR InfiniBand (Azure HB, published OSU figures)", "latency_s": 1.27e-6,
               "bandwidth_Bps": 99.1e9 / 8,
               "source": 'Microsoft, "HB-series virtual machine sizes", '
                         "https://learn.microsoft.com/en-us/azure/virtual-machines/hb-series-performance"},
}
PROJECTED_RANKS = (64, 1024)
GOALS = {64: 1 / 32, 1024: 1 / 256}  # issue 22's targets: a fraction of one rank's time
TARGET_RATIO_COMM_TO_COMP = 0.05     # params.SPEC's default, which the defaults runs use


# the bytes a value of the combine buffer travels as, a fraction (numerator, denominator):
# float32 4, bfloat16 2; bfloat16_log8 sends a weight or bias as bfloat16 and its two ADADELTA
# accumulators as a byte each, 4 bytes for 3 values
BYTES_A_VALUE = {"float32": (4, 1), "bfloat16": (2, 1), "bfloat16_log8": (4, 3)}
PRECISIONS = SPEC["combine_precision"][2]   # (params.SPEC's choices, the order above)


def buffer_bytes(n_values, precision):
    """The bytes a buffer of `n_values` float32 values travels as at `precision`."""
    num, den = BYTES_A_VALUE[precision]
    return n_values * num // den


def bytes_per_combine(n_values, ranks, precision):
    """What a rank sends in one combine of a buffer of `n_values` values: 2 (N - 1) / N of
    it (a Reduce_scatter and an Allgatherv, or their coded twins), and bfloat16_log8's
    float32 scale for each other rank, each way."""
    if ranks < 2:
        return 0
    num, den = BYTES_A_VALUE[precision]
    scales = 2 * (ranks - 1) * 4 if precision == "bfloat16_log8" else 0
    return 2 * (ranks - 1) * n_values * num // (ranks * den) + scales


def combine_seconds(nbytes, ranks, net):
    """The modelled time of one combine of `nbytes` on `ranks` ranks (see the module)."""
    if ranks < 2:
        return 0.0
    return (2 * math.ceil(math.log2(ranks)) * net["latency_s"]
            + 2 * (ranks - 1) / ranks * nbytes / net["bandwidth_Bps"])


def fixed_rows(n_rows, ranks):
    """The fixed setting's rows between combines (over all ranks): BlockMomentum's cap."""
    return n_rows if ranks == 1 else max(ranks, int(BlockMomentum().rows_cap(n_rows, ranks)))


def tuned_rows(n_rows, ranks, t_row, t_combine, epochs, replicated=True):
    """The auto-tuner's rows between combines once it has settled, fed the modelled times."""
    target = TARGET_RATIO_COMM_TO_COMP
    ideal = t_combine * (1 - target) / (target * t_row / ranks)
    local = n_rows if replicated else n_rows // ranks
    cap = BlockMomentum().rows_cap(n_rows, ranks)
    return AutoTuner(target, ranks, local, n_rows, epochs, int(min(ideal, 1e15)), cap).value


def project(inputs, net, mode):
    """inputs: t_row_s, n_rows, model_bytes, epochs_one_rank, epochs_many, many_ranks,
    epochs (of the runs).  Returns the projected seconds and fractions per rank count."""
    n, t_row = inputs["n_rows"], inputs["t_row_s"]
    one_rank = inputs["epochs_one_rank"] * n * t_row
    out = {"network": net["name"], "source": net["source"], "mode": mode, "one_rank_s": one_rank, **inputs}
    for ranks in PROJECTED_RANKS:
        t_comb = combine_seconds(inputs["model_bytes"], ranks, net)
        rows = (fixed_rows(n, ranks) if mode == "fixed"
                else tuned_rows(n, ranks, t_row, t_comb, inputs["epochs"]))
        per_epoch = n * t_row / ranks + (n / rows) * t_comb
        seconds = inputs["epochs_many"] * per_epoch
        out[str(ranks)] = {"rows_per_combine": rows, "combines_per_epoch": n / rows, "combine_s": t_comb,
                           "comm_share": (n / rows) * t_comb / per_epoch, "seconds": seconds,
                           "fraction_of_one_rank": seconds / one_rank, "goal": GOALS[ranks]}
    return out


def text(p):
    """The projection as lines, labelled as such."""
    lines = [f"PROJECTION (not measured), {p['mode']} setting, {p['network']} [{p['source']}]: "
             f"epochs to {100 * p['target']:.2f}% as measured at {p['many_ranks']} ranks "
             f"({p['epochs_many']:.2f}, one rank {p['epochs_one_rank']:.2f}), {1e6 * p['t_row_s']:.1f} us "
             f"of compute a row (one rank, measured), {p['model_bytes']:,} bytes a combine buffer; "
             f"assumed: those epochs hold at the projected rank counts:"]
    for ranks in PROJECTED_RANKS:
        r = p[str(ranks)]
        lines.append(f"  {ranks} ranks: {r['combines_per_epoch']:.0f} combines an epoch ({r['rows_per_combine'] / ranks:,.0f} "
                     f"rows a rank between combines) of {r['combine_s'] * 1e6:.1f} us "
                     f"each, communication {100 * r['comm_share']:.0f}% of the time; {r['fraction_of_one_rank']:.5f} "
                     f"of one rank's time (goal {r['goal']:.5f}: {'met' if r['fraction_of_one_rank'] <= r['goal'] else 'missed'})")
    return lines
