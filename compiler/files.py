"""Reading user files with one-line errors, and writing outputs atomically."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pathlib
import shutil
import stat
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

from nncc.errors import NnccError


# The most a TOML file (pipeline, hardware config) may hold: real ones are a few KB; a larger
# one is a mistake (a model given as --config) or hostile, and would be read whole.
MAX_TOML_BYTES = 4 << 20


def file_kind(mode: int) -> str:
    """What a non-regular file is, for an error line."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def regular_file(path: str | os.PathLike, missing: str = "no such file") -> os.stat_result:
    """``path``'s status when it is a regular file (links followed); otherwise one NnccError.

    A FIFO would block the reader until someone writes to it and a device (/dev/zero,
    /dev/urandom) never ends, so neither is ever opened."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise NnccError(path, missing) from None
    except (OSError, ValueError) as e:  # a name too long, a NUL byte, a loop of links
        raise NnccError(path, f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    if not stat.S_ISREG(info.st_mode):
        raise NnccError(path, f"is {file_kind(info.st_mode)}, not a regular file")
    return info


def read_user_bytes(path: str | os.PathLike, limit: int, what: str) -> bytes:
    """The bytes of a small user file: a missing one, a folder, a FIFO or device, or one over
    ``limit`` bytes is an NnccError naming it (never a hang, never a read without end)."""
    info = regular_file(path)
    if info.st_size > limit:
        raise NnccError(path, f"is {info.st_size:,} bytes; a {what} holds at most {limit:,}")
    try:
        # O_NONBLOCK: should a FIFO take the file's place after the check, open() still returns.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise NnccError(path, "is not a regular file")
            data = f.read(limit + 1)
    except OSError as e:
        raise NnccError(path, f"cannot read: {e.strerror or e}") from None
    if len(data) > limit:
        raise NnccError(path, f"is over {limit:,} bytes; a {what} holds at most that")
    return data


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a user's TOML file; a missing, unreadable or malformed file is an NnccError naming it."""
    path = pathlib.Path(path)
    try:
        return tomllib.loads(read_user_bytes(path, MAX_TOML_BYTES, "TOML file").decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise NnccError(path, f"not valid TOML: {e}") from None


def check_npz(path: str | os.PathLike, option: str) -> dict[str, tuple[tuple[int, ...], Any]]:
    """Refuse, in one line, an ``--eval``/``--calib`` file numpy would fail on in a way nncc
    would not explain: not a regular file, not a zip (a bare pickle), a truncated or corrupt
    member, an array of Python objects (loading it means unpickling: never), or a header
    declaring more data than the member holds (numpy would allocate it before noticing).
    Only headers are parsed; the data is streamed once for its CRCs. Returns each array's
    shape and dtype, by name."""
    regular_file(path, f"no such file ({option})")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            if bad is not None:
                raise NnccError(path, f"{option}: member '{bad}' is corrupt (CRC mismatch)")
            return {info.filename.removesuffix(".npy"): _check_npy_member(archive, info, path, option)
                    for info in archive.infolist()}
    except zipfile.BadZipFile as e:
        raise NnccError(path, f"{option}: not a readable .npz (a zip of .npy arrays): {e}") from None
    except (OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as e:
        raise NnccError(path, f"{option}: not a readable .npz: {type(e).__name__}: {e}") from None


def _check_npy_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: object, option: str) -> tuple[tuple[int, ...], Any]:
    import numpy as np

    name = info.filename.removesuffix(".npy")
    with archive.open(info) as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        except ValueError as e:
            raise NnccError(path, f"{option}: array '{name}' is not a .npy array ({e})") from None
        if dtype.hasobject:
            raise NnccError(path, f"{option}: array '{name}' holds Python objects (a pickle); nncc never loads pickles")
        declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
        held = info.file_size - f.tell()
        if declared != held:
            raise NnccError(path, f"{option}: array '{name}' declares shape {list(shape)} x {dtype} = {declared:,} bytes "
                                  f"but holds {held:,}")
    return tuple(shape), dtype


def check_labelled_npz(path: str | os.PathLike, option: str) -> None:
    """:func:`check_npz`, and labelled data's form: 'x' numbers with one row per sample, 'y'
    one class label per sample (what top-1 accuracy compares against)."""
    arrays = check_npz(path, option)
    if "x" not in arrays or "y" not in arrays:
        raise NnccError(path, f"{option}: needs arrays 'x' and 'y' (has: {', '.join(arrays) or 'none'})")
    (x_shape, x_dtype), (y_shape, y_dtype) = arrays["x"], arrays["y"]
    if not x_shape or x_shape[0] == 0:
        raise NnccError(path, f"{option}: 'x' of shape {list(x_shape)} holds no samples (one row per sample)")
    if x_dtype.kind not in "biuf":
        raise NnccError(path, f"{option}: 'x' holds {x_dtype} values; a model input takes numbers")
    if len(y_shape) != 1 or y_dtype.kind not in "biuf":
        raise NnccError(path, f"{option}: 'y' is {list(y_shape)} x {y_dtype}; it must be one class label (a number) per sample")
    if y_shape[0] != x_shape[0]:
        raise NnccError(path, f"{option}: 'x' has {x_shape[0]} samples but 'y' has {y_shape[0]}")


def _check_output(path: pathlib.Path, folder: bool) -> None:
    """Refuse an output path that is a symlink (writing would land wherever it points, and
    replacing it would drop the user's link) or an existing non-regular file (a device or
    FIFO is never replaced, even by root)."""
    if path.is_symlink():
        raise NnccError(path, f"output path is a symlink (to {os.readlink(path)}); nncc does not write through links: "
                              "remove it or choose another path")
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():  # mkdir would say only "File exists"
            raise NnccError(path, f"cannot write: {parent} is a file, not a folder")
        return
    mode = path.stat().st_mode
    if folder and not stat.S_ISDIR(mode):
        raise NnccError(path, "output path exists and is not a folder")
    if not folder and not stat.S_ISREG(mode):
        raise NnccError(path, f"output path exists and is {file_kind(mode)}, not a regular file")


def replace_atomically(path: str | os.PathLike, write: Callable[[pathlib.Path], object], suffix: str = "") -> pathlib.Path:
    """``write(tmp)`` into a temporary sibling, then rename it over ``path``: a crash never leaves
    half a file (the old one stays until the new one is complete)."""
    path = pathlib.Path(path)
    try:
        _check_output(path, folder=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    except OSError as e:  # a parent that is a file, a read-only or full disk
        raise NnccError(path, f"cannot write: {e.strerror or e}") from None
    os.close(fd)
    try:
        write(pathlib.Path(tmp))
        os.replace(tmp, path)
    except OSError as e:
        raise NnccError(path, f"cannot write: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` through :func:`replace_atomically`."""
    replace_atomically(path, lambda tmp: tmp.write_text(text))


# renameat2(2) flag (linux/fs.h) and renamex_np(2) flag (macOS sys/stdio.h): swap two paths in one step.
_RENAME_EXCHANGE = 2
_RENAME_SWAP = 2
_AT_FDCWD = -100


def exchange_paths(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap what ``a`` and ``b`` name in one atomic step; False where the system or the file
    system cannot (then nothing happened)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    a_path, b_path = os.fsencode(a), os.fsencode(b)
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        result = libc.renameat2(_AT_FDCWD, a_path, _AT_FDCWD, b_path, _RENAME_EXCHANGE)
    elif sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        result = libc.renamex_np(a_path, b_path, _RENAME_SWAP)
    else:
        return False
    if result == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fsdecode(b_path))


def _remove_stale_siblings(final: pathlib.Path) -> None:
    """Temporary folders of earlier runs that were killed (their process is gone)."""
    for sibling in final.parent.glob(f".{final.name}.tmp-*"):
        pid = sibling.name.rsplit("-", 2)[-2] if sibling.name.count("-") >= 2 else ""
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(sibling, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


@contextlib.contextmanager
def replace_folder_atomically(final: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temporary sibling folder; once the block completes it takes ``final``'s place.

    The new folder is swapped with the old one in one step (renameat2 RENAME_EXCHANGE on
    Linux, renamex_np RENAME_SWAP on macOS), so a kill at any moment leaves ``final`` holding
    the complete old output or the complete new one, never nothing. Where the swap is not
    available the old folder is renamed away first: a kill between the two renames leaves
    ``final`` missing, with the old output kept beside it as ``.<name>.old-<pid>``.
    """
    final = pathlib.Path(final)
    try:
        _check_output(final, folder=True)
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_siblings(final)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    except OSError as e:  # a parent that is a file, a read-only or full disk
        raise NnccError(final, f"cannot write: {e.strerror or e}") from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists() and exchange_paths(tmp, final):
        shutil.rmtree(tmp, ignore_errors=True)  # now the old output
        return
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.rename(final, old)
    os.rename(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
