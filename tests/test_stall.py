"""The stall watchdog (--stall_timeout, h2odl_mpi.training.watchdog): the parameter, what a
rank's main thread tells it, the leader's verdict, the model every rank keeps for it
(checkpoint.LastCombined), and one job under mpirun -n 2 whose rank 1 is frozen with
SIGSTOP: status 85, a line naming rank 1, a valid checkpoint, a resume that finishes."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from h2odl_mpi import collectives, params as P
from h2odl_mpi.errors import UserError
from h2odl_mpi.model.model_io import load_model
from h2odl_mpi.training import checkpoint as ckpt
from h2odl_mpi.training.trainer import train
from h2odl_mpi.training.watchdog import OTHER, ROWS, Answer, Watchdog, timings

MPIRUN = os.path.join(os.path.dirname(sys.executable), "mpirun")


def _csv(path, n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    with open(path, "w") as f:
        f.write("a,b,c,y\n")
        f.writelines(f"{a:.5f},{b:.5f},{c:.5f},{int(a + b > 0)}\n" for a, b, c in x)
    return str(path)


# ------------------------------------------------------------------------- the parameter
def test_stall_timeout_parameter():
    base = {"train": "t.csv", "response": "y"}
    assert P.validate(base)["stall_timeout"] == 300.0
    assert P.validate(dict(base, stall_timeout=0))["stall_timeout"] == 0.0
    assert P.validate(dict(base, stall_timeout=P.parse_value("stall_timeout", "2.5")))["stall_timeout"] == 2.5
    for bad in (-1, float("inf"), float("nan"), "soon"):
        with pytest.raises(UserError, match="stall_timeout"):
            P.validate(dict(base, stall_timeout=bad))
    assert "stall_timeout" in dict(P.GROUPS)["checkpoints and outputs"]
    # a requeued job may be resumed with another timeout: not another experiment
    assert ckpt.resume_differences({"stall_timeout": 300.0}, {"stall_timeout": 5.0}) == []


def test_timings_follow_the_timeout_within_bounds():
    assert timings(300) == (1.0, 30.0)
    assert timings(5) == (0.25, 3.0)
    assert timings(0.1) == (0.05, 3.0)
    assert timings(10000) == (1.0, 30.0)


def test_one_rank_or_zero_starts_no_watchdog():
    assert Watchdog.start({"stall_timeout": 5.0}, None) is None


# ------------------------------------------------------------------------- the watchdog alone
class _Comm:
    """Enough of a communicator for a Watchdog that is never started, and for collectives
    that only call Bcast."""

    def __init__(self, rank=0, size=3):
        self.rank, self.size, self.bcasts = rank, size, 0

    def Get_rank(self):
        return self.rank

    def Get_size(self):
        return self.size

    def Bcast(self, buf, root=0):
        self.bcasts += 1


def _table(n):
    return [{"pid": 100 + r, "host": f"node{r // 2}", "world": r + 4, "session": 9} for r in range(n)]


def _dog(rank=0, size=3, timeout=5.0, world_size=None):
    return Watchdog(_Comm(rank, size), timeout, _table(size), world_size=world_size)


def test_collectives_tell_the_monitor_when_the_main_thread_waits():
    dog, comm = _dog(), _Comm()
    seen = []

    class Spy:
        def waiting(self, name):
            seen.append(("waiting", name, dog.wait_since))
            dog.waiting(name)

        def done(self):
            dog.done()
            seen.append(("done", dog.depth, dog.wait_since))

    before = dog.last_progress
    old = collectives.watch_collectives(Spy())
    try:
        assert collectives.bcast_obj(comm, {"a": 1}) == {"a": 1}  # bcast_bytes: two Bcasts, one wait
        assert comm.bcasts == 2
        collectives.bcast_array(None, np.zeros(2))  # one rank: no collective, nothing said
    finally:
        assert collectives.watch_collectives(old).__class__ is Spy
    assert seen == [("waiting", "bcast_bytes", None), ("done", 0, None)]
    assert dog.last_progress > before
    dog.waiting("weighted_mean")
    dog.waiting("allreduce")   # nested: the outer one counts
    dog.done()
    assert dog.wait_since is not None and dog.wait_name == "weighted_mean"
    dog.done()
    assert dog.wait_since is None


def _answer(rank, phase=OTHER, waiting_ms=-1, idle_ms=0, iteration=3):
    return Answer(9, 1, rank, iteration, phase, waiting_ms, idle_ms)


def test_the_verdict_names_silent_and_stuck_ranks_and_waits_for_busy_ones():
    dog = _dog(size=4)
    dog.at(12)
    dog.waiting("sum_in_place")
    line, culprits = dog.verdict({1: _answer(1, waiting_ms=9000), 3: _answer(3, ROWS, idle_ms=6000)}, 8.4)
    assert culprits == [2, 3]
    assert line.startswith("rank 2 (pid 102 on node1) stopped answering; rank 3 (pid 103 on node1) is stuck")
    assert "no progress for 8 s (iteration 12, rank 0 waiting in sum_in_place)" in line
    # alive and busy elsewhere (scoring, a checkpoint, its rows with progress): waited for
    assert dog.verdict({1: _answer(1, waiting_ms=9000), 2: _answer(2), 3: _answer(3, ROWS, idle_ms=900)}, 8) is None
    assert dog.verdict({1: _answer(1, waiting_ms=9000), 2: _answer(2, ROWS, waiting_ms=9000, idle_ms=9000),
                        3: _answer(3, OTHER, idle_ms=60000)}, 8) is None
    # everyone answers, everyone has waited twice the timeout: a deadlock, nobody to blame
    assert dog.verdict({r: _answer(r, waiting_ms=9000) for r in (1, 2, 3)}, 9) is None  # (a long collective?)
    line, culprits = dog.verdict({r: _answer(r, waiting_ms=10100) for r in (1, 2, 3)}, 11)
    assert culprits == [] and line.startswith("every rank answers but none has made progress for 11 s")
    # a leader other than rank 0; a group of the world (a search's, a fold's): world ranks named
    dog = _dog(rank=1, size=3, world_size=8)
    line, culprits = dog.verdict({2: _answer(2)}, 7)
    assert culprits == [0] and line.startswith("rank 0 (world rank 4, pid 100 on node0) stopped answering")


def test_only_a_leader_that_hears_no_healthy_lower_rank_acts(monkeypatch):
    """A rank other than 0 asks rank 0 first and waits on while it answers; rank 0 silent,
    the lowest rank that answers leads; the leader acts on what it found."""
    acted, asked = [], []

    def run(rank, answers, size=4):
        dog = _dog(rank=rank, size=size)
        dog.waiting("gather_rows")

        def round_(targets):
            asked.append((rank, list(targets)))
            return {r: answers[r] for r in targets if r in answers}
        monkeypatch.setattr(dog, "_round", round_)
        monkeypatch.setattr(dog, "_act", lambda verdict: acted.append((rank, verdict[1])))
        dog._episode(time.monotonic() - 10)
        assert dog.next_check > time.monotonic() + 4  # (asks again a timeout later)

    run(2, {0: _answer(0, waiting_ms=1000)})
    assert asked == [(2, [0])] and acted == []
    asked.clear()
    run(2, {1: _answer(1, waiting_ms=9000), 3: _answer(3, waiting_ms=9000)})  # rank 0 silent: rank 1 leads
    assert asked == [(2, [0]), (2, [1, 3])] and acted == []
    run(1, {2: _answer(2, waiting_ms=9000), 3: _answer(3, waiting_ms=9000)})
    assert acted == [(1, [0])]
    run(0, {1: _answer(1, waiting_ms=9000), 2: _answer(2, ROWS, idle_ms=9000)})
    assert acted[-1] == (0, [2, 3])
    run(2, {0: _answer(0, ROWS, idle_ms=9000), 1: _answer(1, waiting_ms=9000)})  # a stuck rank 0 cannot lead:
    assert len(acted) == 2  # rank 1 does
    run(1, {0: _answer(0, ROWS, idle_ms=9000), 2: _answer(2, waiting_ms=9000), 3: _answer(3, waiting_ms=9000)})
    assert acted[-1] == (1, [0])


def test_the_training_blocks_beat_through_the_stop_flag():
    dog, flag = _dog(), ckpt.StopFlag()
    beating = dog.beating(flag)
    dog.last_progress = 0.0
    assert beating.signum == 0 and dog.last_progress > 0
    flag.signum = signal.SIGTERM
    assert beating.signum == signal.SIGTERM


# ------------------------------------------------------------------------- the model kept
def test_last_combined_is_a_copy_written_alone_as_a_valid_checkpoint_that_resumes(tmp_path):
    data = _csv(tmp_path / "d.csv")
    p = {"train": data, "response": "y", "hidden": [6], "threads": 1, "seed": 3, "quiet_mode": True,
         "train_samples_per_iteration": 100, "stopping_rounds": 0, "classification_stop": -1.0}
    run = train(P.validate(dict(p, epochs=1)))
    kept = ckpt.LastCombined()
    assert "nothing to save" in kept.write(str(tmp_path / "none"), run)
    buffer = run.model.copy()
    state = dict(run.state, rng_states=[], combiner_arrays={"x": np.arange(3.0)})
    kept.keep(buffer, buffer, state, run.history)
    expected = buffer.copy()
    buffer[:] = 0  # the next iteration trains the buffer: the kept model is its own
    state["combiner_arrays"]["x"][:] = -1
    d = tmp_path / "ck"
    d.mkdir()
    assert kept.write(str(d), run) == f"checkpoint {d}/ckpt_000000006.h5 (iteration 6) written"
    _, model, _, _, attrs = load_model(str(d / "ckpt_000000006.h5"))
    assert np.array_equal(model, expected) and attrs["state"]["rng_states"] == []
    assert list(attrs["state"]["combiner_arrays"]["x"]) == [0.0, 1.0, 2.0]
    assert "is " + str(d / "ckpt_000000006.h5") in kept.write(str(d), run)  # there: kept as it is
    assert [f for f in os.listdir(d) if ".tmp" in f] == []
    again = train(P.validate(dict(p, epochs=2, resume=str(d))))  # new random streams, same run
    assert again["training_samples"] == 1200 and again["iterations"] == 12


def test_the_lock_of_a_frozen_rank_0_is_broken_only_if_it_is_its_own(tmp_path):
    owner = ckpt.CheckpointDirectory(str(tmp_path))
    lock = tmp_path / ckpt.LOCK_NAME
    lock.write_text(json.dumps({"pid": 4242, "host": "node0"}))
    owner.break_lock(4242, "node1")
    owner.break_lock(4243, "node0")
    assert lock.exists()
    owner.break_lock(4242, "node0")
    assert not lock.exists()
    ckpt.write_rank_table(str(tmp_path), _table(2))
    text = (tmp_path / ckpt.RANKS_NAME).read_text()
    assert "rank 1: pid 101 on node0 (world rank 5)" in text
    ckpt.remove_rank_table(str(tmp_path))
    assert not (tmp_path / ckpt.RANKS_NAME).exists()


# ------------------------------------------------------------------------- a frozen rank
def test_a_frozen_rank_ends_the_job_with_a_checkpoint_and_85_and_the_run_resumes(tmp_path):
    data = _csv(tmp_path / "d.csv", n=1000)
    d = tmp_path / "ck"
    args = ["train", "--train", data, "--response", "y", "--hidden", "16", "--threads", "1", "--seed", "2",
            "--train_samples_per_iteration", "100", "--stopping_rounds", "0", "--classification_stop", "-1",
            "--quiet_mode", "true", "--checkpoint_dir", str(d), "--checkpoint_interval", "5it",
            "--stall_timeout", "2", "--epochs", "300"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "MPI", "HYDRA"))}
    proc = subprocess.Popen([MPIRUN, "-n", "2", sys.executable, "-m", "h2odl_mpi"] + args, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        t0 = time.time()
        while len(ckpt.list_checkpoints(str(d))) < 2 and proc.poll() is None and time.time() - t0 < 60:
            time.sleep(0.05)
        assert len(ckpt.list_checkpoints(str(d))) >= 2, proc.poll()
        pids = _rank_pids_of(proc.pid)
        t_stop = time.time()
        os.kill(pids[1], signal.SIGSTOP)
        _, err = proc.communicate(timeout=2 + 30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    took = time.time() - t_stop
    assert proc.returncode == ckpt.REQUEUE_EXIT_CODE, err
    line = next(ln for ln in err.splitlines() if ln.startswith("h2odl_mpi: stall: "))
    assert line.startswith(f"h2odl_mpi: stall: rank 1 (pid {pids[1]} on ") and "stopped answering" in line, line
    assert line.endswith("exit status 85 (requeue)") and took < 2 + 15, (took, line)
    newest = ckpt.newest_valid(str(d))
    assert newest in line  # rank 0 wrote (or named) the last combined model: the newest checkpoint
    state = load_model(newest)[4]["state"]
    assert state["samples"] == 100 * state["iteration"] > 0
    assert not (d / ckpt.LOCK_NAME).exists() and [f for f in os.listdir(d) if ".tmp" in f] == []
    epochs = state["samples"] / 1000 + 0.5
    args[args.index("--epochs") + 1] = str(epochs)
    summary = tmp_path / "s.json"
    r = subprocess.run([MPIRUN, "-n", "2", sys.executable, "-m", "h2odl_mpi"] + args +
                       ["--resume", str(d), "--summary_json", str(summary)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    s = json.loads(summary.read_text())
    assert s["training_samples"] == state["samples"] + 500 and s["stop_reason"] == "epochs reached"
    assert sorted(os.listdir(d))[-1] == f"ckpt_{s['iterations']:09d}.h5" and not (d / ckpt.RANKS_NAME).exists()


def _rank_pids_of(mpirun_pid, n=2):
    """{rank: pid}: the processes below the launcher that hold a PMI_RANK."""
    t = time.time()
    while time.time() - t < 30:
        kids = {}
        for p in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = open(f"/proc/{p}/stat").read()
                kids.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(p))
            except OSError:
                continue
        found, todo = {}, [mpirun_pid]
        while todo:
            for c in kids.get(todo.pop(), []):
                todo.append(c)
                try:
                    env = open(f"/proc/{c}/environ", "rb").read().split(b"\0")
                except OSError:
                    continue
                rank = [e for e in env if e.startswith(b"PMI_RANK=")]
                if rank and b"hydra_pmi_proxy" not in open(f"/proc/{c}/cmdline", "rb").read():
                    found[int(rank[0].split(b"=")[1])] = c
        if len(found) == n:
            return found
        time.sleep(0.05)
    raise AssertionError("the ranks were not found below mpirun")


def test_a_process_that_outlives_its_exit_deadline_ends_with_one_line_and_85(tmp_path):
    """What __main__ arms after a multi-rank train or grid: MPI_Finalize (after Python has
    ended) waiting for a rank frozen after the last agreement cannot hold the job for ever."""
    code = ("import time; from h2odl_mpi.cli import Job; from h2odl_mpi.ending import exit_within\n"
            "job = Job(); job.exit_deadline = 1.0\n"
            "job.peers = [{'pid': 11, 'host': 'n0'}, {'pid': 12, 'host': 'n1'}]; exit_within(job)\n"
            "time.sleep(4)  # (stands for MPI_Finalize waiting)\n")
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == ckpt.REQUEUE_EXIT_CODE and time.time() - t0 < 20, proc
    assert proc.stderr.startswith("h2odl_mpi: stall: rank 1 (pid 12 on n1) stopped answering after the last "
                                  "agreement") and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.rstrip().endswith("exit status 85 (requeue: the resumed run finds the work done)")
    nothing = subprocess.run([sys.executable, "-c", code.replace("1.0", "None")], capture_output=True, timeout=60)
    assert nothing.returncode == 0 and nothing.stderr == b""  # (no deadline: one rank, or stall_timeout 0)


def test_the_exit_alarm_is_refused_bad_arguments_and_cancelled_by_zero():
    from h2odl_mpi.kernel import exit_alarm
    for seconds, line, status in [(-1, "x\n", 85), (1, "x" * 1024, 85), (1, "x\n", 256), (1, "a\0b", 85)]:
        with pytest.raises(ValueError):
            exit_alarm(seconds, line, status)
    code = ("import time; from h2odl_mpi.kernel import exit_alarm\n"
            "exit_alarm(1, 'gone\\n', 85); exit_alarm(0, '', 0); time.sleep(2)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc


def test_a_rank_frozen_after_the_last_agreement_ends_the_job_with_85_and_the_line_naming_it(tmp_path):
    """Under mpirun -n 2: both ranks pass end_together and arm their exit alarm, rank 1 then
    freezes; rank 0, held in MPI_Finalize, writes the line naming rank 1 and ends with 85."""
    code = ("import os, signal, sys\n"
            "from mpi4py import MPI\n"
            "from h2odl_mpi.cli import Job; from h2odl_mpi.ending import end_together, exit_within\n"
            "job = Job(); job.comm = MPI.COMM_WORLD; job.exit_deadline = 2\n"
            "end_together(job); exit_within(job)\n"
            "if job.comm.Get_rank() == 1:\n"
            "    print(os.getpid(), flush=True); os.kill(os.getpid(), signal.SIGSTOP)\n"
            "sys.exit(0)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI", "MPI", "HYDRA"))}
    t0 = time.time()
    proc = subprocess.Popen([MPIRUN, "-n", "2", sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == ckpt.REQUEUE_EXIT_CODE and time.time() - t0 < 30, (proc.returncode, err)
    line = next(ln for ln in err.splitlines() if ln.startswith("h2odl_mpi: stall: "))
    assert line.startswith(f"h2odl_mpi: stall: rank 1 (pid {out.split()[0]} on "), line
    assert "rank 0 waited 2 s for it to end (in MPI_Finalize)" in line, line


def test_main_in_a_process_that_goes_on_arms_nothing(tmp_path, capsys):
    from h2odl_mpi.cli import main
    path = tmp_path / "d.csv"
    path.write_text("x,y\n" + "".join(f"{i % 7},{i % 2}\n" for i in range(60)))
    assert main(["train", "--train", str(path), "--response", "y", "--hidden", "3", "--epochs", "1",
                 "--quiet_mode", "true"]) == 0
    assert signal.alarm(0) == 0
