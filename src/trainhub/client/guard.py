"""The guard around every training-thread call: log an internal error once and carry on.

Training must never fail because of the hub client. In tests, :func:`set_reraise` makes the guard
re-raise so bugs are not hidden (``tests/client/conftest.py`` turns it on).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["guarded", "reraising", "set_reraise"]

log = logging.getLogger("trainhub")
P = ParamSpec("P")
R = TypeVar("R")

_reraise = False
_logged: set[str] = set()


def set_reraise(value: bool) -> bool:
    """Make guarded calls re-raise (tests); return the previous value."""
    global _reraise
    previous, _reraise = _reraise, value
    return previous


def reraising() -> bool:
    """Whether guards re-raise (see :func:`set_reraise`)."""
    return _reraise


def guarded(default: R) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a method so an exception is logged (once per method) and ``default`` returned."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if _reraise:
                    raise
                if fn.__qualname__ not in _logged:
                    _logged.add(fn.__qualname__)
                    log.warning(
                        "trainhub: internal error in %s, ignored: %r",
                        fn.__qualname__,
                        exc,
                        exc_info=log.isEnabledFor(logging.DEBUG),
                    )
                return default

        return wrapper

    return decorate
