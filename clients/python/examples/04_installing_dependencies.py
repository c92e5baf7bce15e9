"""Installing packages at runtime. pip installs into a virtual environment in the workspace that
every Python kernel of the container uses, so a package installed once is there for all of them.

    python3 04_installing_dependencies.py

With a package index in reach it is one line: `%pip install einops`. This example installs a
package from source that it uploads first, which works without any network too.
"""

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from code_interpreter_client import ExecutionClient, ExecutionContainer, ResourceClient

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")

PYPROJECT = """[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "greeting"
version = "1.0.0"
"""


async def main() -> None:
    async with ExecutionContainer(tag=TAG) as container:
        server = dict(port=container.executor_port, host=container.host, access_token=container.access_token)

        # A small package: greeting/pyproject.toml and greeting/greeting/__init__.py.
        with tempfile.TemporaryDirectory() as source:
            (Path(source) / "greeting").mkdir()
            (Path(source) / "pyproject.toml").write_text(PYPROJECT)
            (Path(source) / "greeting" / "__init__.py").write_text('def hello(name):\n    return f"Hello, {name}!"\n')
            async with ResourceClient(**server) as files:
                await files.upload_directory(source, "packages/greeting")

        async with ExecutionClient(**server) as installer:
            # --no-build-isolation: build with the setuptools that is there instead of fetching one.
            install = await installer.submit("%pip install --no-build-isolation ./packages/greeting", timeout=300)
            async for chunk in install.stream():
                sys.stdout.write(chunk)  # pip's progress, as it comes
            await install.result()

        # Another kernel imports it.
        async with ExecutionClient(**server) as client:
            result = await client.execute("import greeting\nprint(greeting.hello('kernel'))")
            print(f"Output: {result.text}")  # Output: Hello, kernel!


if __name__ == "__main__":
    asyncio.run(main())
