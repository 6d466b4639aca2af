"""Files that appear whole or not at all: write to a temporary name beside the target,
then rename it over the target (rename is atomic on POSIX file systems, parallel ones
included); on a failure the temporary file is removed and the target left as it was."""
import contextlib
import os


@contextlib.contextmanager
def replacing(path, mode=None):
    """Yield a temporary path beside `path` to write; on success it replaces `path` (with
    the permission bits `mode`, if given), on an exception it is removed."""
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
