"""Exceptions of the trainhub client.

::

    TrainhubError                 base of everything the client raises
    ├── ConfigError               bad settings or arguments (URL, mode, model id, numbers)
    ├── SpoolError                the on-disk spool cannot be opened or written (wraps sqlite3.Error)
    └── HubError(status, code, message)
        │                         the hub answered with an error, or could not be reached
        ├── PermanentError        4xx other than 408/429: resending the same request cannot succeed
        │   └── AuthError         401/403: the API key is missing, wrong or lacks the right
        └── TransientError        408, 429, 5xx: worth retrying later
            └── UnreachableError  no HTTP answer at all (connection refused, DNS, timeout)

Third-party exceptions (``httpx``, ``sqlite3``) never leave the client: they are mapped to this tree at
the boundary with ``raise ... from exc``. Note that the training-thread API of
:class:`~trainhub.client.session.HubSession` never raises at all; these exceptions are what the
lower layers use and what a constructor raises for invalid arguments.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "HubError",
    "PermanentError",
    "SpoolError",
    "TrainhubError",
    "TransientError",
    "UnreachableError",
]


class TrainhubError(Exception):
    """Base class of every trainhub client exception."""


class ConfigError(TrainhubError, ValueError):
    """Invalid settings or arguments."""


class SpoolError(TrainhubError):
    """The spool database could not be opened or written."""


class HubError(TrainhubError):
    """The hub answered with an error, or could not be reached.

    Args:
        status: the HTTP status, or ``None`` when there was no HTTP answer.
        code: the hub's stable error code (``protocol.ErrorCode``), or a client-side kind such as
            ``"connection"`` or ``"timeout"``.
        message: the hub's human message, or a description of the failure.
    """

    def __init__(self, status: int | None, code: str, message: str) -> None:
        super().__init__(f"{status or '-'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PermanentError(HubError):
    """A 4xx answer (other than 408 and 429): the request is wrong and must not be retried."""


class AuthError(PermanentError):
    """401 or 403: the API key is missing, invalid or not allowed to do this."""


class TransientError(HubError):
    """408, 429 or 5xx: the request may succeed later."""


class UnreachableError(TransientError):
    """No HTTP answer: connection error or timeout (``status`` is ``None``)."""
