from __future__ import annotations

import asyncio
import re
import time

import pytest

from code_interpreter_client import (
    ExecutionClient,
    ExecutionError,
    ExecutionResult,
    InputRequest,
    NotFoundError,
    TimeoutError,
)

from conftest import Server


async def test_hello_world(client: ExecutionClient) -> None:
    result = await client.execute("print('Hello, world!')")
    assert result == ExecutionResult(text="Hello, world!", images=[])


async def test_state_is_kept_per_client_and_not_shared(client: ExecutionClient, server: Server) -> None:
    await client.execute("x = 41")
    assert (await client.execute("print(x + 1)")).text == "42"
    async with ExecutionClient(port=server.port, host=server.host, access_token=server.access_token) as other:
        with pytest.raises(ExecutionError) as raised:
            await other.execute("print(x)")
        assert raised.value.name == "NameError"


async def test_an_error_carries_its_name_value_and_trace(client: ExecutionClient) -> None:
    with pytest.raises(ExecutionError) as raised:
        await client.execute("def divide():\n    return 1 / 0\n\ndivide()")
    error = raised.value
    assert error.name == "ZeroDivisionError"
    assert "division by zero" in error.value
    # The kernel colours its traceback with ANSI escapes; the words are what matters here.
    trace = re.sub(r"\x1b\[[0-9;]*m", "", error.trace)
    assert "divide()" in trace and "ZeroDivisionError: division by zero" in trace
    assert str(error) == f"ZeroDivisionError: {error.value}"


async def test_a_timeout_interrupts_the_code_and_the_kernel_still_works(client: ExecutionClient) -> None:
    await client.execute("kept = 'still here'")
    started = time.monotonic()
    with pytest.raises(TimeoutError) as raised:
        await client.execute("import time\nwhile True:\n    time.sleep(0.1)", timeout=2)
    assert isinstance(raised.value, builtins_timeout_error())
    assert time.monotonic() - started < 30
    assert (await client.execute("print(kept)")).text == "still here"


def builtins_timeout_error() -> type[BaseException]:
    import builtins

    return builtins.TimeoutError


async def test_output_streams_as_it_is_printed(client: ExecutionClient) -> None:
    code = "import time\nfor i in range(4):\n    print(f'step {i}', flush=True)\n    time.sleep(0.5)"
    execution = await client.submit(code)
    arrivals: list[tuple[float, str]] = []
    async for chunk in execution.stream():
        arrivals.append((time.monotonic(), chunk))
    text = "".join(chunk for _, chunk in arrivals)
    assert text == "".join(f"step {i}\n" for i in range(4))
    assert len(arrivals) >= 3
    # The first line came well before the last: nothing was held back until the end.
    assert arrivals[-1][0] - arrivals[0][0] > 1.0
    assert (await execution.result()).text == text.rstrip()


async def test_client_stream_yields_chunks_then_the_result(client: ExecutionClient) -> None:
    items = [item async for item in client.stream("print('a')\nprint('b')")]
    assert isinstance(items[-1], ExecutionResult)
    assert items[-1].text == "a\nb"
    assert "".join(item for item in items[:-1] if isinstance(item, str)) == "a\nb\n"


async def test_a_plot_comes_back_as_one_image(client: ExecutionClient) -> None:
    code = (
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [3, 1, 2])\n"
        "plt.show()\n"
        "print('plotted')"
    )
    result = await client.execute(code)
    assert result.text == "plotted"
    assert len(result.images) == 1
    image = result.images[0]
    try:
        from PIL import Image
    except ImportError:
        assert isinstance(image, bytes) and image.startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert isinstance(image, Image.Image)
        assert image.format == "PNG" and image.width > 100 and image.height > 100


async def test_images_are_png_bytes_without_pillow(client: ExecutionClient, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    # A None entry makes `from PIL import Image` raise ImportError, as if Pillow were not installed.
    monkeypatch.setitem(sys.modules, "PIL", None)
    result = await client.execute("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()")
    assert len(result.images) == 1
    assert isinstance(result.images[0], bytes) and result.images[0].startswith(b"\x89PNG\r\n\x1a\n")


async def test_input_and_getpass_are_answered(client: ExecutionClient) -> None:
    asked: list[InputRequest] = []

    async def answer(request: InputRequest) -> str:
        asked.append(request)
        return "s3cret" if request.password else "Ada"

    code = "import getpass\nname = input('Name: ')\nsecret = getpass.getpass('Secret: ')\nprint(name, len(secret))"
    result = await client.execute(code, on_input=answer)
    assert result.text.splitlines()[-1] == "Ada 6"
    assert [(request.prompt, request.password) for request in asked] == [("Name: ", False), ("Secret: ", True)]
    # A plain function answers too.
    result = await client.execute("print(input('Again: ') * 2)", on_input=lambda request: "ab")
    assert result.text.splitlines()[-1] == "abab"
    # Without a handler, input() fails in the code.
    with pytest.raises(ExecutionError) as raised:
        await client.execute("input()")
    assert raised.value.name == "StdinNotImplementedError"


async def test_a_failing_input_handler_fails_the_execution(client: ExecutionClient) -> None:
    def refuse(request: InputRequest) -> str:
        raise LookupError("no answer for this prompt")

    with pytest.raises(LookupError):
        await client.execute("input('? ')\nimport time\ntime.sleep(30)", on_input=refuse, timeout=20)
    assert (await client.execute("print('next')")).text == "next"


async def test_an_execution_is_interrupted(client: ExecutionClient) -> None:
    execution = await client.submit("import time\nprint('started', flush=True)\ntime.sleep(60)")
    assert execution.id is not None
    async for chunk in execution.stream():
        assert chunk == "started\n"
        break
    started = time.monotonic()
    await execution.interrupt()
    with pytest.raises(ExecutionError) as raised:
        await execution.result()
    assert raised.value.name == "KeyboardInterrupt"
    assert time.monotonic() - started < 15
    # The kernel's own interrupt, too.
    execution = await client.submit("import time\ntime.sleep(60)")
    await asyncio.sleep(0.5)
    await client.interrupt()
    with pytest.raises(ExecutionError) as raised:
        await execution.result()
    assert raised.value.name == "KeyboardInterrupt"
    assert (await client.execute("print(1)")).text == "1"


async def test_an_execution_is_attached_again_by_its_id(client: ExecutionClient) -> None:
    execution = await client.submit("import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)")
    assert execution.id is not None
    again = await client.attach(execution.id)
    first, second = await asyncio.gather(execution.result(), again.result())
    assert first.text == second.text == "0\n1\n2"
    # From a later event on: only what came after it.
    late = await client.attach(execution.id, from_=execution.events_read - 2)
    assert (await late.result()).text == "2"
    with pytest.raises(NotFoundError):
        await client.attach("no-such-execution")


async def test_env_vars_hold_for_one_execution(client: ExecutionClient) -> None:
    code = "import os\nprint(os.environ.get('PYCLIENT_VAR', 'unset'))"
    assert (await client.execute(code, env_vars={"PYCLIENT_VAR": "one call"})).text == "one call"
    assert (await client.execute(code)).text == "unset"


async def test_an_r_context(server: Server) -> None:
    async with ExecutionClient(port=server.port, host=server.host, access_token=server.access_token, language="r") as r:
        await r.execute("kept <- 21")
        assert (await r.execute("cat(kept * 2)")).text == "42"
        with pytest.raises(ExecutionError):
            await r.execute("stop('refused by R')")


async def test_disconnect_deletes_the_context(server: Server) -> None:
    client = ExecutionClient(port=server.port, host=server.host, access_token=server.access_token)
    with pytest.raises(RuntimeError, match="connect"):
        client.kernel_id
    await client.connect()
    await client.execute("y = 1")
    kernel_id = client.kernel_id
    await client.disconnect()
    async with ExecutionClient(port=server.port, host=server.host, access_token=server.access_token) as other:
        response = await other._http.request("GET", "/contexts")
        assert kernel_id not in [context["id"] for context in response.json()]
    await client.disconnect()  # a second time is a no-op


async def test_arguments_are_checked_before_any_request(client: ExecutionClient) -> None:
    with pytest.raises(TypeError, match="timeout"):
        await client.execute("print(1)", timeout=0)
    with pytest.raises(TypeError, match="code"):
        await client.execute(b"print(1)")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="port"):
        ExecutionClient(port=70000)


async def test_an_unreachable_server_is_a_connection_error() -> None:
    import builtins
    import socket

    from code_interpreter_client import ConnectionError

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ExecutionClient(port=port, host="127.0.0.1")
    with pytest.raises(ConnectionError) as raised:
        await client.connect(retries=1, retry_interval=0.1)
    assert isinstance(raised.value, builtins.ConnectionError)
    assert raised.value.code == "ERR_CONNECTION" and raised.value.status == 0
    await client.disconnect()


class CuttingProxy:
    """A TCP proxy to the server that can cut every connection open through it at once."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.connections = 0

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, upstream_writer}

        async def pipe(source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    target.write(data)
                    await target.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                target.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()

    async def close(self) -> None:
        self.cut()
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


async def test_a_dropped_connection_is_re_attached_to_without_losing_or_repeating_output(server: Server) -> None:
    proxy = CuttingProxy(server.host, server.port)
    port = await proxy.start()
    try:
        async with ExecutionClient(port=port, host="127.0.0.1", access_token=server.access_token) as client:
            code = "import time\nfor i in range(8):\n    print(f'step {i}', flush=True)\n    time.sleep(0.3)"
            execution = await client.submit(code)
            received = []
            before: int | None = None
            async for chunk in execution.stream():
                received.append(chunk)
                if chunk == "step 1\n" and before is None:
                    before = proxy.connections
                    proxy.cut()
            result = await execution.result()
            assert result.text == "\n".join(f"step {i}" for i in range(8))
            assert "".join(received) == result.text + "\n"
            # The rest came over a new connection: the re-attach by id.
            assert before is not None and proxy.connections > before
    finally:
        await proxy.close()
