"""The server under test comes from the environment: CODE_INTERPRETER_URL and ACCESS_TOKEN."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from code_interpreter_client import ExecutionClient, ResourceClient


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    access_token: str | None


@pytest.fixture(scope="session")
def server() -> Server:
    url = os.environ.get("CODE_INTERPRETER_URL", "")
    if not url:
        pytest.fail("CODE_INTERPRETER_URL is not set: point it at a running server (http://host:port)")
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        pytest.fail(f"CODE_INTERPRETER_URL must be http://host:port, got {url!r}")
    return Server(parts.hostname, parts.port, os.environ.get("ACCESS_TOKEN") or None)


@pytest.fixture
async def client(server: Server) -> AsyncIterator[ExecutionClient]:
    async with ExecutionClient(port=server.port, host=server.host, access_token=server.access_token) as connected:
        yield connected


@pytest.fixture
async def files(server: Server) -> AsyncIterator[ResourceClient]:
    async with ResourceClient(port=server.port, host=server.host, access_token=server.access_token) as resources:
        yield resources


@pytest.fixture
async def remote_dir(files: ResourceClient) -> AsyncIterator[str]:
    """A fresh directory in the server's workspace, deleted afterwards."""
    name = f"pyclient-{uuid.uuid4().hex[:12]}"
    await files.make_directory(name)
    yield name
    await files.delete(name)
