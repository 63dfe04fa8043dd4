"""``NamedTuple`` for the package's records: typing's class syntax, made by ``collections.namedtuple`` at run time.

typing.NamedTuple checks every field's annotation, and under ``from __future__ import annotations`` each is a string
it compiles: the first ``compile()`` of a process builds the interpreter's syntax-tree types, about 3 ms of every
run's start. Type checkers see typing's own ``NamedTuple`` (the ``TYPE_CHECKING`` branch).

>>> class Point(NamedTuple):
...     '''A point.'''
...     x: int
...     y: int = 0
...     def norm(self) -> int:
...         return abs(self.x) + abs(self.y)
>>> Point(3, -4), Point(3, -4).norm(), Point(1)._replace(y=2), Point.__doc__
(Point(x=3, y=-4), 7, Point(x=1, y=2), 'A point.')
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False  # typing is not imported for this: the point is not to run its checks
if TYPE_CHECKING:
    from typing import NamedTuple as NamedTuple
else:
    # What a class body may not define: namedtuple makes these itself (typing refuses them too).
    _PROHIBITED = frozenset(("__new__", "__init__", "__slots__", "__getnewargs__", "_fields", "_field_defaults",
                             "_make", "_replace", "_asdict", "_source"))  # fmt: skip

    class _Maker(type):
        """The metaclass of ``NamedTuple``: a class body becomes a namedtuple of its annotated fields, with its
        defaults, docstring, methods and properties."""

        def __new__(mcls, name: str, bases: tuple[type, ...], ns: dict[str, object]) -> type:
            # From Python 3.14 a class body keeps its annotations to itself unless the module says otherwise.
            if "__annotations__" not in ns:
                raise TypeError(f"{name}: a record's module starts with `from __future__ import annotations`")
            annotations = dict(ns["__annotations__"])
            fields = list(annotations)
            defaults = [ns[field] for field in fields if field in ns]
            if any(field not in ns for field in fields[len(fields) - len(defaults) :]):
                raise TypeError(f"{name}: a field without a default cannot follow one with a default")
            record = namedtuple(name, fields, defaults=defaults, module=ns["__module__"])
            record.__annotations__ = annotations
            for key, value in ns.items():
                if key in _PROHIBITED:
                    raise AttributeError(f"Cannot overwrite NamedTuple attribute {key}")
                if key not in ("__module__", "__annotations__") and key not in fields:
                    setattr(record, key, value)
            return record

    NamedTuple = type.__new__(_Maker, "NamedTuple", (), {})
