"""Backends as data: a registry maps a configuration name to "module:attribute", imported on first use,
so choosing a backend is a config value and an unused backend's heavy imports (diffusers, insightface,
gsplat) never run. Every registry may hold an `auto` rule that picks a name from the device."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from perse.errors import ConfigError

AUTO = "auto"


@dataclass(frozen=True)
class Registry:
    kind: str  # what the entries are, for messages: "editor", "renderer", ...
    option: str  # the config key that chooses one, e.g. "synth.editor"
    entries: dict[str, str]  # name -> "package.module:attribute[.attribute]"
    # device ("cpu" | "cuda") -> name; present when `auto` is a valid choice.
    auto: Callable[[str], str] | None = field(default=None, compare=False)

    @property
    def choices(self) -> tuple[str, ...]:
        return tuple(self.entries) + ((AUTO,) if self.auto else ())

    def resolve(self, name: str, device: str = "cpu") -> str:
        """The concrete backend name `name` stands for on `device`; a clear error for unknown names."""
        if name == AUTO and self.auto is not None:
            return self.auto(device)
        if name not in self.entries:
            raise ConfigError(f"unknown {self.kind} '{name}' ({self.option}); choose one of: {', '.join(self.choices)}")
        return name

    def load(self, name: str, device: str = "cpu") -> Any:
        """Import and return the implementation registered under `name` (after resolving `auto`)."""
        module_name, _, attributes = self.entries[self.resolve(name, device)].partition(":")
        target: Any = importlib.import_module(module_name)
        for attribute in attributes.split("."):
            target = getattr(target, attribute)
        return target
