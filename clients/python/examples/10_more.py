"""What this server adds to the seeds' API: answers to input(), other languages, interrupt, and
reading an execution again by its id.

    python3 10_more.py
"""

import asyncio
import os

from code_interpreter_client import ExecutionClient, ExecutionContainer, ExecutionError, InputRequest

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")


async def main() -> None:
    async with ExecutionContainer(tag=TAG) as container:
        server = dict(port=container.executor_port, host=container.host, access_token=container.access_token)
        async with ExecutionClient(**server) as client:
            # input() and getpass() are answered by a function (or a coroutine function).
            def answer(request: InputRequest) -> str:
                print(f"Asked: {request.prompt}")
                return "Ada"

            result = await client.execute("name = input('Your name? ')\nprint(f'Hello, {name}!')", on_input=answer)
            print(f"Answered input: {result.text}")

            # Interrupt an execution that runs too long for us.
            execution = await client.submit("import time; time.sleep(60)")
            await asyncio.sleep(1)
            await execution.interrupt()
            try:
                await execution.result()
            except ExecutionError as error:
                print(f"Interrupted: {error.name}")

            # Read an execution again by its id: after a lost connection, or from another program.
            execution = await client.submit("print('once')")
            await execution.result()
            again = await client.attach(execution.id or "")
            print(f"Read again by id: {(await again.result()).text}")

        # A kernel of another language.
        async with ExecutionClient(**server, language="r") as r:
            print(f"R: {(await r.execute('cat(sum(1:10))')).text}")


if __name__ == "__main__":
    asyncio.run(main())
