"""Streaming: get output while the code still runs, then the whole result.

    python3 03_output_streaming.py
"""

import asyncio
import os
import time

from code_interpreter_client import ExecutionClient, ExecutionContainer

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")

CODE = """
import time
for i in range(5):
    print(f"Processing step {i}")
    time.sleep(1)
"""


async def main() -> None:
    async with ExecutionContainer(tag=TAG) as container:
        async with ExecutionClient(
            port=container.executor_port, host=container.host, access_token=container.access_token
        ) as client:
            started = time.monotonic()
            execution = await client.submit(CODE)
            async for chunk in execution.stream():
                # One line a second, as the code prints it.
                print(f"Received output after {time.monotonic() - started:.1f} s: {chunk.rstrip()}")

            # Everything at once (the execution has ended: this returns at once).
            result = await execution.result()
            print(f"Aggregated output:\n{result.text}")


if __name__ == "__main__":
    asyncio.run(main())
