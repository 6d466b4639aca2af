"""Ranks killed and frozen at random: fault injection for the stall watchdog and the
requeue path (docs/training.md, "Ranks that die or freeze").

Each trial runs a training job (`train`, a cross-validation `train --nfolds`, or a `grid`
search) on 2 or 3 ranks under the virtualenv's mpirun, with --checkpoint_dir and a short
--stall_timeout, and at a random moment of its training sends SIGKILL or SIGSTOP to a random
rank's process (found under mpirun by its PMI_RANK).  Then it checks:

- the job ended within stall_timeout + 30 s: for SIGSTOP with status 85 and the watchdog's
  line naming the frozen rank; for SIGKILL with the launcher's status (MPICH's Hydra: 9) and
  its "PID <pid>" line, the pid being the killed rank's (DIR/.h2odl_mpi.ranks names it);
- every checkpoint in the directory loads (checksums), and the stall line's checkpoint is
  there and is the newest;
- the same command (with --resume DIR for train) continues and finishes (status 0, the
  summary or the leaderboard complete, the model file loads), and no temporary file
  (*.tmp*) and no process of the job is left.

    .venv/bin/python fuzz/fault_injection.py --trials 100 --stall_timeout 5 --json report.json

It prints one line a trial and a table of outcomes and timings.  Exit status 0 when every
trial passed, 1 otherwise.  Only this machine's processes started by the script are
signalled, by pid.  A job that hangs gets SIGABRT on its live ranks, whose Python stacks
(PYTHONFAULTHANDLER) tell whether they waited inside train(), where the watchdog is, or
outside it ("hang outside train()": a search's or a cross-validation's own collectives, the
command's end; cli.py watches those with training.watchdog.watching()).
"""
import argparse
import glob
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
MPIRUN = os.path.join(BIN, "mpirun")
REQUEUE = 85
LAUNCH_TIMEOUT = 120.0   # a job that does not reach training, or a resume that does not finish


# ------------------------------------------------------------------------------ the stall line

def stall_names(err, victim, line):
    """Whether the stall lines name the frozen rank: the watchdog's line names it; the exit
    lines of ranks held in MPI_Finalize (cli.exit_line) each name the others, and the frozen
    one is then the rank that wrote none while every line names it."""
    finalize = [ln for ln in err.splitlines() if ln.startswith("h2odl_mpi: stall:") and "(in MPI_Finalize)" in ln]
    if finalize:
        waited = {int(m) for ln in finalize for m in re.findall(r"but rank (\d+) waited", ln)}
        return victim not in waited and all(re.search(rf"(stall: | or )rank {victim} \(", ln) for ln in finalize)
    return bool(re.search(rf"(stall: |; )rank {victim} \(|world rank {victim},", line.split(": no progress")[0]))


# ------------------------------------------------------------------------------ processes

def _ppid(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
        return int(st[st.rindex(")") + 2:].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def descendants(pid):
    """Every process below `pid` (Linux /proc)."""
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            children.setdefault(_ppid(int(p)), []).append(int(p))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def ranks_of(mpirun_pid):
    """{rank: pid} of the MPI processes under mpirun (their PMI_RANK)."""
    found = {}
    for pid in descendants(mpirun_pid):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = dict(e.split(b"=", 1) for e in f.read().split(b"\0") if b"=" in e)
        except OSError:
            continue
        if b"PMI_RANK" in env and b"hydra_pmi_proxy" not in open(f"/proc/{pid}/cmdline", "rb").read():
            found[int(env[b"PMI_RANK"])] = pid
    return found


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_all(pids):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


# ------------------------------------------------------------------------------ the jobs
def write_data(path, n, seed):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6))
    y = (x[:, 0] + 0.5 * x[:, 1] - 0.3 * x[:, 2] ** 2 + 0.2 * rng.normal(size=n) > 0).astype(int)
    with open(path, "w") as f:
        f.write("a,b,c,d,e,f,label\n")
        for row, t in zip(x, y):
            f.write(",".join(f"{v:.5f}" for v in row) + f",{'yes' if t else 'no'}\n")
    return path


def train_args(a, data, response):
    return ["--train", data, "--response", response, "--hidden", a.hidden, "--threads", "1",
            "--train_samples_per_iteration", str(a.tspi), "--stopping_rounds", "0", "--classification_stop", "-1",
            "--score_interval", "1", "--quiet_mode", "true", "--seed", "7"]


class Job:
    """One workflow's command lines in a trial's directory, and what it leaves there."""

    def __init__(self, a, workflow, ranks, work, data, response):
        self.workflow, self.ranks, self.work = workflow, ranks, work
        self.ck = os.path.join(work, "ck")
        common = train_args(a, data, response) + ["--stall_timeout", str(a.stall_timeout)]
        py = [MPIRUN] + a.launcher_args + ["-n", str(ranks), sys.executable, "-m", "h2odl_mpi"]
        if workflow == "grid":
            self.search = os.path.join(work, "search")
            toml = os.path.join(work, "grid.toml")
            with open(toml, "w") as f:
                f.write(f'train = "{data}"\nresponse = "{response}"\nepochs = {a.epochs / 2}\n'
                        f'checkpoint_interval = "{a.checkpoint_interval}"\n'
                        '[hyper_params]\nl2 = [0.0, 1e-4]\n[search_criteria]\nstrategy = "Cartesian"\n')
            flags = [f for f in common if f not in ("--train", data, "--response", response)]
            self.first = py + ["grid", "--config", toml, "--search_dir", self.search,
                               "--ranks_per_model", str(ranks)] + flags
            self.again = self.first
            self.started = os.path.join(self.search, "search.json")  # (the file appearing: training starts)
        else:
            # folds one after another on all ranks; not quiet: rank 0's first line marks their start
            extra = ["--nfolds", str(ranks + 1), "--quiet_mode", "false"] if workflow == "cv" else []
            self.summary, self.model = os.path.join(work, "s.json"), os.path.join(work, "m.h5")
            epochs = a.epochs / 3 if workflow == "cv" else a.epochs  # (ranks + 2 models)
            self.first = py + ["train"] + common + extra + [
                "--epochs", str(epochs), "--checkpoint_dir", self.ck, "--checkpoint_interval",
                a.checkpoint_interval, "--model_out", self.model, "--summary_json", self.summary]
            self.again = self.first + ["--resume", self.ck]
            # the fold models take no checkpoint directory: their start is rank 0's first line
            self.started = "line:cross-validation:" if workflow == "cv" else os.path.join(self.ck, ".h2odl_mpi.lock")

    def checkpoints(self):
        """Every checkpoint file the job writes."""
        if self.workflow == "grid":
            return sorted(glob.glob(os.path.join(self.search, "**", "ckpt_*.h5"), recursive=True))
        return sorted(glob.glob(os.path.join(self.ck, "ckpt_*.h5")))

    def finished(self):
        """'' when the job's results are complete, else what is missing."""
        from h2odl_mpi.model.model_io import load_model
        if self.workflow == "grid":
            board = os.path.join(self.search, "leaderboard.json")
            rows = json.load(open(board)) if os.path.exists(board) else []
            done = [r for r in rows if r.get("status") == "done"]
            if len(done) != 2:
                return f"{len(done)} of 2 models done in the leaderboard"
            for r in done:
                load_model(r["model_path"] if os.path.isabs(r["model_path"]) else os.path.join(ROOT, r["model_path"]))
            return ""
        if not os.path.exists(self.summary):
            return "no summary"
        s = json.load(open(self.summary))
        if s.get("stop_reason") != "epochs reached":
            return f"stop_reason {s.get('stop_reason')!r}"
        load_model(self.model)
        return ""


def bad_checkpoints(paths):
    from h2odl_mpi.model.model_io import load_model
    bad = []
    for p in paths:
        try:
            load_model(p)
        except Exception as e:  # noqa: BLE001 - reported
            bad.append(f"{p}: {e}")
    return bad


class Launched:
    """A job started in its own session; its output read as it comes; `started()`: whether
    its start marker (a file, or "line:<prefix>" of an output line) is there."""

    def __init__(self, cmd, env, marker=None):
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                  start_new_session=True, cwd=ROOT)
        self.pid, self.marker, self.lines = self.p.pid, marker, {"out": [], "err": []}
        self.readers = [threading.Thread(target=self._read, args=(f, k), daemon=True)
                        for f, k in ((self.p.stdout, "out"), (self.p.stderr, "err"))]
        for t in self.readers:
            t.start()

    def _read(self, f, key):
        for line in f:
            self.lines[key].append(line)

    def started(self):
        if self.marker is None:
            return True
        if self.marker.startswith("line:"):
            return any(ln.startswith(self.marker[5:]) for ln in list(self.lines["out"]))
        return os.path.exists(self.marker)

    def poll(self):
        return self.p.poll()

    def wait(self, timeout):
        """(returncode or None on a timeout, stdout, stderr)."""
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, "".join(self.lines["out"]), "".join(self.lines["err"])
        for t in self.readers:
            t.join(5)
        return self.p.returncode, "".join(self.lines["out"]), "".join(self.lines["err"])


def run_until(cmd, timeout, env, started=None):
    """(returncode or None on a timeout, stdout, stderr, seconds; seconds from the file
    `started` appearing to the end); on a timeout every process of the job is killed."""
    t = time.time()
    job = Launched(cmd, env, started)
    seen = None
    while job.poll() is None and time.time() - t < timeout:
        if seen is None and job.started():
            seen = time.time()
        time.sleep(0.02)
    rc, out, err = job.wait(max(0.1, timeout - (time.time() - t)))
    if rc is None:
        kill_all(descendants(job.pid) + [job.pid])
        job.wait(10)
        return None, out, err, time.time() - t, None
    end = time.time()
    return rc, out, err, end - t, end - (seen or t)


# ------------------------------------------------------------------------------ a trial
def trial(a, k, rng, data, response, env, calibrated):
    workflow = rng.choice(a.workflows)
    ranks, sig = rng.choice(a.ranks), rng.choice(a.signals)
    victim = rng.randrange(ranks)
    work = tempfile.mkdtemp(prefix=f"trial{k:03d}_", dir=a.out)
    job = Job(a, workflow, ranks, work, data, response)
    rec = {"trial": k, "workflow": workflow, "ranks": ranks, "signal": sig, "victim": victim, "problems": []}
    problems = rec["problems"]
    p = Launched(job.first, env, job.started)
    t0 = time.time()
    while not p.started() and p.poll() is None and time.time() - t0 < LAUNCH_TIMEOUT:
        time.sleep(0.02)
    span = calibrated.get(f"{workflow}/{ranks}", 5.0)
    delay = rng.uniform(a.window_start * span, a.window * span)
    rec["delay_s"] = round(delay, 2)
    time.sleep(delay)
    pids = ranks_of(p.pid)
    everyone = descendants(p.pid) + [p.pid]
    if p.poll() is not None or victim not in pids:
        rc, out, err = p.wait(LAUNCH_TIMEOUT)
        rec["outcome"] = "ended before the fault" if rc == 0 else f"status {rc} before the fault"
        if rc != 0:
            problems.append(err.strip()[-500:])
        return finish(a, rec, job, work, env)
    rec["pid"] = pids[victim]
    rec["after_results"] = workflow != "grid" and os.path.exists(job.summary)  # (train() over on rank 0)
    t_sig = time.time()
    os.kill(pids[victim], getattr(signal, f"SIG{sig}"))
    rc, out, err = p.wait(a.stall_timeout + 30)
    if rc is None:  # where the live ranks wait: their stacks
        for r, pid in pids.items():
            if r != victim and alive(pid):
                os.kill(pid, signal.SIGABRT)
        time.sleep(2)
        kill_all(everyone)
        _, out, err = p.wait(10)
        rec["inside_train"] = "h2odl_mpi/training/trainer.py" in err
        rec["hang_stacks"] = "\n".join(ln for ln in err.splitlines() if ln.strip().startswith(("File ", "Thread ",
                                                                                          "Current thread")))[-6000:]
    rec["end_s"] = round(time.time() - t_sig, 2)
    rec["status"] = rc
    line = next((ln for ln in err.splitlines() if ln.startswith("h2odl_mpi: stall:")), "")
    launcher = out + err  # (Hydra's lines go to stdout)
    rec["line"] = line or next((ln.strip(" =") for ln in launcher.splitlines() if "PID" in ln and "RUNNING AT" in ln), "")
    if rc is None:
        rec["outcome"] = "hang inside train()" if rec["inside_train"] else "hang outside train()"
        problems.append(f"no end within {a.stall_timeout + 30} s of SIG{sig} to rank {victim}")
    elif sig == "STOP":
        named = stall_names(err, victim, line)
        rec["outcome"] = "stall line, 85" if rc == REQUEUE and named else f"status {rc}"
        if rc != REQUEUE or not named:
            problems.append(f"SIGSTOP: status {rc}, line {line!r}; stderr {err.strip()[-600:]!r}")
        m = re.search(r"checkpoint (\S+\.h5) \(iteration|the checkpoint of iteration \d+ is (\S+\.h5)", line)
        if m:
            path = m.group(1) or m.group(2)
            path = path if os.path.isabs(path) else os.path.join(ROOT, path)
            rec["stall_checkpoint"] = os.path.basename(path)
            newest = job.checkpoints()
            if not os.path.exists(path):
                problems.append(f"the stall line's checkpoint {path} is not there")
            elif workflow != "grid" and newest and os.path.basename(newest[-1]) != os.path.basename(path):
                problems.append(f"the stall checkpoint {path} is not the newest ({newest[-1]})")
    else:
        table = os.path.join(job.ck, ".h2odl_mpi.ranks")
        by_pid = {pid: r for r, pid in pids.items()}
        said = [int(x) for x in re.findall(r"PID (\d+) RUNNING AT", launcher)]
        rec["launcher_names"] = [by_pid.get(x) for x in said]
        if "-disable-auto-cleanup" in a.launcher_args:  # the others live on: the watchdog names it
            named = re.search(rf"(stall: |; )rank {victim} \(|world rank {victim},", line.split(": no progress")[0])
            rec["outcome"] = f"stall line, {rc}" if named else f"status {rc}"
            if not named or rc == 0:
                problems.append(f"SIGKILL: status {rc}, line {line!r}: {launcher.strip()[-600:]!r}")
        else:  # Hydra ends the job at once: its line names a process that died of signal 9 (the first it
            # saw, not always the killed one), or a survivor's MPI error comes first (its status then)
            rec["outcome"] = (f"launcher line, {rc}, names it" if rec["launcher_names"][:1] == [victim] else
                              f"launcher line, {rc}, names rank {rec['launcher_names'][0]}" if said else
                              f"status {rc}, an MPI error" if "MPI" in launcher else f"status {rc}")
            if rc == 0 or None in rec["launcher_names"]:
                problems.append(f"SIGKILL: status {rc}, launcher: {launcher.strip()[-600:]!r}")
            if rec["end_s"] > 10:
                problems.append(f"SIGKILL: the job took {rec['end_s']} s to end")
        if workflow != "grid" and os.path.exists(table) and f"rank {victim}: pid {pids[victim]} " not in open(table).read():
            problems.append(f"{table} does not name pid {pids[victim]} as rank {victim}")
    t_left = time.time()  # (the launcher kills a frozen rank a moment after mpirun has exited)
    while any(alive(pid) for pid in everyone) and time.time() - t_left < 5:
        time.sleep(0.05)
    if any(alive(pid) for pid in everyone):
        problems.append(f"processes of the job left 5 s after its end: {[p for p in everyone if alive(p)]}")
        kill_all(pid for pid in everyone if alive(pid))
    while any(os.path.exists(f"/proc/{pid}") for pid in everyone) and time.time() - t_left < 15:
        time.sleep(0.05)  # (and reaped: a zombie still holds its lock files)
    return finish(a, rec, job, work, env)


def finish(a, rec, job, work, env):
    """The checks after the faulted run: valid checkpoints, a resume that finishes, nothing
    half-written left."""
    problems = rec["problems"]
    problems += [f"damaged checkpoint after the fault: {b}" for b in bad_checkpoints(job.checkpoints())]
    rc, out, err, took, _ = run_until(job.again, LAUNCH_TIMEOUT, env)
    rec["resume_s"], rec["resume_status"] = round(took, 2), rc
    if rc != 0:
        problems.append(f"resume: status {rc}: {err.strip()[-800:]!r}")
    else:
        try:
            missing = job.finished()
        except Exception as e:  # noqa: BLE001 - reported
            missing = f"{type(e).__name__}: {e}"
        if missing:
            problems.append(f"resume finished without its results: {missing}")
    problems += [f"damaged checkpoint after the resume: {b}" for b in bad_checkpoints(job.checkpoints())]
    tmp = [p for p in glob.glob(os.path.join(work, "**", "*.tmp*"), recursive=True)]
    if tmp:
        problems.append(f"temporary files left: {tmp}")
    left = glob.glob(os.path.join(work, "**", ".h2odl_mpi.lock"), recursive=True) + \
        glob.glob(os.path.join(work, "**", ".h2odl_mpi.ranks"), recursive=True)
    if rc == 0 and left:
        problems.append(f"left after the resumed run: {left}")
    rec["ok"] = not problems
    if rec["ok"] and not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return rec


def calibrate(a, data, response, env):
    """Seconds from a job taking its directory to its end, without a fault, for each
    workflow and number of ranks (the window the faults are drawn in)."""
    out = {}
    for w in a.workflows:
        for n in a.ranks:
            work = tempfile.mkdtemp(prefix=f"calibrate_{w}_", dir=a.out)
            job = Job(a, w, n, work, data, response)
            rc, _, err, _, took = run_until(job.first, LAUNCH_TIMEOUT, env, job.started)
            if rc != 0:
                sys.exit(f"calibration of {w} on {n} ranks failed (status {rc}): {err.strip()[-1000:]}")
            out[f"{w}/{n}"] = took
            shutil.rmtree(work, ignore_errors=True)
    return out


def table(records):
    rows = {}
    for r in records:
        key = (r["workflow"], r["ranks"], r["signal"], r.get("outcome"))
        rows.setdefault(key, []).append(r)
    lines = [f"{'workflow':8} {'ranks':5} {'signal':6} {'outcome':26} {'trials':>6} {'passed':>6} "
             f"{'end s (min/median/max)':>24} {'resume s (median)':>18}"]
    for key in sorted(rows, key=str):
        rs = rows[key]
        ends = [r["end_s"] for r in rs if "end_s" in r]
        res = [r["resume_s"] for r in rs if "resume_s" in r]
        span = f"{min(ends):.1f}/{statistics.median(ends):.1f}/{max(ends):.1f}" if ends else "-"
        lines.append(f"{key[0]:8} {key[1]:<5} {key[2]:6} {str(key[3]):26} {len(rs):6} "
                     f"{sum(r['ok'] for r in rs):6} {span:>24} "
                     f"{(statistics.median(res) if res else float('nan')):18.1f}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None, help="the trials' random choices (default: from the clock)")
    ap.add_argument("--ranks", default="2,3")
    ap.add_argument("--signals", default="KILL,STOP")
    ap.add_argument("--workflows", default="train,cv,grid", help="train, cv (nfolds = ranks + 1), grid")
    ap.add_argument("--stall_timeout", type=float, default=5.0)
    ap.add_argument("--data", default=None, help="a CSV or the bundled mnist (default: a generated CSV)")
    ap.add_argument("--rows", type=int, default=3000, help="rows of the generated CSV")
    ap.add_argument("--epochs", type=float, default=15.0)
    ap.add_argument("--hidden", default="32,32")
    ap.add_argument("--tspi", type=int, default=300)
    ap.add_argument("--checkpoint_interval", default="5it")
    ap.add_argument("--window_start", type=float, default=0.0,
                    help="faults are drawn from window_start to window x the fault-free run's time (0.9 to 1.1: "
                         "around the job's end, after its last agreement)")
    ap.add_argument("--window", type=float, default=0.6,
                    help="faults fall in this fraction of a fault-free run's time after it takes its directory")
    ap.add_argument("--launcher_args", default="", help="more mpirun arguments, e.g. -disable-auto-cleanup "
                    "(Hydra then lets the other ranks live on after a kill: the watchdog names the rank)")
    ap.add_argument("--out", default=None, help="where trials run (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the directories of passed trials too")
    ap.add_argument("--json", default=None, help="write every trial's record here")
    a = ap.parse_args(argv)
    a.ranks = [int(r) for r in a.ranks.split(",")]
    a.signals = [s.strip().upper().replace("SIG", "") for s in a.signals.split(",")]
    a.workflows = [w.strip() for w in a.workflows.split(",")]
    a.launcher_args = a.launcher_args.split()
    a.out = a.out or tempfile.mkdtemp(prefix="fault_injection_")
    os.makedirs(a.out, exist_ok=True)
    seed = a.seed if a.seed is not None else int(time.time())
    rng = random.Random(seed)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "MPI", "HYDRA"))}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONFAULTHANDLER"] = "1"  # (the stacks of a hung job's ranks, on SIGABRT)
    if a.data == "mnist":
        data, response = os.path.join(ROOT, "h2odl_mpi", "datasets", "mnist", "train.csv.gz"), "C785"
    elif a.data:
        data, response = os.path.abspath(a.data), "label"
    else:
        data, response = write_data(os.path.join(a.out, "data.csv"), a.rows, seed), "label"
    calibrated = calibrate(a, data, response, env)
    print(f"fault injection: seed {seed}, {a.trials} trials in {a.out}; fault-free run times from the "
          "directory taken to the end: " + ", ".join(f"{w} {t:.1f} s" for w, t in calibrated.items()), flush=True)
    records, t_start = [], time.time()
    for k in range(a.trials):
        rec = trial(a, k, rng, data, response, env, calibrated)
        records.append(rec)
        print(f"trial {k:3d}: {rec['workflow']:5} {rec['ranks']} ranks SIG{rec['signal']:4} rank {rec['victim']} "
              f"after {rec.get('delay_s', 0):5.2f} s: {rec.get('outcome')}, ended in {rec.get('end_s', '-')} s, "
              f"resume {rec.get('resume_status')} in {rec.get('resume_s', '-')} s: "
              f"{'ok' if rec['ok'] else 'FAILED: ' + ' | '.join(rec['problems'])}", flush=True)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"seed": seed, "args": vars(a), "calibrated": calibrated, "trials": records}, f, indent=1)
    print(f"\n{len(records)} trials, {sum(r['ok'] for r in records)} passed, in {time.time() - t_start:.0f} s "
          f"(stall_timeout {a.stall_timeout:g} s)\n" + table(records))
    return 0 if all(r["ok"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
