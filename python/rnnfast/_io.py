"""File reading and writing shared by the loaders and savers: atomic writes
(nothing a user saved is ever left half-written), bounded reads of zip
members and JSON, and the error every refused file raises."""

from __future__ import annotations

import errno
import json
import lzma
import os
import secrets
import socket
import stat
import struct
import zipfile
import zlib


class FormatError(ValueError):
    """A model file that cannot be read: missing parts, truncated, corrupted,
    forged or of another version (``rnnfast.saving.FormatError``)."""


H5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Deeper JSON is refused before any recursive walk sees it: Keras configs are
# some 10 levels deep, plus about 6 per nested model.
MAX_JSON_DEPTH = 200
# What reading a damaged zip archive can raise, besides BadZipFile: a flipped
# compression method gives zlib, bz2 (OSError) or lzma errors, a flipped flag
# an encrypted member (RuntimeError) or a filename that is not UTF-8.
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, lzma.LZMAError, EOFError,
              OSError, ValueError, NotImplementedError, RuntimeError, KeyError, struct.error,
              OverflowError)
_CHUNK = 1 << 20


def file_head(path, what="model file") -> bytes:
    """The first 8 bytes of a model file, after checking that it is one (a clear
    error for a missing path or a directory)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"No {what} at {path!r}")
    if os.path.isdir(path):
        raise FormatError(f"{path} is a directory, not a {what}")
    with open(path, "rb") as f:
        return f.read(8)


# ---- reading ---------------------------------------------------------------------------

def read_member(zf, name, limit, where) -> bytes:
    """A zip member's bytes, refused before decompressing when it declares
    more than `limit` bytes, and read in chunks that stop past `limit` (a
    forged size cannot make the read allocate more)."""
    try:
        info = zf.getinfo(name)
        if info.file_size > limit:
            raise FormatError(f"{where}: {name} declares {info.file_size} bytes, more than the "
                              f"{limit} it may hold; the file is corrupted or forged")
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise FormatError(f"{where}: {name} is stored with {info.compress_size} bytes but "
                              f"declares {info.file_size}; the file is corrupted")
        data = bytearray()
        with zf.open(info) as f:
            while len(data) <= info.file_size:
                chunk = f.read(min(_CHUNK, info.file_size + 1 - len(data)))
                if not chunk:
                    break
                data += chunk
    except FormatError:
        raise
    except ZIP_ERRORS as e:
        raise FormatError(f"{where}: {name} is corrupted ({type(e).__name__}: {e})") from None
    if len(data) != info.file_size:
        raise FormatError(f"{where}: {name} holds {len(data)} bytes, not the {info.file_size} "
                          f"it declares; the file is corrupted")
    return bytes(data)


def json_member_limit(archive_size, cap) -> int:
    """What a JSON member of an archive may expand to: configs are a few
    times their archive at most, so a deflate bomb is refused unread."""
    return min(cap, 1024 * 1024 + 100 * archive_size)


def check_depth(obj, what, limit=MAX_JSON_DEPTH) -> None:
    """Refuses JSON nested deeper than `limit` (walked without recursion)."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise FormatError(f"{what} is nested more than {limit} levels deep; refused")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def parse_json(raw, what):
    """JSON text (bytes or str) from a file, checked for depth."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{what} is not UTF-8 text ({e})") from None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as e:  # JSONDecodeError is a ValueError
        raise FormatError(f"{what} is not valid JSON ({type(e).__name__}: {e})") from None
    check_depth(value, what)
    return value


# ---- writing ---------------------------------------------------------------------------

# A temporary is named .<target>.tmp-<host>-<pid>-<random>, so that the next
# save can tell which are left by dead processes of this machine.
_HOST = format(zlib.crc32(socket.gethostname().encode("utf-8", "replace")), "08x")


def _temporary_prefix(basename):
    return f".{basename[:200]}.tmp-{_HOST}-"  # within NAME_MAX (255) for any target


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, another user's
        return True
    return True


def remove_stale_temporaries(path) -> None:
    """Removes the temporaries of `path` that processes of this machine,
    since dead (killed mid-save), left beside it."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temporary_prefix(os.path.basename(path))
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid, _, token = name[len(prefix):].partition("-")
        if not pid.isdigit() or len(token) != 16 or int(pid) == os.getpid() or \
                _pid_alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _create_temporary(path, names):
    """(fd, name) of a new temporary beside `path`: mode 0666 less the umask
    (applied by open), or the mode of the file it replaces. Its name goes into
    `names` before the file exists, so that a KeyboardInterrupt arriving
    between the open and the return still finds it to remove."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temporary_prefix(os.path.basename(path))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode) & 0o777
    except OSError:
        mode = None
    for _ in range(100):
        tmp = os.path.join(directory, f"{prefix}{os.getpid()}-{secrets.token_hex(8)}")
        names.append(tmp)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         0o666)
        except FileExistsError:
            names.pop()  # another's file: not ours to remove
            continue
        if mode is not None:
            try:
                os.fchmod(fd, mode)
            except BaseException:
                os.close(fd)
                os.unlink(tmp)
                raise
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", prefix)


def atomic_write(path, write) -> None:
    """Calls write(f) on a temporary file beside `path`, then renames it into
    place, so that an interrupted save never leaves a half-written file there.
    The temporary is removed on any exception (KeyboardInterrupt included);
    those of killed processes are removed by the next save of `path`."""
    path = os.fspath(path)
    remove_stale_temporaries(path)
    names = []
    try:
        fd, tmp = _create_temporary(path, names)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        for tmp in names:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise


def write_bytes_atomically(path, data: bytes) -> None:
    atomic_write(path, lambda f: f.write(data))
