"""A Python client for the code-interpreter server.

`ExecutionClient` runs code in kernels, `ResourceClient` moves files and directories in and out
of the workspace, and `ExecutionContainer` runs the server's Docker image.
"""

from __future__ import annotations

from ._tar import UnsafeArchiveError
from .container import DEFAULT_TAG, ExecutionContainer
from .errors import (
    AlreadyExistsError,
    AuthenticationError,
    CodeInterpreterError,
    ConnectionError,
    ExecutionError,
    InvalidRequestError,
    LimitExceededError,
    NotFoundError,
    TimeoutError,
    UnavailableError,
)
from .execution_client import Execution, ExecutionClient, ExecutionResult, InputHandler, InputRequest
from .resource_client import ResourceClient

__all__ = [
    "DEFAULT_TAG",
    "AlreadyExistsError",
    "AuthenticationError",
    "CodeInterpreterError",
    "ConnectionError",
    "Execution",
    "ExecutionClient",
    "ExecutionContainer",
    "ExecutionError",
    "ExecutionResult",
    "InputHandler",
    "InputRequest",
    "InvalidRequestError",
    "LimitExceededError",
    "NotFoundError",
    "ResourceClient",
    "TimeoutError",
    "UnavailableError",
    "UnsafeArchiveError",
]
