"""ExecutionContainer against the image under test: CONTAINER_IMAGE names it."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def image() -> str:
    tag = os.environ.get("CONTAINER_IMAGE", "")
    if not tag:
        pytest.fail("CONTAINER_IMAGE is not set: name the image under test (code-interpreter:wip, say)")
    return tag
