"""Input discovery: turn a path (file, directory, glob, zip archive or list) into input files.

Each `InputFile` knows how to open its decompressed byte stream (plain, gzip, bz2 or a zip
member) and whether it can be split into byte ranges (only plain files can).  Compression
is recognised by magic bytes, so a misnamed file is still read correctly.  Every rank
resolves the same path the same way (sorted names), so the list is identical everywhere.
"""
import bz2
import glob
import gzip
import io
import os
import zipfile
import zlib
from dataclasses import dataclass

from h2odl_mpi.errors import UserError

try:  # ISA-L's inflate (igzip): the same gzip format and errors, about 3.5x zlib's speed;
    # it matters because every rank decompresses the whole of a single .gz input
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _isal_error
except ImportError:  # pragma: no cover - isal is in requirements.txt; the standard library serves too
    _gzip, _isal_error = gzip, zlib.error

PLAIN, GZIP, BZIP2, ZIP = "plain", "gzip", "bz2", "zip"
_MAGIC = ((b"\x1f\x8b", GZIP), (b"BZh", BZIP2), (b"PK\x03\x04", ZIP))
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    """One input: a file on disk, or one member of a zip archive."""
    path: str
    compression: str
    size: int                 # bytes on disk (compressed size for compressed inputs)
    member: str = None        # zip member name

    @property
    def name(self):
        """How messages refer to this input."""
        return f"{self.path}:{self.member}" if self.member else self.path

    @property
    def splittable(self):
        """True if byte ranges of the file are byte ranges of the data (uncompressed)."""
        return self.compression == PLAIN

    def text_size(self):
        """Bytes of text once decompressed: exact for plain files and for a gzip file whose
        trailer's size (modulo 2**32) is plausible, else 4 x the compressed size."""
        if self.compression == PLAIN:
            return self.size
        if self.compression == GZIP and self.size >= 18:
            try:
                with open(self.path, "rb") as fh:
                    fh.seek(-4, os.SEEK_END)
                    stated = int.from_bytes(fh.read(4), "little")
            except OSError:
                stated = 0
            if stated >= self.size:
                return stated
        return 4 * self.size

    def open(self):
        """A binary stream of the decompressed contents."""
        if self.compression == PLAIN:
            return open(self.path, "rb", buffering=0)
        if self.compression == GZIP:
            return _gzip.open(self.path, "rb")
        if self.compression == BZIP2:
            return bz2.open(self.path, "rb")
        archive = zipfile.ZipFile(self.path)
        return _ZipMemberStream(archive, archive.open(self.member))


class _ZipMemberStream(io.RawIOBase):
    """A zip member's stream that closes its archive too."""

    def __init__(self, archive, member):
        self._archive, self._member = archive, member

    def readable(self):
        return True

    def readinto(self, buffer):
        data = self._member.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def close(self):
        if not self.closed:
            self._member.close()
            self._archive.close()
        super().close()


# Errors a corrupt compressed stream raises while it is read.
DECOMPRESSION_ERRORS = (EOFError, OSError, zlib.error, _isal_error, zipfile.BadZipFile, ValueError)


def resolve_inputs(path):
    """The sorted list of InputFile a path names; UserError if it names nothing readable.

    `path` may be a file, a directory (its non-hidden files, sorted), a glob pattern, a zip
    archive (its non-directory members, in archive order) or a list of any of these.
    """
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    if not paths:
        raise UserError("no input path given")
    inputs = []
    for p in paths:
        p = os.fspath(p)
        if any(ch in _GLOB_CHARS for ch in p) and not os.path.exists(p):
            matches = sorted(m for m in glob.glob(p) if os.path.isfile(m))
            if not matches:
                raise UserError(f"{p}: no file matches this pattern")
            files = matches
        elif os.path.isdir(p):
            files = sorted(os.path.join(p, f) for f in os.listdir(p)
                           if not f.startswith(".") and os.path.isfile(os.path.join(p, f)))
            if not files:
                raise UserError(f"{p}: directory has no files")
        elif os.path.isfile(p):
            files = [p]
        else:
            raise UserError(f"{p}: no such file or directory")
        for f in files:
            inputs.extend(_describe_file(f))
    return inputs


def _describe_file(path):
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        size = os.path.getsize(path)
    except OSError as err:
        raise UserError(f"{path}: cannot read: {err.strerror or err}") from err
    compression = next((kind for prefix, kind in _MAGIC if magic.startswith(prefix)), PLAIN)
    if compression != ZIP:
        return [InputFile(path, compression, size)]
    try:
        with zipfile.ZipFile(path) as archive:
            members = [(i.filename, i.compress_size) for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as err:
        raise UserError(f"{path}: not a readable zip archive: {err}") from err
    if not members:
        raise UserError(f"{path}: zip archive has no files")
    return [InputFile(path, ZIP, size, member=name) for name, size in members]


def read_head(input_file, nbytes):
    """Up to `nbytes` decompressed bytes from the start of an input (for sniffing)."""
    try:
        with input_file.open() as stream:
            return stream.read(nbytes)
    except DECOMPRESSION_ERRORS as err:
        raise UserError(f"{input_file.name}: cannot read {input_file.compression} data: {err}") from err
