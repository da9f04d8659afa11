"""Atomic file writes: nothing a user saved is ever left half-written."""

from __future__ import annotations

import os
import tempfile


class FormatError(ValueError):
    """A model file that cannot be read: missing parts, truncated, corrupted,
    forged or of another version (``rnnfast.saving.FormatError``)."""


H5_MAGIC = b"\x89HDF\r\n\x1a\n"


def file_head(path, what="model file") -> bytes:
    """The first 8 bytes of a model file, after checking that it is one (a clear
    error for a missing path or a directory)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {what} at {path!r}")
    if os.path.isdir(path):
        raise FormatError(f"{path} is a directory, not a {what}")
    with open(path, "rb") as f:
        return f.read(8)


def atomic_write(path, write) -> None:
    """Calls write(f) on a temporary file beside `path`, then renames it into
    place, so that an interrupted save never leaves a half-written file there."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_bytes_atomically(path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))
