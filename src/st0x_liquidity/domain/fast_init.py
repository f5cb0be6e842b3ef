"""Build frozen attrs objects on the per-fill path without attrs' ``__init__``.

A frozen slotted attrs class sets each field in ``__init__`` through
``object.__setattr__`` (it must step around its own refusing ``__setattr__``):
~0.15 µs a field here. The slot's member descriptor sets the same field in
about half that. Four such objects are built per fill (the event, its
netting, the event on its way into the store and as stored): 0.15–0.25 µs
each saved, of the engine's ~40 µs a fill.

Only for classes whose ``__init__`` does nothing else: every field is taken
positionally, with no validator, converter, post-init hook or slot that is
not a field (a cached hash).
:func:`positional` checks that when it makes the constructor, so a field given
a validator later fails at import, not silently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

T = TypeVar("T")

_MEMBER = type(attrs.Attribute.__dict__["name"])
"""The type of a slot's descriptor (``member_descriptor``)."""


def positional(cls: type[T]) -> Callable[..., T]:
    """A function taking every field of ``cls`` in order and returning the instance.

    The result equals ``cls(*args)``; it is that call minus attrs' per-field
    ``object.__setattr__``.
    """
    if not attrs.has(cls):
        raise TypeError(f"{cls.__name__} is not an attrs class")
    if hasattr(cls, "__attrs_post_init__") or hasattr(cls, "__attrs_pre_init__"):
        raise TypeError(f"{cls.__name__} has an init hook")
    setters: dict[str, Any] = {}
    names = []
    for field in attrs.fields(cls):
        if not field.init or field.validator is not None or field.converter is not None:
            raise TypeError(f"{cls.__name__}.{field.name} is not a plain positional field")
        slot: Any = getattr(cls, field.name, None)
        if type(slot) is not _MEMBER:
            raise TypeError(f"{cls.__name__}.{field.name} is not a slot")
        setters[f"_set_{field.name}"] = slot.__set__
        names.append(field.name)
    hidden = set(cls.__dict__.get("__slots__", ())) - {"__weakref__", *names}
    if hidden:  # a cached hash, say, which __init__ would have cleared
        raise TypeError(f"{cls.__name__} has slots that are not fields: {sorted(hidden)}")
    lines = [f"def make({', '.join(names)}):", "    self = _new(_cls)"]
    lines += [f"    _set_{name}(self, {name})" for name in names]
    lines.append("    return self")
    namespace: dict[str, Any] = {"_new": object.__new__, "_cls": cls, **setters}
    exec("\n".join(lines), namespace)  # the code names only attrs fields, identifiers
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = make.__name__ = f"new_{cls.__name__}"
    return make
