"""Run fuzz work in child processes that may crash, hang or grow without bound.

Not a script: fuzz/run.py and fuzz/model_bytes.py use it.  `supervise(jobs, workers,
hang_s, memory_bytes)` runs each job, a callable job(log) taking a Log, in a forked child
under an address-space limit of `memory_bytes` (the memory bound the fuzzing states: a
reader that wants more gets a MemoryError, or dies, and either is reported).  Before each
input the job calls log.start(key) (key: a JSON-able value naming the input, e.g. the case
itself) and after it log.done(outcome, detail).  The parent watches the children: one that
dies by a signal or exits with an error while an input was open is a CRASH of that input;
one that logs nothing for `hang_s` seconds is killed, a HANG of the open input.  A job
that stopped that way is started again with `resume=True` (it then skips the inputs it
logged) until it ends by itself.  Returns every record: (job index, key, outcome, detail).
"""
import json
import multiprocessing
import os
import resource
import shutil
import signal
import tempfile
import time


class Log:
    """What a job writes for the parent: one JSON line per event, flushed at once."""

    def __init__(self, path, resume):
        self.path, self.resume = path, resume
        self.done_keys = set()
        if resume and os.path.exists(path):
            for start, _outcome in _read(path):
                self.done_keys.add(json.dumps(start, sort_keys=True))
        self._f = open(path, "a", buffering=1)

    def seen(self, key):
        """Whether an earlier run of this job already logged input `key`."""
        return json.dumps(key, sort_keys=True) in self.done_keys

    def start(self, key):
        self._f.write(json.dumps({"start": key}) + "\n")

    def done(self, outcome, detail=""):
        self._f.write(json.dumps({"outcome": outcome, "detail": detail}) + "\n")

    def note(self, **values):
        self._f.write(json.dumps({"note": values}) + "\n")


def _events(path):
    """The events of a log, in order (a line cut by a crash left out)."""
    with open(path) as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def _read(path):
    """[(key, (outcome, detail) or None)] of a log, and the notes are left out."""
    out = []
    for event in _events(path):
        if "start" in event:
            out.append((event["start"], None))
        elif "outcome" in event and out and out[-1][1] is None:
            out[-1] = (out[-1][0], (event["outcome"], event["detail"]))
    return out


def notes(path):
    return [event["note"] for event in _events(path) if "note" in event]


def _child(job, path, resume, memory_bytes):
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    log = Log(path, resume)
    job(log)
    os._exit(0)


def supervise(jobs, workers=2, hang_s=60.0, memory_bytes=8 << 30, say=print, with_notes=False):
    """Run `jobs` (see the module docstring); returns [(job, key, outcome, detail)] and, with
    `with_notes`, the notes the jobs logged (Log.note), each with its job's index.  The logs
(one JSON line per input) are deleted at the end, unless FUZZ_KEEP_LOGS is set."""
    ctx = multiprocessing.get_context("fork")
    tmp = tempfile.mkdtemp(prefix="fuzz-logs-")
    paths = {i: os.path.join(tmp, f"job{i}.jsonl") for i in range(len(jobs))}
    pending = list(range(len(jobs)))
    running = {}   # job -> (process, last size, last change)
    resumed = set()
    while pending or running:
        while pending and len(running) < workers:
            i = pending.pop(0)
            p = ctx.Process(target=_child, args=(jobs[i], paths[i], i in resumed, memory_bytes))
            p.start()
            running[i] = (p, -1, time.time())
        time.sleep(0.2)
        for i, (p, size, changed) in list(running.items()):
            now = time.time()
            current = os.path.getsize(paths[i]) if os.path.exists(paths[i]) else 0
            if current != size:
                size, changed = current, now
            if p.exitcode is None and now - changed < hang_s:
                running[i] = (p, size, changed)
                continue
            hung = p.exitcode is None
            if hung:
                p.kill()
                p.join()
            del running[i]
            open_key = _open_input(paths[i])
            if p.exitcode == 0 and not hung:
                continue
            why = (f"HANG (no progress for {hang_s:.0f} s)" if hung else
                   f"killed by signal {-p.exitcode}" if p.exitcode < 0 else f"exit status {p.exitcode}")
            if open_key is None:
                say(f"job {i}: {why} outside any input")
                continue
            outcome = "HANG" if hung else "CRASH"
            say(f"job {i}: {outcome} ({why}) at {json.dumps(open_key)[:300]}")
            with open(paths[i], "a") as f:   # the input is done: a resumed job skips it
                f.write(json.dumps({"outcome": outcome, "detail": why}) + "\n")
            resumed.add(i)
            pending.append(i)
    records, found = [], []
    for i in range(len(jobs)):
        if os.path.exists(paths[i]):
            records.extend((i, key, result[0], result[1]) for key, result in _read(paths[i]) if result)
            found.extend(dict(n, job=i) for n in notes(paths[i]))
    if os.environ.get("FUZZ_KEEP_LOGS"):
        say(f"logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return (records, found) if with_notes else records


def _open_input(path):
    """The key of the input a log started and did not finish, or None."""
    if not os.path.exists(path):
        return None
    events = _read(path)
    return events[-1][0] if events and events[-1][1] is None else None
