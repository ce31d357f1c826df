"""Writing output files so that a failure is one clear error and no torn file.

A result, a sidecar, a comparison or a report page is written to a temporary
file beside its destination and moved into place only once complete, so a
full disk or a vanished folder never leaves half a JSON file where a reader
expects a whole one. A destination that is not a regular file (`/dev/null`,
a pipe) is written directly: it cannot be replaced, and nothing is left in
it to tear. Any failure becomes an `OutputFileError` naming the path, which
the command line reports as one line with exit status 2.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from aioredismq.errors import OutputFileError

__all__ = ["read_input", "write_bytes_safely", "write_text_safely"]


def read_input(path: Path) -> bytes:
    """The bytes of a file a user named as input (workload, driver, payload,
    result). Raises OSError as reading does; a device or pipe such as
    `/dev/zero` would never end, so it raises one saying so."""
    with path.open("rb") as stream:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        return stream.read()


def write_text_safely(path: Path, text: str, *, what: str = "output file") -> None:
    """Write `text` (UTF-8) to `path` whole, or raise OutputFileError."""
    write_bytes_safely(path, text.encode("utf-8"), what=what)


def write_bytes_safely(path: Path, data: bytes, *, what: str = "output file") -> None:
    """Write `data` to `path` whole, or raise OutputFileError; see the module."""
    try:
        if path.exists() and not path.is_file():
            with path.open("wb") as stream:
                stream.write(data)
            return
        _replace_atomically(path, data)
    except OSError as err:
        raise OutputFileError(str(path), what, err.strerror or str(err)) from err


def _replace_atomically(path: Path, data: bytes) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=folder
    )
    try:
        # mkstemp makes the file private (0600); give it the mode any new
        # file gets here, so a CI uploader or web server can read it.
        os.fchmod(handle, _NEW_FILE_MODE & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_NEW_FILE_MODE = 0o666


def _umask() -> int:
    # The only way to read it is to set it; put it back at once.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
