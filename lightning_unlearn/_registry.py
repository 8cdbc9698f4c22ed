"""A tiny keyword-only registry: unique lowercase names, a helpful error on a miss."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class Registry(Generic[T]):
    """Maps lowercase names to classes of one kind (methods, tasks, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

    def register(self, *, name: str) -> Callable[[type[T]], type[T]]:
        """Class decorator: ``@METHODS.register(name="ga")``."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(
                f"A {self.kind} name should be lowercase letters, digits and underscores, "
                f"starting with a letter; got {name!r}."
            )

        def decorator(cls: type[T]) -> type[T]:
            existing = self._entries.get(name)
            if existing is not None and existing is not cls:
                raise ValueError(
                    f"The {self.kind} name {name!r} is already registered by "
                    f"{existing.__module__}.{existing.__qualname__}."
                )
            self._entries[name] = cls
            cls.name = name  # type: ignore[attr-defined]
            return cls

        return decorator

    def get(self, name: str) -> type[T]:
        try:
            return self._entries[name]
        except KeyError:
            close = difflib.get_close_matches(str(name).lower(), self._entries, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown {self.kind} {name!r}; registered {self.kind}s are {sorted(self._entries)}.{hint}"
            ) from None

    def build(self, name: str, **kwargs: Any) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
