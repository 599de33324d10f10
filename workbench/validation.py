"""Argument validation shared by every public function and config.

Each check returns the value it accepted (so ``n = check_int("n", n, min=1)`` reads naturally) and
raises with a message that names the argument, the bad value and what would be valid. Booleans are
never accepted as numbers, floats never as ints, and NaN/Inf never as finite numbers.
"""

import math
from collections.abc import Iterable, Sequence
from numbers import Integral, Real
from typing import Any


def _where(name: str) -> str:
    return f"{name} " if name else ""


def check_int(name: str, value: Any, *, min: int | None = None, max: int | None = None) -> int:
    """An int (not a bool, not a float) in ``[min, max]``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{_where(name)}must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if min is not None and value < min:
        raise ValueError(f"{_where(name)}must be >= {min}, got {value}")
    if max is not None and value > max:
        raise ValueError(f"{_where(name)}must be <= {max}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    min_open: bool = False,
    max_open: bool = False,
    finite: bool = True,
) -> float:
    """A real number (not a bool), finite unless ``finite=False``, within the given bounds
    (``min_open``/``max_open`` exclude the bound itself)."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{_where(name)}must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{_where(name)}must be a finite number, got {value}")
    if min is not None and (value < min or (min_open and value == min)):
        raise ValueError(f"{_where(name)}must be {'>' if min_open else '>='} {min}, got {value}")
    if max is not None and (value > max or (max_open and value == max)):
        raise ValueError(f"{_where(name)}must be {'<' if max_open else '<='} {max}, got {value}")
    return value


def check_probability(name: str, value: Any, *, open_low: bool = False, open_high: bool = False) -> float:
    """A probability in ``[0, 1]`` (either end excludable)."""
    return check_float(name, value, min=0.0, max=1.0, min_open=open_low, max_open=open_high)


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{_where(name)}must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{_where(name)}must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_str(name: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{_where(name)}must be a string, got {value!r} ({type(value).__name__})")
    if not allow_empty and not value:
        raise ValueError(f"{_where(name)}must be a non-empty string")
    return value


def check_texts(name: str, value: Any, *, allow_empty_text: bool = False) -> list[str]:
    """A non-empty sequence of strings. A bare string is refused (it would iterate as characters)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise TypeError(f"{_where(name)}must be a list of strings, got {type(value).__name__} {value!r:.60}")
    if len(value) == 0:
        raise ValueError(f"{_where(name)}must hold at least one text, got an empty sequence")
    for i, t in enumerate(value):
        check_str(f"{name}[{i}]", t, allow_empty=allow_empty_text)
    return list(value)


def check_fields(obj: Any, **rules: dict) -> None:
    """Validate a (frozen dataclass) config in ``__post_init__``: ``rules`` maps a field name to the
    keyword arguments of ``check_int`` (``kind="int"``), ``check_float`` (``kind="float"``),
    ``check_probability`` (``kind="prob"``) or ``check_bool`` (``kind="bool"``); the argument name
    in the message is ``ClassName.field``."""
    kinds = {"int": check_int, "float": check_float, "prob": check_probability, "bool": check_bool}
    for field, rule in rules.items():
        rule = dict(rule)
        kind = rule.pop("kind")
        if kind not in kinds:
            raise ValueError(f"check_fields: unknown kind {kind!r} for {field}; use one of {', '.join(kinds)}")
        kinds[kind](f"{type(obj).__name__}.{field}", getattr(obj, field), **rule)


__all__ = [
    "check_bool",
    "check_choice",
    "check_fields",
    "check_float",
    "check_int",
    "check_probability",
    "check_str",
    "check_texts",
]
