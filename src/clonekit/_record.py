"""Frozen records for the container start-up path, without ``dataclasses``.

``dataclasses`` costs ~9 ms to import (it pulls in ``inspect``) and ~1 ms per class to generate
methods; the runtime is started once per container, so it pays that every time.  Type checkers
see the real ``dataclasses.dataclass`` (the signatures stay checked); at run time :func:`record`
gives the class one generic ``__init__`` plus ``__repr__``, ``__eq__`` and ``__hash__``, and
keeps it immutable.  Supported: defaults, ``field(default_factory=...)``, ``frozen=True``; not
supported: inheritance, ClassVar, and the rest of dataclasses (add it here before using it).
"""

from __future__ import annotations

TYPE_CHECKING = False

if TYPE_CHECKING:  # pragma: no cover
    from dataclasses import asdict as asdict
    from dataclasses import dataclass as record
    from dataclasses import field as field
else:
    _MISSING = object()

    class _Field:
        __slots__ = ("default_factory",)

        def __init__(self, default_factory):
            self.default_factory = default_factory

    def field(*, default_factory):
        return _Field(default_factory)

    def record(cls=None, /, *, frozen=False):
        def wrap(cls):
            if any(hasattr(base, "__record_fields__") for base in cls.__mro__[1:]):
                raise TypeError(f"{cls.__name__}: records do not inherit fields")
            # the class's own annotations (inspect.get_annotations would import inspect)
            order = tuple(cls.__dict__.get("__annotations__", {}))  # noqa: RUF063
            defaults = {name: cls.__dict__[name] for name in order if name in cls.__dict__}
            for name, value in defaults.items():
                if isinstance(value, _Field):
                    delattr(cls, name)  # a factory is no class attribute
            cls.__record_fields__ = order
            cls.__record_defaults__ = defaults
            cls.__init__ = _init
            cls.__repr__ = _repr
            cls.__eq__ = _eq
            if frozen:
                cls.__setattr__ = _frozen_setattr
                cls.__delattr__ = _frozen_setattr
                cls.__hash__ = _hash
            return cls

        return wrap if cls is None else wrap(cls)

    def _init(self, *args, **kwargs):
        cls = type(self)
        fields = cls.__record_fields__
        if len(args) > len(fields):
            raise TypeError(f"{cls.__name__}() takes {len(fields)} arguments, {len(args)} given")
        values = dict(zip(fields, args, strict=False))  # fewer args than fields: defaults
        for key, value in kwargs.items():
            if key not in fields:
                raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{cls.__name__}() got multiple values for argument {key!r}")
            values[key] = value
        defaults = cls.__record_defaults__
        for name in fields:
            if name not in values:
                if name not in defaults:
                    raise TypeError(f"{cls.__name__}() missing required argument {name!r}")
                default = defaults[name]
                values[name] = default.default_factory() if isinstance(default, _Field) else default
            object.__setattr__(self, name, values[name])
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()

    def _values(self):
        return tuple(getattr(self, n) for n in type(self).__record_fields__)

    def _repr(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__record_fields__)
        return f"{type(self).__qualname__}({inner})"

    def _eq(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return _values(self) == _values(other)

    def _hash(self):
        return hash(_values(self))

    def _frozen_setattr(self, name, *value):
        raise AttributeError(f"cannot assign to field {name!r}: {type(self).__name__} is frozen")

    def asdict(obj):
        """Like dataclasses.asdict: records (nested, in lists, tuples and dicts) as dicts."""
        if hasattr(type(obj), "__record_fields__"):
            return {n: asdict(getattr(obj, n)) for n in type(obj).__record_fields__}
        if isinstance(obj, (list, tuple)):
            return type(obj)(asdict(v) for v in obj)
        if isinstance(obj, dict):
            return {k: asdict(v) for k, v in obj.items()}
        return obj
