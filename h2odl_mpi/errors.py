"""User-facing errors and the collective check that keeps ranks from hanging.

A UserError is bad input or a bad parameter: the CLI prints its message (which names the
file, row, column or parameter) without a traceback and exits with status 2.  In an MPI job
every rank must learn of an error raised on one rank before anyone enters the next
collective: code that may fail on some ranks only calls `agree(comm, error)`, a small
allgather outside any hot path, and every rank raises the same UserError.  Where the other
ranks cannot be told (rank 0 failing to write a file while they train on), `fail_alone`
prints the message and ends the whole job.
"""
import sys

from h2odl_mpi.collectives import allgather_obj, parallel

# exit status meaning "stopped by SIGTERM/SIGUSR1 after writing a checkpoint: requeue me"
# (training.checkpoint writes it, the job scripts requeue on it)
REQUEUE_EXIT_CODE = 85


class UserError(Exception):
    """Bad input or parameter; the message is meant for the user as it is."""


class EstimatorError(UserError, ValueError):
    """A bad parameter or bad data given through the Python API (the estimators, h2o-py's
    module, data in memory): a UserError (one line naming the parameter, file or column)
    that scikit-learn also recognises as a ValueError."""


def agree(comm, error=None, own_first=False):
    """Collective over `comm`: raise the same UserError on every rank if any rank had one.

    Each rank passes the exception it caught (or None).  A rank's non-UserError exception is
    reported with its type name.  With comm None (no MPI) the error is simply re-raised.
    own_first: a rank with an error of its own raises that one (so that rank 0 reports its
    own message plainly), the others the first failing rank's.
    """
    if not parallel(comm):
        if error is not None:
            raise error if isinstance(error, UserError) else UserError(_describe(error)) from error
        return
    mine = None if error is None else _describe(error)
    messages = allgather_obj(comm, mine)
    if own_first and isinstance(error, UserError):
        raise error
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if failed:
        rank, message = failed[0]
        more = f" (and {len(failed) - 1} more rank(s) failed)" if len(failed) > 1 else ""
        raise UserError(f"rank {rank}: {message}{more}")


def _describe(error):
    if isinstance(error, UserError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def fail_alone(comm, message, status=2):
    """A failure on this rank only, at a point where the others are not listening (e.g.
    rank 0 writing a checkpoint while they go on): print the message and end every rank
    with `status` (MPI_Abort), rather than leave them waiting.  Without other ranks it
    raises UserError, which the CLI reports the usual way."""
    if not parallel(comm):
        raise UserError(message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    abort(comm, status)


ABORT_GRACE_S = 0.5  # for the launcher to pass on what the rank printed before it is killed


def abort(comm, status):
    """MPI_Abort on `comm`, a moment after this rank's last words: the launcher forwards
    the ranks' output asynchronously, and an abort can kill its forwarding with the line
    still in the pipe (seen under load: the job ended with status 2 and no message)."""
    import time
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(ABORT_GRACE_S)
    comm.Abort(status)


class H2OValueError(EstimatorError):
    """h2o-py's H2OValueError: a bad argument to an H2OFrame or h2o function (a ValueError)."""


class H2OTypeError(EstimatorError, TypeError):
    """h2o-py's H2OTypeError: an argument of the wrong type."""


class H2OResponseError(EstimatorError):
    """h2o-py's H2OResponseError: what a failed model build raises (the server's refusal
    of the parameters or data in h2o-py; here the same one line)."""
