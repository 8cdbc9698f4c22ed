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


def check_fraction(name: str, value: float, *, inclusive_high: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` should be a number, got {type(value).__name__} {value!r}.")
    ok = 0 < value <= 1 if inclusive_high else 0 < value < 1
    if not ok:
        bound = "(0, 1]" if inclusive_high else "(0, 1)"
        raise ValueError(f"`{name}` should lie in {bound}, got {value!r}.")
    return value


def missing_extra(package: str, extra: str) -> ImportError:
    return ImportError(
        f"This feature needs the optional dependency `{package}`. "
        f"Install it with `pip install 'lightning-unlearn[{extra}]'`."
    )
