"""H2O-3's parse options `na_strings` and `col_types`: checked, then resolved to columns.

h2o-py's `import_file(..., na_strings=..., col_types=...)` takes them in several forms; the
readers take the same forms (Frame.read(path, na_strings=..., col_types=...)):

* na_strings: a list of strings missing in every column; a list of lists, one per column
  (None: none for that column); or a dict {column name: string or list of strings}.  They
  are missing *besides* the reader's defaults (csv_format.NA_STRINGS).  A field equal to one
  of them (after H2O's whitespace rule, csv_format) is NA, quoted or not, in any column.
* col_types: a list of types, one per column (None: guessed), or a dict {column name: type}.
  "numeric", "real", "float", "double", "int" make the column numeric: a value that is not
  a number is NA, as in H2O-3 (FVecParseWriter.addStrCol on a forced numeric column), and
  counted in a warning; "enum", "factor", "categorical" make it categorical: numbers become
  levels as written ("1.0" stays "1.0").  "string", "time", "uuid" and "unknown" are H2O-3
  column types this store does not hold; they are refused with the column's name.

`check_na_strings` and `check_col_types` check the form before anything is read (the same
on every rank, so every rank raises the same error); `resolve` maps the checked forms onto
the columns once their names are known (rank 0 sniffing the CSV; readers agree on errors).
"""
from h2odl_mpi.errors import UserError
from h2odl_mpi.data.frame.column import CATEGORICAL, NUMERIC

GLOBAL, PER_COLUMN, BY_NAME = "global", "per_column", "by_name"
TYPE_KINDS = {"numeric": NUMERIC, "real": NUMERIC, "float": NUMERIC, "double": NUMERIC, "int": NUMERIC,
              "enum": CATEGORICAL, "factor": CATEGORICAL, "categorical": CATEGORICAL}
REFUSED_TYPES = {
    "string": "the column store keeps numeric and categorical columns only (give 'enum' for text)",
    "time": "dates and times are not parsed from text (give 'enum' for their text, or read Parquet, "
            "whose timestamps are numeric milliseconds)",
    "uuid": "UUID columns are not held (give 'enum')",
    "unknown": "a column of NA only carries no information (leave it out with ignored_columns)",
}


def check_na_strings(na_strings, what="na_strings"):
    """(form, value) of a valid na_strings (None when not given); UserError naming `what`.

    GLOBAL: a tuple of strings; PER_COLUMN: a list of tuples; BY_NAME: {name: tuple}."""
    if na_strings is None:
        return None
    if isinstance(na_strings, str):
        return GLOBAL, (na_strings,)
    if isinstance(na_strings, dict):
        out = {}
        for name, strings in na_strings.items():
            if not isinstance(name, str):
                raise UserError(f"{what}: keys must be column names, got {name!r}")
            out[name] = _strings(strings, f"{what}[{name!r}]")
        return BY_NAME, out
    if not isinstance(na_strings, (list, tuple)):
        raise UserError(f"{what}: expected a list of strings, a list of lists (one per column) or a "
                        f"dict {{column: strings}}, got {type(na_strings).__name__}")
    items = list(na_strings)
    if items and all(x is None or isinstance(x, (list, tuple)) for x in items):
        return PER_COLUMN, [_strings(x, f"{what}[{j}]") for j, x in enumerate(items)]
    return GLOBAL, _strings(items, what)


def _strings(value, what):
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value):
        return tuple(value)
    bad = next((s for s in value if not isinstance(s, str)), value) if isinstance(value, (list, tuple)) else value
    raise UserError(f"{what}: expected strings, got {bad!r}")


def check_col_types(col_types, what="col_types"):
    """(form, value) of a valid col_types (None when not given): PER_COLUMN, a list of kinds
    or None; BY_NAME, {name: kind}.  An unknown type or one the store cannot hold is
    refused with the column (position or name) it was given for."""
    if col_types is None:
        return None
    if isinstance(col_types, dict):
        return BY_NAME, {name: _kind(t, f"{what}: column {name!r}") for name, t in col_types.items()}
    if isinstance(col_types, (list, tuple)) and not isinstance(col_types, str):
        return PER_COLUMN, [_kind(t, f"{what}: column {j + 1}") for j, t in enumerate(col_types)]
    raise UserError(f"{what}: expected a list of types (one per column) or a dict {{column: type}}, "
                    f"got {type(col_types).__name__}")


def _kind(type_name, where):
    if type_name is None:
        return None
    key = str(type_name).strip().lower()
    if key in TYPE_KINDS:
        return TYPE_KINDS[key]
    if key in REFUSED_TYPES:
        raise UserError(f"{where} has type {type_name!r}, which is not supported: {REFUSED_TYPES[key]}")
    known = ", ".join(list(TYPE_KINDS) + list(REFUSED_TYPES))
    raise UserError(f"{where}: unknown type {type_name!r} (H2O's types: {known})")


def resolve(names, na_spec=None, types_spec=None, source=""):
    """(per-column extra NA strings: a list of tuples, per-column forced kind: a list of
    NUMERIC / CATEGORICAL / None) for columns `names`.  UserError (naming `source`, the
    input) for a name that is no column or a list of the wrong length."""
    width = len(names)
    where = f"{source}: " if source else ""
    column_na = [()] * width
    if na_spec is not None:
        form, value = na_spec
        if form == GLOBAL:
            column_na = [tuple(value)] * width
        elif form == PER_COLUMN:
            if len(value) != width:
                raise UserError(f"{where}na_strings has {len(value)} lists for {width} columns")
            column_na = list(value)
        else:
            for name, strings in value.items():
                column_na[_index(names, name, "na_strings", where)] = strings
    forced = [None] * width
    if types_spec is not None:
        form, value = types_spec
        if form == PER_COLUMN:
            if len(value) != width:
                raise UserError(f"{where}col_types has {len(value)} types for {width} columns")
            forced = list(value)
        else:
            for name, kind in value.items():
                forced[_index(names, name, "col_types", where)] = kind
    return column_na, forced


def _index(names, name, what, where):
    try:
        return names.index(name)
    except ValueError:
        shown = ", ".join(names[:20]) + (" ..." if len(names) > 20 else "")
        raise UserError(f"{where}{what}: no column {name!r} (columns: {shown})") from None


def na_strings_flag(text):
    """The strings of a command-line --na_strings value: comma separated, blanks around each
    one dropped (those inside kept: "not available"), empty ones left out (an empty field
    is missing anyway)."""
    return [item.strip() for item in str(text).split(",") if item.strip()]
