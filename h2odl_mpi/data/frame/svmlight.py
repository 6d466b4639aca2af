"""SVMLight / LibSVM text: `label index:value index:value ... [# comment]` per line.

pyarrow has no reader for this sparse format, so this is a small parser of one TextBlock.
Feature indices are integers >= 0 (LibSVM files start at 1); `qid:` tokens and comments are
ignored.  Column 0 of the result is the label; feature i goes to column i + 1.

The column store is dense by column: feature index i makes i + 1 columns, whatever the file's
size, so indices above MAX_FEATURE_INDEX (2^20, the widest hashed feature space in common
use; about 1 GB of column-store overhead and a network input layer that wide) are refused
with the file and line, before any column is made.
"""
import numpy as np

from h2odl_mpi.errors import UserError

MAX_FEATURE_INDEX = 1 << 20


def parse_svmlight_block(block):
    """(rows, {column index: float64 values}) for one block; absent features are 0.0."""
    labels, rows, columns, values = [], [], [], []
    row = 0
    for line_index, line in enumerate(block.data.split(b"\n")):
        comment = line.find(b"#")
        if comment >= 0:
            line = line[:comment]
        tokens = line.split()
        if not tokens:
            continue
        try:
            labels.append(float(tokens[0]))
            for token in tokens[1:]:
                if token.startswith(b"qid:"):
                    continue
                index, colon, value = token.partition(b":")
                if not colon:
                    raise ValueError(f"{token.decode(errors='replace')!r} is not index:value")
                feature = int(index)
                if feature < 0:
                    raise ValueError(f"negative feature index {feature}")
                if feature > MAX_FEATURE_INDEX:
                    raise ValueError(f"feature index {feature} is above {MAX_FEATURE_INDEX:,}, the widest "
                                     "input this program reads from SVMLight (renumber the features)")
                columns.append(feature + 1)
                values.append(float(value))
                rows.append(row)
        except ValueError as err:
            line_number = block.start_line() + line_index
            raise UserError(f"{block.source.name}, line {line_number}: not SVMLight: {err}") from None
        row += 1
    result = {0: np.asarray(labels, dtype=np.float64)}
    if columns:
        columns = np.asarray(columns, dtype=np.int64)
        rows = np.asarray(rows, dtype=np.int64)
        values = np.asarray(values, dtype=np.float64)
        order = np.argsort(columns, kind="stable")
        columns, rows, values = columns[order], rows[order], values[order]
        starts = np.flatnonzero(np.r_[True, columns[1:] != columns[:-1]])
        for start, stop in zip(starts, np.r_[starts[1:], columns.size]):
            dense = np.zeros(row, dtype=np.float64)
            dense[rows[start:stop]] = values[start:stop]
            result[int(columns[start])] = dense
    return row, result


def looks_like_svmlight(sample):
    """True if the first non-empty, non-comment line of `sample` reads as SVMLight."""
    for line in sample.split(b"\n"):
        line = line.split(b"#", 1)[0].strip()
        if not line:
            continue
        tokens = line.split()
        if len(tokens) < 2:
            return False
        try:
            float(tokens[0])
        except ValueError:
            return False
        return all(b":" in t and t.split(b":", 1)[0].replace(b"qid", b"0").isdigit() for t in tokens[1:])
    return False
