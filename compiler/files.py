"""Reading user files with one-line errors, and writing outputs atomically."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pathlib
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

from nncc.errors import NnccError


def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a user's TOML file; a missing or malformed file is an NnccError naming it."""
    path = pathlib.Path(path)
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise NnccError(path, "no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise NnccError(path, f"not valid TOML: {e}") from None


def replace_atomically(path: str | os.PathLike, write: Callable[[pathlib.Path], object], suffix: str = "") -> pathlib.Path:
    """``write(tmp)`` into a temporary sibling, then rename it over ``path``: a crash never leaves
    half a file (the old one stays until the new one is complete)."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(pathlib.Path(tmp))
        os.replace(tmp, path)
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
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists() and not final.is_dir():
        raise NnccError(final, "output path exists and is not a folder")
    _remove_stale_siblings(final)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
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
