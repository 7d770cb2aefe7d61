"""Reading user files with one-line errors, and writing outputs atomically."""

from __future__ import annotations

import os
import pathlib
import tempfile
import tomllib
from collections.abc import Callable
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
