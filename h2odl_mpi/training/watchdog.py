"""The stall watchdog (`--stall_timeout SECONDS`, default 300, 0: off): a rank that froze (a
hung node, SIGSTOP) or vanished without the launcher noticing ends the job with one line
naming it, a checkpoint and the requeue status, instead of leaving the other ranks waiting
in a collective forever.

train() starts a Watchdog on every rank of a multi-rank run: a thread, and a communicator
of its own (a Dup of the run's).  The rank's main thread tells it where it is: the
collectives (h2odl_mpi.collectives.watch_collectives) say when it starts and ends waiting
for the other ranks, the training loop says which iteration it is in and, block by block of
rows, that it is making progress.  When the main thread has waited in one collective for
longer than the timeout, the thread asks the other ranks' watchdog threads how they are (a
ping, point to point on its communicator; a frozen process cannot answer, a live one
answers within about a second, whatever its main thread is doing):

- a rank other than 0 asks rank 0 first; while rank 0 answers (and is not stuck) rank 0
  leads, and the rank waits on (and asks again a timeout later);
- otherwise (and on rank 0 at once) it asks every other rank; the lowest rank that answers
  and is not stuck leads: the leader finds the ranks that did not answer within the grace
  time (`stopped answering`), those that answer but whose training rows have made no
  progress for the timeout (`stuck`), or, all answering and all waiting in collectives for
  twice the timeout, a deadlock.  Slow ranks (alive, busy with their own work) are waited
  for.

The leader writes the last combined model it holds as a checkpoint (the trainer's
`keeper`: checkpoint.LastCombined, written atomically, without a collective), prints one
line naming the ranks and how long nothing moved, and ends the job with
MPI_Abort(MPI_COMM_WORLD, 85): mpirun (MPICH's Hydra) then exits with 85, the status the
job scripts requeue on (exiting the process instead would leave Hydra to kill the frozen
rank and report its signal, 9).  The thread needs MPI_THREAD_MULTIPLE (mpi4py's default);
without it the watchdog is off, which rank 0 says.

`watching(params, comm)` watches any other block of collective code the same way (a
search's or a cross-validation's own collectives between its models, a command's last
barrier): a frozen rank there ends the job with the line and 85, nothing saved (the models'
checkpoints stand).  A train() inside it has its own watchdog meanwhile.
"""
import contextlib
import os
import socket
import sys
import threading
import time
from collections import namedtuple

import numpy as np

from h2odl_mpi.collectives import allgather_obj, duplicate, parallel, watch_collectives
from h2odl_mpi.errors import REQUEUE_EXIT_CODE, abort

PING, ANSWER = 7301, 7302   # message tags on the watchdog's communicator
OTHER, ROWS = 0, 1          # where a rank's main thread is: its training rows, or elsewhere

# what a rank answers: the watchdog's session and the ping's round (stale answers are
# ignored), the rank, its iteration, where it is, ms in its current collective (-1: none),
# ms since its last progress
Answer = namedtuple("Answer", "session round rank iteration phase waiting_ms idle_ms")


def _mpi():
    from mpi4py import MPI
    return MPI


def timings(timeout):
    """(tick, grace) for a stall timeout: how often the thread looks (and answers), and
    how long a ping waits for answers."""
    return min(1.0, max(0.05, timeout / 20.0)), min(30.0, max(3.0, timeout / 10.0))


class Watchdog:
    """One rank's watchdog of one training run (see the module's docstring)."""

    @classmethod
    def start(cls, params, comm, default=300.0):
        """Collective over `comm` (one small allgather, whatever the parameters, so that
        ranks given different values cannot part ways): the running watchdog, or None (one
        rank, stall_timeout 0 on some rank, or MPI without MPI_THREAD_MULTIPLE)."""
        if not parallel(comm):
            return None
        MPI = _mpi()
        me = {"pid": os.getpid(), "host": socket.gethostname(), "world": MPI.COMM_WORLD.Get_rank(),
              "threads": MPI.Query_thread(), "session": int.from_bytes(os.urandom(7), "little"),
              "timeout": float(params.get("stall_timeout", default) or 0.0)}
        table = allgather_obj(comm, me)
        timeout = min(t["timeout"] for t in table)
        if timeout <= 0:
            return None
        if min(t["threads"] for t in table) < MPI.THREAD_MULTIPLE:
            if comm.Get_rank() == 0:
                print(f"warning: stall_timeout: MPI runs without MPI_THREAD_MULTIPLE (thread level "
                      f"{min(t['threads'] for t in table)}): the stall watchdog is off", file=sys.stderr, flush=True)
            return None
        return cls(comm, timeout, table, MPI.COMM_WORLD.Get_size())._begin()

    def __init__(self, comm, timeout, table, world_size=None, tick=None, grace=None):
        """`table`: every rank's {pid, host, world (its rank in MPI_COMM_WORLD), session};
        nothing starts before _begin()."""
        self.comm, self.timeout, self.table = comm, float(timeout), table
        self.world_size = world_size
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.session = int(table[0]["session"])
        t, g = timings(self.timeout)
        self.tick, self.grace = tick or t, grace or g
        self.main = threading.get_ident()
        self.last_progress = time.monotonic()
        self.wait_since, self.wait_name, self.depth = None, None, 0
        self.iteration, self.phase = 0, OTHER
        self.keeper = None      # callable(culprits) -> what the leader says about the checkpoint
        self.acting = threading.Lock()
        self._stop = threading.Event()
        self._sends, self._leftover = [], []
        self.round, self.next_check = 0, 0.0
        self.side = self.thread = self.previous = None

    def _begin(self):
        MPI = _mpi()
        self.side = duplicate(self.comm)  # (collective: the block's watchdog hears of it)
        self.status = MPI.Status()
        self.ping_buf = np.zeros(3, dtype=np.int64)
        self.ping_req = self.side.Irecv(self.ping_buf, source=MPI.ANY_SOURCE, tag=PING)
        self.previous = watch_collectives(self)
        self.thread = threading.Thread(target=self._run, name="h2odl_mpi-stall-watchdog", daemon=True)
        self.thread.start()
        return self

    def stop(self):
        """Stop watching (every rank, at the end of train()); nothing is left behind."""
        if self.thread is None:
            return
        watch_collectives(self.previous)
        self._stop.set()
        self.thread.join()
        self.thread = None
        for req in [self.ping_req] + self._leftover:
            req.Cancel()
            req.Wait()
        self._sends = [(q, b) for q, b in self._sends if not q.Test()]  # (answers on their way)
        self.side.Free()

    # ---- told by the main thread ------------------------------------------------------
    def waiting(self, name):
        """The main thread starts waiting in collective `name` (collectives' monitor)."""
        if threading.get_ident() == self.main:
            if self.depth == 0:
                self.wait_name, self.wait_since = name, time.monotonic()
            self.depth += 1

    def done(self):
        """The main thread is through its collective: progress."""
        if threading.get_ident() == self.main:
            self.depth -= 1
            if self.depth <= 0:
                self.depth, self.wait_since = 0, None
                self.last_progress = time.monotonic()

    def at(self, iteration, phase=OTHER):
        """The main thread is at `iteration`, in its training rows (ROWS) or elsewhere."""
        self.iteration, self.phase = int(iteration), phase
        self.last_progress = time.monotonic()

    def beating(self, flag):
        """`flag` (a checkpoint.StopFlag) as the training blocks read it: every read, once a
        block of rows, is progress."""
        return _Beating(flag, self)

    # ---- the thread -------------------------------------------------------------------
    def _run(self):
        try:
            while not self._stop.wait(self.tick):
                self._answer()
                since = self.wait_since
                now = time.monotonic()
                if since is not None and now - since > self.timeout and now >= self.next_check:
                    self._episode(since)
        except Exception as e:  # noqa: BLE001 - the watchdog never takes a run down by itself
            print(f"warning: rank {self.rank}: the stall watchdog stopped: {type(e).__name__}: {e}",
                  file=sys.stderr, flush=True)

    def _mine(self, round_):
        now = time.monotonic()
        since = self.wait_since
        return np.array([self.session, round_, self.rank, self.iteration, self.phase,
                         -1 if since is None else int((now - since) * 1000),
                         int((now - self.last_progress) * 1000)], dtype=np.int64)

    def _answer(self):
        """Answer the pings that came; forget the sends that have gone."""
        MPI = _mpi()
        while self.ping_req.Test(self.status):
            source, (session, round_) = self.status.Get_source(), self.ping_buf[:2].tolist()
            self.ping_req = self.side.Irecv(self.ping_buf, source=MPI.ANY_SOURCE, tag=PING)
            if session == self.session:
                out = self._mine(round_)
                self._sends.append((self.side.Isend(out, dest=source, tag=ANSWER), out))
        self._sends = [(q, b) for q, b in self._sends if not q.Test()]

    def _round(self, targets):
        """Ping `targets`; {rank: Answer} of those that answered within the grace time."""
        self.round += 1
        ping = np.array([self.session, self.round, self.rank], dtype=np.int64)
        pending = {}
        for r in targets:
            buf = np.zeros(len(Answer._fields), dtype=np.int64)
            pending[r] = (self.side.Irecv(buf, source=r, tag=ANSWER), buf)
            self._sends.append((self.side.Isend(ping, dest=r, tag=PING), ping))
        got, end = {}, time.monotonic() + self.grace
        while pending and time.monotonic() < end and not self._stop.is_set():
            self._answer()
            for r, (req, buf) in list(pending.items()):
                if req.Test():
                    a = Answer(*buf.tolist())
                    if a.session == self.session and a.round == self.round:
                        got[r] = a
                        del pending[r]
                    else:  # a late answer to an earlier round
                        pending[r] = (self.side.Irecv(buf, source=r, tag=ANSWER), buf)
            time.sleep(min(0.02, self.tick))
        self._leftover.extend(req for req, _ in pending.values())
        return got

    def stuck(self, a):
        """Whether an answering rank is stuck: in its training rows, no progress for the timeout."""
        return a.phase == ROWS and a.waiting_ms < 0 and a.idle_ms > self.timeout * 1000

    def _healthy(self, a):
        return a is not None and not self.stuck(a)

    def _episode(self, since):
        """The main thread has waited longer than the timeout: who leads, and what happened."""
        self.next_check = time.monotonic() + self.timeout  # (asked again a timeout later)
        answers = {}
        if self.rank > 0:
            answers = self._round([0])
            if self._healthy(answers.get(0)):
                return
        answers.update(self._round([r for r in range(1, self.size) if r != self.rank]))
        if any(self._healthy(answers.get(r)) for r in range(self.rank)):
            return
        verdict = self.verdict(answers, time.monotonic() - since)
        if verdict and not self._stop.is_set():  # (not once the run has ended meanwhile)
            self._act(verdict)

    def verdict(self, answers, waited):
        """(the leader's line's first part, the ranks to blame), or None (every rank alive
        and some busy)."""
        others = [r for r in range(self.size) if r != self.rank]
        silent = [r for r in others if r not in answers]
        stuck = [r for r in others if r in answers and self.stuck(answers[r])]
        where = f"iteration {self.iteration}, rank {self.rank} waiting in {self.wait_name or 'a collective'}"
        parts = [f"{self.who(r)} stopped answering" for r in silent]
        parts += [f"{self.who(r)} is stuck (alive, no progress in its training rows for "
                  f"{answers[r].idle_ms / 1000:.0f} s)" for r in stuck]
        if parts:
            return f"{'; '.join(parts)}: no progress for {waited:.0f} s ({where})", sorted(silent + stuck)
        if waited >= 2 * self.timeout and all(a.waiting_ms >= 2 * self.timeout * 1000 for a in answers.values()):
            return (f"every rank answers but none has made progress for {waited:.0f} s, all waiting in "
                    f"collectives ({where})", [])  # (a second look: no single long collective)
        return None

    def who(self, r):
        t = self.table[r]
        world = f"world rank {t['world']}, " if self.world_size not in (None, self.size) else ""
        return f"rank {r} ({world}pid {t['pid']} on {t['host']})"

    def _act(self, verdict):
        """The leader: checkpoint, one line, MPI_Abort with the requeue status."""
        verdict, culprits = verdict
        with self.acting:
            try:
                saved = self.keeper(culprits) if self.keeper is not None else "nothing saved"
            except Exception as e:  # noqa: BLE001 - said, and the job still ends for a requeue
                saved = f"no checkpoint written ({type(e).__name__}: {e})"
            print(f"h2odl_mpi: stall: {verdict}; {saved}; exit status {REQUEUE_EXIT_CODE} (requeue)",
                  file=sys.stderr, flush=True)
            sys.stdout.flush()
            abort(_mpi().COMM_WORLD, REQUEUE_EXIT_CODE)
            os._exit(REQUEUE_EXIT_CODE)  # (MPI_Abort does not return)


class _Beating:
    """A stop flag whose every read is a sign of progress (see Watchdog.beating)."""

    def __init__(self, flag, watch):
        self._flag, self._watch = flag, watch

    @property
    def signum(self):
        self._watch.last_progress = time.monotonic()
        return self._flag.signum


@contextlib.contextmanager
def watching(params, comm, what="the models' checkpoints stand"):
    """A Watchdog (Watchdog.start: collective, None when off) over the block; `what`: what
    its line says was kept."""
    dog = Watchdog.start(params, comm)
    if dog is not None:
        dog.keeper = lambda culprits: f"nothing saved here ({what})"
    try:
        yield dog
    finally:
        if dog is not None:
            dog.stop()
