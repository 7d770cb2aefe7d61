"""Registries of passes and targets, filled from entry points and ``--plugin`` files.

Built-ins register exactly like third-party plugins: through the entry-point groups
``nncc.passes`` and ``nncc.targets`` in a package's metadata.

A plugin (an entry point of another distribution, or a ``--plugin`` file) that fails is named
in the one-line error, ``plugin pass 'x' (<distribution or file>): ...``: when it fails to load
here, and when its code raises later (``apply``, ``lower``, ``estimate``), which the CLI's
last-resort handler asks :func:`plugin_at_fault` about. Exit status 2, like every error that
is not a failed gate: the run could not finish, and the line says whose code to fix.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import pathlib
import sys
import types
from typing import Any

from nncc.errors import NnccError
from nncc.files import regular_file
from nncc.pass_base import NnccPass
from nncc.target import Target


class Registry:
    def __init__(self, group: str, kind: str):
        self.group = group
        self.kind = kind
        self._entry_points: dict[str, importlib.metadata.EntryPoint] | None = None
        self._loaded: dict[str, type] = {}
        self._origin: dict[str, str] = {}
        # name -> (where a third-party plugin came from: its distribution or file; the package
        # whose code is its own). Built-ins are not listed, so an nncc bug is never blamed on a plugin.
        self._plugins: dict[str, tuple[str, str]] = {}

    def _eps(self) -> dict[str, importlib.metadata.EntryPoint]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in importlib.metadata.entry_points(group=self.group)}
        return self._entry_points

    def names(self) -> list[str]:
        return sorted(set(self._eps()) | set(self._loaded))

    def register(self, name: str, cls: type, origin: str = "", plugin: str | None = None, package: str | None = None) -> None:
        """Add ``cls`` as ``name``. ``plugin`` names the distribution or file of a third-party one;
        ``package`` is the module tree that is its own code (default: ``cls``'s top-level package)."""
        self._loaded[name] = cls
        self._origin[name] = origin or f"{cls.__module__}:{cls.__qualname__}"
        if plugin is not None:
            self._plugins[name] = (plugin, package or cls.__module__.split(".")[0])

    def plugin_label(self, name: str) -> str:
        """How errors name a plugin: ``plugin pass 'x' (nncc-x 0.1.0)`` or ``(path/x.py)``."""
        return f"plugin {self.kind} '{name}' ({self._plugins[name][0]})"

    def plugins(self) -> list[tuple[str, type, str]]:
        """The loaded third-party plugins: (name, class, package), built-ins excluded."""
        return [(name, self._loaded[name], package) for name, (_, package) in self._plugins.items()]

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
        dist = _distribution(ep)
        try:
            cls = ep.load()
        except Exception as e:  # a broken third-party plugin must not crash the CLI
            label = f"plugin {self.kind} '{name}' ({dist})" if dist else f"{self.kind} '{name}'"
            raise NnccError(label, f"entry point '{ep.value}' failed to load: {type(e).__name__}: {e}") from None
        self.register(name, cls, f"{ep.value}", plugin=dist)
        return cls

    def create(self, name: str, **params: Any) -> Any:
        """An instance of the registered ``name`` (a target's ``legalize`` builds its passes so,
        never by importing a pass module)."""
        return self.get(name)(**params)

    def all(self) -> dict[str, type]:
        return {name: self.get(name) for name in self.names()}


PASSES = Registry("nncc.passes", "pass")
TARGETS = Registry("nncc.targets", "target")


def _distribution(ep: importlib.metadata.EntryPoint) -> str | None:
    """``name version`` of the distribution behind a third-party entry point; None for nncc's own."""
    if ep.value.split(":")[0].split(".")[0] == "nncc":
        return None
    return f"{ep.dist.name} {ep.dist.version}" if ep.dist is not None else ep.value


def plugin_at_fault(error: BaseException) -> str | None:
    """The label of the plugin whose code raised ``error``, or None when no plugin is involved.

    Walks the traceback from the raising frame outwards (through ``raise ... from`` chains): the
    first frame that is a plugin's method (``self``/``cls`` one of its classes, inherited
    methods included) or runs in a plugin's own package (its helpers, its Config) names it.
    """
    owners = [(registry, name, cls, package) for registry in (PASSES, TARGETS) for name, cls, package in registry.plugins()]
    if not owners:
        return None
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        frames: list[types.FrameType] = []
        tb = current.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            owner = frame.f_locals.get("self", frame.f_locals.get("cls"))
            module = frame.f_globals.get("__name__", "")
            # The method's owner first: one file or package may define several plugins.
            for registry, name, cls, _ in owners:
                if isinstance(owner, cls) or (isinstance(owner, type) and issubclass(owner, cls)):
                    return registry.plugin_label(name)
            for registry, name, _, package in owners:
                if module == package or module.startswith(package + "."):
                    return registry.plugin_label(name)
        current = current.__cause__ or current.__context__
    return None


def load_plugin(path: str | pathlib.Path) -> list[str]:
    """Import a user's ``.py`` file and register the passes and targets it defines."""
    path = pathlib.Path(path)
    regular_file(path, "plugin file not found")  # a folder, a FIFO or a device is named as such
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
            registry.register(obj.name, obj, f"{path}:{obj.__qualname__}", plugin=str(path), package=module_name)
            found.append(f"{registry.kind} {obj.name}")
    if not found:
        raise NnccError(path, "plugin defines no NnccPass or Target subclass with a 'name'")
    return found
