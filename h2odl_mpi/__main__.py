"""`python -m h2odl_mpi ...`: the command line (see h2odl_mpi.cli)."""
import sys

from h2odl_mpi.cli import Job, main
from h2odl_mpi.ending import exit_within

if __name__ == "__main__":
    job = Job()
    status = main(job=job)
    if status == 0:
        exit_within(job)  # (MPI_Finalize, after Python, waits for every rank: bounded)
    sys.exit(status)
