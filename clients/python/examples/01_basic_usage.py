"""Basic usage: start a container of the image, create a kernel in it, run code, and clean up.

    python3 01_basic_usage.py

The image is `code-interpreter` (`docker build -t code-interpreter .` in the repository);
CODE_INTERPRETER_IMAGE names another.
"""

import asyncio
import os

from code_interpreter_client import ExecutionClient, ExecutionContainer

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")


async def main() -> None:
    # The container is created and started here, and removed when the block ends, however it ends.
    async with ExecutionContainer(tag=TAG) as container:
        # A kernel (a context on the server) for this client, deleted when the block ends.
        async with ExecutionClient(
            port=container.executor_port, host=container.host, access_token=container.access_token
        ) as client:
            result = await client.execute("print('Hello, world!')")
            print(f"Output: {result.text}")  # Output: Hello, world!

            # `timeout` is in seconds (default 120): the server interrupts the code, the call raises.
            try:
                await client.execute("import time; time.sleep(30)", timeout=1)
            except TimeoutError as error:
                print(f"Timed out: {error}")
            # The kernel is still there, with its state.
            print(f"Still running: {(await client.execute('print(1 + 1)')).text}")  # Still running: 2


if __name__ == "__main__":
    asyncio.run(main())
