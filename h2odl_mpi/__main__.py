"""`python -m h2odl_mpi ...`: the command line (see h2odl_mpi.cli)."""
import sys

from h2odl_mpi.cli import main

if __name__ == "__main__":
    sys.exit(main())
