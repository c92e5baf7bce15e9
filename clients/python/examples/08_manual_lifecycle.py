"""Without `async with`: run() and kill() by hand, connect() and disconnect() likewise.

    python3 08_manual_lifecycle.py
"""

import asyncio
import os

from code_interpreter_client import ExecutionClient, ExecutionContainer

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")


async def main() -> None:
    container = ExecutionContainer(tag=TAG)
    await container.run()
    try:
        print(f"Container {container.id[:12] if container.id else '?'} serves on {container.host}:{container.executor_port}")
        client = ExecutionClient(port=container.executor_port, host=container.host, access_token=container.access_token)
        await client.connect()
        try:
            print(f"Output: {(await client.execute('print(2 ** 10)')).text}")  # Output: 1024
        finally:
            await client.disconnect()
    finally:
        await container.kill()  # the container is removed, not only stopped
    print("Container removed")


if __name__ == "__main__":
    asyncio.run(main())
