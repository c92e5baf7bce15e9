"""Environment variables: for every kernel of the container, or for one execution.

    python3 07_environment_variables.py
"""

import asyncio
import os

from code_interpreter_client import ExecutionClient, ExecutionContainer

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")

CODE = """
import os
print(f"Using API key: {os.environ['API_KEY']}")
if os.environ.get("DEBUG") == "1":
    print("Debug mode enabled")
"""


async def main() -> None:
    # Seen by every kernel and command inside.
    async with ExecutionContainer(tag=TAG, env={"API_KEY": "secret-key-123", "DEBUG": "1"}) as container:
        async with ExecutionClient(
            port=container.executor_port, host=container.host, access_token=container.access_token
        ) as client:
            print((await client.execute(CODE)).text)

            # For one execution only: the kernel's own value is back afterwards.
            once = await client.execute("import os; print(os.environ['DEBUG'])", env_vars={"DEBUG": "0"})
            after = await client.execute("import os; print(os.environ['DEBUG'])")
            print(f"DEBUG for one execution: {once.text}, afterwards: {after.text}")  # 0, afterwards: 1


if __name__ == "__main__":
    asyncio.run(main())
