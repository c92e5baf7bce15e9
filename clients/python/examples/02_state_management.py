"""Stateful execution: executions of one client share its kernel's state; another client has a
kernel of its own.

    python3 02_state_management.py
"""

import asyncio
import os

from code_interpreter_client import ExecutionClient, ExecutionContainer, ExecutionError

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")


async def main() -> None:
    async with ExecutionContainer(tag=TAG) as container:
        server = dict(port=container.executor_port, host=container.host, access_token=container.access_token)

        async with ExecutionClient(**server) as client_1:
            await client_1.execute("x = 1")
            print(f"x in the first kernel: {(await client_1.execute('print(x + 1)')).text}")  # 2

            async with ExecutionClient(**server) as client_2:
                try:
                    await client_2.execute("print(x)")
                except ExecutionError as error:
                    # Kernels share no memory (they do share the workspace's files).
                    print(f"x in the second kernel: {error.name}: {error.value}")  # NameError: name 'x' is not defined


if __name__ == "__main__":
    asyncio.run(main())
