"""Lazy exports for clonekit's packages: a name is imported from its module on first use.

Each package keeps a table ``{public name: module}`` (``"module:attribute"`` when the public
name differs, ``""`` for a subpackage of that name) and two one-line hooks (PEP 562), so
``import clonekit.ns`` costs almost nothing and the CLI, started once per container, imports
only what it uses.
"""

from __future__ import annotations

import sys

__all__ = ["attribute", "names"]


def attribute(namespace: dict[str, object], exports: dict[str, str], name: str) -> object:
    """The body of a package's ``__getattr__``: import, cache in the package, return."""
    package = str(namespace["__name__"])
    target = exports.get(name)
    if target is None:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    module, _, attr = target.partition(":")
    full = f"{package}.{module or name}"
    __import__(full)  # not importlib.import_module: the importlib package imports warnings
    value = sys.modules[full] if not module else getattr(sys.modules[full], attr or name)
    namespace[name] = value
    return value


def names(namespace: dict[str, object], exports: dict[str, str]) -> list[str]:
    """The body of a package's ``__dir__``."""
    return sorted(set(namespace) | set(exports))
