"""Registries of passes and targets, filled from entry points and ``--plugin`` files.

Built-ins register exactly like third-party plugins: through the entry-point groups
``nncc.passes`` and ``nncc.targets`` in a package's metadata.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import pathlib
import sys
from typing import Any

from nncc.errors import NnccError
from nncc.pass_base import NnccPass
from nncc.target import Target


class Registry:
    def __init__(self, group: str, kind: str):
        self.group = group
        self.kind = kind
        self._entry_points: dict[str, importlib.metadata.EntryPoint] | None = None
        self._loaded: dict[str, type] = {}
        self._origin: dict[str, str] = {}

    def _eps(self) -> dict[str, importlib.metadata.EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)}
        return self._entry_points

    def names(self) -> list[str]:
        return sorted(set(self._eps()) | set(self._loaded))

    def register(self, name: str, cls: type, origin: str = "") -> None:
        self._loaded[name] = cls
        self._origin[name] = origin or f"{cls.__module__}:{cls.__qualname__}"

    def origin(self, name: str) -> str:
        if name in self._origin:
            return self._origin[name]
        ep = self._eps().get(name)
        return f"{ep.value} ({ep.dist.name if ep and ep.dist else '?'})" if ep else "?"

    def get(self, name: str, where: str | None = None) -> type:
        if name in self._loaded:
            return self._loaded[name]
        ep = self._eps().get(name)
        if ep is None:
            raise NnccError(where or f"--{self.kind}", f"unknown {self.kind} '{name}' (installed: {', '.join(self.names())})")
        try:
            cls = ep.load()
        except Exception as e:  # a broken third-party plugin must not crash the CLI
            raise NnccError(where or f"--{self.kind}", f"{self.kind} '{name}' from entry point '{ep.value}' failed to load: {type(e).__name__}: {e}") from None
        self.register(name, cls, f"{ep.value}")
        return cls

    def create(self, name: str, **params: Any) -> Any:
        """An instance of the registered ``name`` (a target's ``legalize`` builds its passes so,
        never by importing a pass module)."""
        return self.get(name)(**params)

    def all(self) -> dict[str, type]:
        return {name: self.get(name) for name in self.names()}


PASSES = Registry("nncc.passes", "pass")
TARGETS = Registry("nncc.targets", "target")


def load_plugin(path: str | pathlib.Path) -> list[str]:
    """Import a user's ``.py`` file and register the passes and targets it defines."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise NnccError(path, "plugin file not found")
    module_name = f"nncc_plugin_{path.stem}_{abs(hash(str(path.resolve()))) % 10**8}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise NnccError(path, "not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise NnccError(path, f"plugin failed to import: {type(e).__name__}: {e}") from None
    found: list[str] = []
    for _, obj in inspect.getmembers(module, inspect.isclass):
        if obj.__module__ != module_name or inspect.isabstract(obj):
            continue
        registry: Any = PASSES if issubclass(obj, NnccPass) else TARGETS if issubclass(obj, Target) else None
        if registry is not None and getattr(obj, "name", ""):
            registry.register(obj.name, obj, f"{path}:{obj.__qualname__}")
            found.append(f"{registry.kind} {obj.name}")
    if not found:
        raise NnccError(path, "plugin defines no NnccPass or Target subclass with a 'name'")
    return found
