"""Distributed ingest into a compressed column store (H2O's Frame, per MPI rank).

    from h2odl_mpi.data.frame import Frame
    frame = Frame.read("data.csv.gz", comm=MPI.COMM_WORLD)      # each rank reads its share
    frame.n_rows, frame.names, frame.summary(), frame.head()

Modules: encoding (chunk encodings), column (a column's chunks), sources (input files),
sharding (who reads what), csv_format / svmlight / parquet_format (parsers), blanks (H2O-3's
rule for blanks around CSV fields), parse_options (H2O-3's na_strings and col_types),
builder (encode blocks as they arrive), assemble (agree kinds and domains), readers (the
per-format pipelines), summary (global column statistics), frame (the API), describe (the
command).
"""
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC, Column
from h2odl_mpi.data.frame.encoding import DESCRIPTOR_DTYPE, Chunk, Encoding, encode
from h2odl_mpi.data.frame.frame import Frame
from h2odl_mpi.data.frame.summary import ColumnSummary

__all__ = ["Frame", "Column", "Chunk", "Encoding", "DESCRIPTOR_DTYPE", "ColumnSummary",
           "encode", "NUMERIC", "CATEGORICAL"]
