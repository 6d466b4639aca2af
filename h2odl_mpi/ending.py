"""How a multi-rank command ends: its last agreement (end_together) and the exit alarm that
bounds the wait in MPI_Finalize after it (exit_within, exit_line)."""
import math
import os
import socket

from h2odl_mpi.collectives import allgather_obj, rank_and_size
from h2odl_mpi.errors import REQUEUE_EXIT_CODE


def end_together(job):
    """The command's last collective: every rank is here before any leaves (a rank that froze
    until now is the watchdog's to find), and each learns the others' pid and host, which its
    exit line names (exit_within)."""
    job.peers = allgather_obj(job.comm, {"pid": os.getpid(), "host": socket.gethostname()})


def exit_within(job):
    """Once a multi-rank train or grid is done (every rank through end_together, the results
    written): if this process has not ended `job.exit_deadline` seconds later, it writes one
    line and ends with the requeue status (kernel.exit_alarm: a C signal handler).
    MPI_Finalize, after Python has ended, waits for every rank: one that froze after the last
    agreement would hold the others there for ever, out of the stall watchdog's reach.  For
    the program only (python -m h2odl_mpi), never in a process that goes on (cli.main in
    tests)."""
    if job.exit_deadline:
        from h2odl_mpi.kernel import exit_alarm
        seconds = max(1, int(math.ceil(job.exit_deadline)))
        exit_alarm(seconds, exit_line(rank_and_size(job.comm)[0], job.peers or [], seconds), REQUEUE_EXIT_CODE)


def exit_line(rank, peers, seconds):
    """The line of a rank whose exit alarm went off: it names the other ranks (the one, of
    two; up to three, of more: the frozen one is then the one that wrote no such line)."""
    others = [f"rank {r} (pid {p['pid']} on {p['host']})" for r, p in enumerate(peers) if r != rank]
    if 0 < len(others) <= 3 and sum(map(len, others)) <= 600:   # (the line fits H2O_EXIT_LINE_MAX)
        who = " or ".join(others)
    else:
        who = f"one of the {max(len(peers) - 1, 1)} other ranks"
    said = "" if len(peers) <= 2 else " (each rank that waited writes this line: the frozen one wrote none)"
    return (f"h2odl_mpi: stall: {who} stopped answering after the last agreement: the results are "
            f"written, but rank {rank} waited {seconds} s for it to end (in MPI_Finalize){said}; "
            f"exit status {REQUEUE_EXIT_CODE} (requeue: the resumed run finds the work done)\n")
