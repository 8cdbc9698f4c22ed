"""Small helpers that keep error messages uniform across the package.

Every user-facing error names the argument, the allowed values and what was given, e.g.::

    ValueError("`retain_loss` should be one of ['kl', 'nll', 'none'], got 'KL'.")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``allowed``; raise a ``ValueError`` naming all three otherwise."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"`{name}` should be one of {sorted(allowed, key=str)}, got {value!r}.")
    return value


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` should be a number, got {type(value).__name__} {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` should be {bound}, got {value!r}.")
    return value


def check_fraction(name: str, value: float, *, inclusive_high: bool = True, inclusive_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` should be a number, got {type(value).__name__} {value!r}.")
    low_ok = value >= 0 if inclusive_low else value > 0
    high_ok = value <= 1 if inclusive_high else value < 1
    if not (low_ok and high_ok):
        bound = ("[" if inclusive_low else "(") + "0, 1" + ("]" if inclusive_high else ")")
        raise ValueError(f"`{name}` should lie in {bound}, got {value!r}.")
    return value


def check_int(name: str, value: Any, *, minimum: int = 1, optional: bool = False) -> Any:
    """Return ``value`` if it is an int (not a bool) ``>= minimum`` (or ``None`` when ``optional``)."""
    if optional and value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` should be an int >= {minimum}{' or None' if optional else ''}, got {value!r}.")
    return value


def missing_extra(package: str, extra: str) -> ImportError:
    return ImportError(
        f"This feature needs the optional dependency `{package}`. "
        f"Install it with `pip install 'lightning-unlearn[{extra}]'`."
    )
