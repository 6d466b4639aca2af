"""What a training run tells its user: progress lines on rank 0 (unless quiet_mode), the
scoring history rows, the final lines and the run summary (also the summary JSON)."""
import time

from h2odl_mpi.evaluation import metrics
from h2odl_mpi.model import model_summary


class Reporter:
    """Prints on rank 0 of the run's communicator, unless quiet_mode."""

    def __init__(self, params, rank):
        self.on = rank == 0 and not params.get("quiet_mode")

    def say(self, msg):
        if self.on:
            print(msg, flush=True)

    def start(self, size, threads, network, params, n_total, info, layout="flat", scheme="hogwild"):
        """The run's first line: ranks, threads and their scheme (hogwild or replicas), network, rows."""
        nodes = f" (combining {layout})" if layout != "flat" else ""
        self.say(f"h2odl_mpi: {size} rank(s){nodes} x {threads} thread(s) ({scheme}); network "
                 f"{'-'.join(map(str, network.units))} {params['activation']}; "
                 f"{n_total:,} training rows, {len(info.input_names)} inputs"
                 f"{', classes: ' + str(info.n_classes) if info.classification else ''}")

    def progress(self, row, info, samples, target, train_time, elapsed, start=0):
        self.say(progress_line(row, info, samples, target, train_time, elapsed, start))

    def final(self, summary, info):
        self.say(final_lines(summary, info))
        if summary.get("cross_validation_metrics_summary"):  # H2O's cross-validation summary table
            self.say(cross_validation_table(summary["cross_validation_metrics_summary"]))
        if summary.get("model_summary"):  # H2O's model print: the layer table
            self.say(model_summary.text(summary["model_summary"],
                                        model_summary.title(info, summary["training_samples"])))
        if summary.get("variable_importances"):
            self.say("variable importances (Gedeon; the 10 largest, scaled): " + ", ".join(
                f"{r['variable']} {r['scaled_importance']:.3f}" for r in summary["variable_importances"][:10]))


def history_row(iteration, epochs, samples, duration, tspi, comm_fraction, train_m, valid_m):
    """One row of the scoring history (H2O's columns, training_ and validation_ metrics)."""
    row = {"iteration": iteration, "epochs": epochs, "samples": samples, "duration_s": duration,
           "train_samples_per_iteration": tspi, "comm_fraction": comm_fraction}
    row.update({f"training_{k}": v for k, v in metrics.scalar_metrics(train_m).items()})
    row.update({f"validation_{k}": v for k, v in metrics.scalar_metrics(valid_m).items()})
    return row


def summary_of(run, clock, end):
    """The run summary: what was trained, how fast, where the time went, the metrics."""
    train_time = clock.comp + clock.comm + clock.wait
    return {
        "training_samples": end.samples,
        "training_time_s": train_time,
        "samples_per_s": (end.samples - run.start_samples) / train_time if train_time > 0 else 0.0,  # this run's
        "epochs": end.samples / run.data.n_total,
        "iterations": end.iteration,
        "n_ranks": run.size,
        "threads_per_rank": run.threads,
        "thread_scheme": run.scheme,
        "decoded_rows_bytes": run.decode.used,  # rows kept decoded (decoded_rows.DecodeBudget), rank 0's
        "comm_fraction": clock.comm / train_time if train_time > 0 else 0.0,
        # the combining rule's own arithmetic (part of comm_fraction), rank 0's
        "combining_rule": run.combiner.name,
        "combine_layout": getattr(run.combiner, "layout", "flat"),
        "combine_own_fraction": run.combiner.own_seconds / train_time if train_time > 0 else 0.0,
        "wait_fraction": clock.wait / train_time if train_time > 0 else 0.0,  # load imbalance
        "train_samples_per_iteration": end.tspi_used,
        "train_samples_per_iteration_param": run.params["train_samples_per_iteration"],
        "local_rows_per_iteration": end.local_used,  # this rank's share (rank 0's in the JSON)
        "scoring_time_s": clock.score,
        "wall_time_s": time.time() - clock.t_start,
        "seed": run.seed,
        "network": run.network.units,
        "nonfinite_stop": end.nonfinite,
        "stop_reason": end.stop_reason or ("non-finite values" if end.nonfinite else "epochs reached"),
        "metrics": {"training": end.train_metrics, "validation": end.valid_metrics},
        # seconds from the start of train(): data read, then (restarts) the checkpoint read
        # and sent to every rank, then the first row trained
        "startup_s": {"data_load": clock.data, "restore": clock.restore, "to_first_row": clock.first_row},
        "continued_from": run.restored["path"] if run.restored else None,
        "variable_importances": end.importances,
        # H2O's "Status of Neuron Layers" of the final model, one dict a layer (model_summary.py)
        "model_summary": model_summary.table(run.network, run.model, run.params, end.samples),
    }


def with_cross_validation(summary, cv):
    """The main model's summary with its cross-validation (cross_validation.CrossValidation
    or None): metrics.cross_validation (the combined holdout predictions' metrics, the
    names of metrics.training), cross_validation_metrics_summary (per metric: mean, sd,
    cv_<k>_valid) and cross_validation_models (per fold: rows held out, epochs, file)."""
    if cv is not None:
        summary["metrics"]["cross_validation"] = cv.metrics
        summary["cross_validation_metrics_summary"] = cv.table
        summary["cross_validation_models"] = cv.models
    return summary


def cross_validation_table(table):
    """H2O's "Cross-Validation Metrics Summary" as text: a row per metric, the columns mean,
    sd, cv_1_valid, ..."""
    cols = list(next(iter(table.values()))) if table else []
    width = max([len(n) for n in table] + [6])
    lines = ["Cross-Validation Metrics Summary:", " " * width + "".join(f"{c:>13}" for c in cols)]
    lines += [f"{name:<{width}}" + "".join(f"{row[c]:>13.6g}" for c in cols) for name, row in table.items()]
    return "\n".join(lines)


def fmt_metrics(m, info):
    if not m:
        return ""
    if info.autoencoder:
        return f"MSE {m['mse']:.5g}"
    if info.classification:
        s = f"err {m['classification_error']:.4f} logloss {m['logloss']:.4f}"
        return s + (f" AUC {m['auc']:.4f}" if "auc" in m else "")
    return f"RMSE {m['rmse']:.5g} R2 {m['r2']:.4f}"


def progress_line(row, info, samples, target, train_time, elapsed, start=0):
    """One iteration's progress; the speed and the ETA count the samples this run trained
    (from `start`, a continued checkpoint's samples) in this run's training time."""
    speed = (samples - start) / train_time if train_time > 0 else 0.0
    left = (target - samples) / speed if speed > 0 else 0.0
    parts = [f"iter {row['iteration']:4d}", f"epochs {row['epochs']:7.3f}", f"samples {samples:,}",
             f"{speed:,.0f} samples/s", f"ETA {left:6.1f}s",
             f"comm {100 * row['comm_fraction']:.1f}%", f"tspi {row['train_samples_per_iteration']:,}"]
    tm = {k[len('training_'):]: v for k, v in row.items() if k.startswith("training_")}
    vm = {k[len('validation_'):]: v for k, v in row.items() if k.startswith("validation_")}
    parts.append("train " + fmt_metrics(tm, info))
    if vm:
        parts.append("valid " + fmt_metrics(vm, info))
    return " | ".join(parts)


def final_lines(summary, info):
    lines = [f"done: {summary['training_samples']:,} samples, {summary['epochs']:.3f} epochs, "
             f"{summary['iterations']} iterations in {summary['training_time_s']:.2f}s "
             f"({summary['samples_per_s']:,.0f} samples/s, comm {100 * summary['comm_fraction']:.1f}% "
             f"of which {summary['combining_rule']}'s own arithmetic {100 * summary['combine_own_fraction']:.1f}%)"]
    for name in ("training", "validation", "cross_validation"):
        m = summary["metrics"].get(name)
        if m:
            lines.append(f"{name.replace('_', '-')} metrics: " + ", ".join(
                f"{k} {v:.5g}" for k, v in metrics.scalar_metrics(m).items() if k != "nobs"))
    return "\n".join(lines)
