"""Errors the clients raise: one class per family of the server's error codes."""

from __future__ import annotations

import builtins

__all__ = [
    "CodeInterpreterError",
    "ConnectionError",
    "AuthenticationError",
    "NotFoundError",
    "AlreadyExistsError",
    "InvalidRequestError",
    "LimitExceededError",
    "UnavailableError",
    "ExecutionError",
    "TimeoutError",
    "error_for",
]


class CodeInterpreterError(Exception):
    """Every error the server answers with.

    Attributes:
        code: The server's stable error code (`ERR_...`); errors that never reached the server
            have `ERR_CONNECTION` (and status 0) or `ERR_PROTOCOL`.
        status: The HTTP status, 0 when there was no answer.
    """

    def __init__(self, message: str, code: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


class ConnectionError(CodeInterpreterError, builtins.ConnectionError):
    """The server could not be reached, or the connection broke: check that it runs, and its host and port."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "ERR_CONNECTION", 0)


class AuthenticationError(CodeInterpreterError):
    """The access token is missing or wrong (`ERR_UNAUTHORIZED`, `ERR_UNCLAIMED`): pass the server's `access_token`."""


class NotFoundError(CodeInterpreterError):
    """A context, execution, process or file that does not exist."""


class AlreadyExistsError(CodeInterpreterError):
    """A file or directory is in the way (`ERR_ALREADY_EXISTS`): pass `overwrite=True` to replace it."""


class InvalidRequestError(CodeInterpreterError):
    """The request was refused as malformed: the message says what was wrong."""


class LimitExceededError(CodeInterpreterError):
    """A limit was reached: too many contexts, processes, queued executions, or bytes."""


class UnavailableError(CodeInterpreterError):
    """Jupyter, a kernel or the process host is unavailable for now: try again shortly."""


_NOT_FOUND = frozenset(
    {
        "ERR_CONTEXT_NOT_FOUND",
        "ERR_EXECUTION_NOT_FOUND",
        "ERR_FILE_NOT_FOUND",
        "ERR_PROCESS_NOT_FOUND",
        "ERR_ROUTE_NOT_FOUND",
    }
)
_LIMITS = frozenset(
    {
        "ERR_QUEUE_FULL",
        "ERR_TOO_MANY_CONTEXTS",
        "ERR_TOO_MANY_PROCESSES",
        "ERR_TOO_MANY_WATCHES",
        "ERR_WATCH_LIMIT",
        "ERR_BODY_TOO_LARGE",
        "ERR_UPLOAD_TOO_LARGE",
        "ERR_EXTRACT_TOO_LARGE",
        "ERR_NO_SPACE",
    }
)
_UNAVAILABLE = frozenset({"ERR_JUPYTER_UNAVAILABLE", "ERR_PROCESS_HOST_UNAVAILABLE", "ERR_SERVER_SHUTTING_DOWN"})


def error_for(status: int, code: str, message: str) -> CodeInterpreterError:
    """The error for a server's answer: its `code` picks the class."""
    if code in ("ERR_UNAUTHORIZED", "ERR_UNCLAIMED"):
        # The server speaks of HTTP headers; here the token is a constructor argument.
        hint = " (give the client the server's token: access_token=..., ExecutionContainer.access_token for a container)"
        return AuthenticationError(message + hint, code, status)
    if code in _NOT_FOUND:
        return NotFoundError(message, code, status)
    if code == "ERR_ALREADY_EXISTS":
        return AlreadyExistsError(message, code, status)
    if code in _LIMITS:
        return LimitExceededError(message, code, status)
    if code in _UNAVAILABLE:
        return UnavailableError(message, code, status)
    if status == 400:
        return InvalidRequestError(message, code, status)
    return CodeInterpreterError(message, code, status)


class ExecutionError(Exception):
    """Raised when the executed code raises an error.

    Attributes:
        name: The exception's name (`ZeroDivisionError`; also `KernelDied`, `ContextRestarted`
            and the other errors the server reports around the code).
        value: The exception's message.
        trace: The traceback as the kernel printed it.
    """

    def __init__(self, name: str, value: str, trace: str) -> None:
        super().__init__(f"{name}: {value}" if value else name)
        self.name = name
        self.value = value
        self.trace = trace


class TimeoutError(builtins.TimeoutError):
    """The execution hit its time limit; the server interrupted it (and restarted a kernel that ignored that).

    A subclass of the built-in `TimeoutError`, so `except TimeoutError` catches it either way.
    """
