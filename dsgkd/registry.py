"""String-keyed registries for every choice a config names (hidden losses, layer maps, term selectors, ...).

A registry sits next to the implementations it lists and is filled by decorating them, so adding a choice
is one function in one file. The config validators, the CLI's `choices` and the `--help` texts read the
registry, so a name is written once. Entries that take an argument are spelled `name:ARG` (`last_k:2`,
`lexicon:terms.txt`). This module imports nothing heavy: `dsgkd train --help` reads registries without
loading torch.

The registries of the choices a config names are created in `dsgkd.choices`, at the bottom of the package,
each with its *home*: the module whose decorators fill it, imported the first time the registry is read. So
the config validates names without importing the layers that implement them (docs/architecture.md, "Layers").
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
import importlib
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entry:
    name: str
    fn: Callable[..., Any]
    help: str
    arg: str | None = None  # placeholder shown in help ("K", "<file>") when the entry takes `name:ARG`
    options: dict[str, Any] = field(default_factory=dict)  # what callers need to know about the entry

    @property
    def spelling(self) -> str:
        return f"{self.name}:{self.arg}" if self.arg else self.name


class Registry:
    """Named implementations of one choice; `what` names the setting in error messages."""

    def __init__(self, what: str, home: str | None = None):
        self.what, self.home = what, home
        self._entries: dict[str, Entry] = {}

    @property
    def entries(self) -> dict[str, Entry]:
        """The registered entries, after importing the home module that registers them (once)."""
        if self.home is not None:
            home, self.home = self.home, None
            importlib.import_module(home)
        return self._entries

    def register(self, name: str, *, help: str | None = None, arg: str | None = None, **options: Any):
        """Decorator: `@LAYER_MAPS.register("skip")`. Help defaults to the docstring's first line."""
        if ":" in name or not name:
            raise ValueError(f"{self.what}: bad registry name {name!r}")

        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._entries:
                raise ValueError(f"{self.what}: {name!r} is registered twice")
            doc = (fn.__doc__ or "").strip()
            summary = help or (doc.splitlines()[0].rstrip(".") if doc else "")
            self._entries[name] = Entry(name, fn, summary, arg, options)
            return fn

        return add

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __contains__(self, spec: object) -> bool:
        return isinstance(spec, str) and self.find(spec) is not None

    def __getitem__(self, name: str) -> Entry:
        return self.entries[name]

    def get(self, name: str) -> Entry | None:
        return self.entries.get(name)

    def find(self, spec: str) -> tuple[Entry, str | None] | None:
        """(entry, argument) for `name` or `name:ARG`; None when the spelling fits no entry."""
        name, sep, arg = spec.partition(":")
        entry = self.entries.get(name)
        if entry is None or bool(sep) != (entry.arg is not None) or (sep and not arg):
            return None
        return entry, (arg if sep else None)

    def lookup(self, spec: str) -> tuple[Entry, str | None]:
        found = self.find(spec)
        if found is None:
            raise ValueError(f"unknown {self.what} {spec!r}; expected one of {self.choices_text()}")
        return found

    def choices_text(self, sep: str = ", ") -> str:
        return sep.join(e.spelling for e in self.entries.values())

    def help_text(self) -> str:
        """`name: what it does` per entry, for a `--help` line."""
        return "; ".join(f"{e.spelling}: {e.help}" if e.help else e.spelling for e in self.entries.values())
