"""Runs code in kernels of the server: `ExecutionClient`, `Execution` and `ExecutionResult`."""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from ._http import HttpConnection, ndjson_lines
from .errors import ConnectionError, ExecutionError, NotFoundError, TimeoutError, UnavailableError

__all__ = ["ExecutionClient", "Execution", "ExecutionResult", "InputRequest", "InputHandler"]

RE_ATTACH_TRIES = 5
RE_ATTACH_INTERVAL = 1.0


@dataclass
class ExecutionResult:
    """The result of a successful code execution.

    Attributes:
        text: Output text generated during execution: stdout, stderr and the text of results,
            in the order they came.
        images: Every image the code displayed (matplotlib figures included): PIL images when
            Pillow is installed, PNG bytes otherwise.
    """

    text: str
    images: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class InputRequest:
    """What the code asks with `input()` or `getpass()`.

    Attributes:
        prompt: The prompt the code printed.
        password: True for `getpass()`: the answer is a secret.
        input_id: The request's id on the server.
    """

    prompt: str
    password: bool
    input_id: str


InputHandler = Callable[[InputRequest], str | Awaitable[str]]
"""Answers the code's `input()` and `getpass()`: a function or coroutine function returning the answer."""


def _to_image(png: bytes) -> Any:
    """A PIL image of the PNG when Pillow imports, else the PNG bytes themselves."""
    try:
        from PIL import Image
    except ImportError:
        return png
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def _quote(value: str) -> str:
    return quote(value, safe="")


Opener = Callable[[], Coroutine[Any, Any, httpx.Response]]


class Execution:
    """A code execution on its way.

    `stream()` yields its output text as it comes, `result()` waits for the whole of it. The
    server's events are read in the background from the start, so nothing is missed whenever
    `stream()` is called; a dropped connection is re-attached to by the execution's id, from the
    next event not yet read.
    """

    def __init__(
        self,
        http: HttpConnection,
        response: httpx.Response,
        *,
        on_input: InputHandler | None = None,
        from_: int = 0,
        execution_id: str | None = None,
    ) -> None:
        self._http = http
        self._on_input = on_input
        self._chunks: list[str] = []
        self._pngs: list[bytes] = []
        self._changed = asyncio.Event()
        self._failure: BaseException | None = None
        self._event_count = from_
        self._id = execution_id or response.headers.get("x-execution-id")
        self._task = asyncio.create_task(self._pump(response))
        self._task.add_done_callback(self._on_done)

    @property
    def id(self) -> str | None:
        """The execution's id: for `ExecutionClient.attach()` after a lost connection."""
        return self._id

    @property
    def events_read(self) -> int:
        """The number of events read so far: where a re-attach would go on from."""
        return self._event_count

    @property
    def done(self) -> bool:
        """Whether the execution ended (successfully or not)."""
        return self._task.done()

    def _on_done(self, task: asyncio.Task[ExecutionResult]) -> None:
        self._changed.set()
        # Whoever never asks for the result must not get "exception was never retrieved".
        if not task.cancelled():
            task.exception()

    async def stream(self) -> AsyncIterator[str]:
        """Yields the output text as it comes, chunk by chunk.

        Raises:
            ExecutionError: At the end, if the code raised an error.
            TimeoutError: At the end, if the execution exceeded its timeout.
        """
        index = 0
        while True:
            while index < len(self._chunks):
                index += 1
                yield self._chunks[index - 1]
            if self._task.done():
                break
            self._changed.clear()
            if index < len(self._chunks) or self._task.done():
                continue
            await self._changed.wait()
        await self._task

    async def result(self) -> ExecutionResult:
        """Waits for the execution to end and returns its result.

        Raises:
            ExecutionError: If the code raised an error.
            TimeoutError: If the execution exceeded its timeout.
        """
        return await asyncio.shield(self._task)

    async def interrupt(self) -> dict[str, Any]:
        """Interrupts this execution (a queued one leaves the queue); returns its state."""
        if self._id is None:
            raise RuntimeError("the server did not name this execution: it cannot be interrupted by id")
        return await self._http.json("POST", f"/executions/{_quote(self._id)}/interrupt")

    async def cancel(self) -> None:
        """Stops reading the execution here; the code goes on unless interrupted."""
        self._task.cancel()
        try:
            await self._task
        except BaseException:
            pass

    def _push(self, chunk: str) -> None:
        self._chunks.append(chunk)
        self._changed.set()

    async def _pump(self, response: httpx.Response) -> ExecutionResult:
        retries = 0
        while True:
            lost: BaseException
            try:
                try:
                    async for event in ndjson_lines(response):
                        retries = 0
                        kind = event.get("type")
                        if kind == "keepalive":
                            continue
                        self._event_count += int(event.get("count", 0)) if kind == "events_dropped" else 1
                        if kind == "end_of_execution":
                            return self._finish()
                        await self._handle(event)
                    lost = ConnectionError("the stream ended before end_of_execution")
                except (httpx.TransportError, ConnectionError) as error:
                    lost = error
            finally:
                await response.aclose()
            if self._id is None or retries >= RE_ATTACH_TRIES:
                raise lost
            retries += 1
            response = await self._reopen(retries)

    async def _reopen(self, attempt: int) -> httpx.Response:
        tries = attempt
        while True:
            await asyncio.sleep(RE_ATTACH_INTERVAL)
            try:
                return await self._http.request(
                    "GET",
                    f"/executions/{_quote(self._id or '')}/events",
                    params={"from": self._event_count},
                    stream=True,
                )
            except (ConnectionError, UnavailableError):
                if tries >= RE_ATTACH_TRIES:
                    raise
                tries += 1

    async def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "number_of_executions":
            self._id = self._id or event.get("execution_id")
        elif kind in ("stdout", "stderr"):
            self._push(event.get("text", ""))
        elif kind == "result":
            if event.get("png"):
                self._pngs.append(base64.b64decode(event["png"]))
            elif event.get("text") is not None:
                text = event["text"]
                self._push(text if text.endswith("\n") else text + "\n")
        elif kind == "error":
            # The first error is the one that ended the code; what follows reports around it.
            if self._failure is None:
                name = event.get("name", "Error")
                value = event.get("value", "")
                self._failure = (
                    TimeoutError(value)
                    if name == "TimeoutError"
                    else ExecutionError(name, value, event.get("traceback", ""))
                )
        elif kind == "input_request":
            await self._answer(event)

    async def _answer(self, event: dict[str, Any]) -> None:
        if self._on_input is None or self._id is None:
            return
        request = InputRequest(
            prompt=event.get("prompt", ""), password=bool(event.get("password")), input_id=event.get("input_id", "")
        )
        try:
            value = self._on_input(request)
            if inspect.isawaitable(value):
                value = await value
            if not isinstance(value, str):
                raise TypeError(f"on_input must return a string, got {type(value).__name__}")
        except Exception as error:
            if self._failure is None:
                self._failure = error
            try:
                await self.interrupt()
            except Exception:
                pass
            return
        await self._http.request(
            "POST", f"/executions/{_quote(self._id)}/input", json_body={"value": value, "input_id": request.input_id}
        )

    def _finish(self) -> ExecutionResult:
        if self._failure is not None:
            raise self._failure
        return ExecutionResult(text="".join(self._chunks).rstrip(), images=[_to_image(png) for png in self._pngs])


class ExecutionClient:
    """Runs code in a kernel of its own: a context on the server.

    `connect()` creates the kernel and `disconnect()` deletes it; executions share its state in
    between. Used as an async context manager, it does both.

    Example:
        ```python
        async with ExecutionClient(port=49999, access_token="secret") as client:
            result = await client.execute("print('Hello, world!')")
            print(result.text)
        ```

    Args:
        port: The server's port (49999 in the image; `ExecutionContainer.executor_port`).
        host: The server's host.
        access_token: The server's access token; None when it runs without one.
        language: The kernel's language: `python`, `r`, `javascript` or `typescript`.
        cwd: The kernel's working directory: absolute, or relative to the workspace.
    """

    def __init__(
        self,
        port: int,
        host: str = "localhost",
        access_token: str | None = None,
        language: str = "python",
        cwd: str | None = None,
    ) -> None:
        self._http = HttpConnection(port, host, access_token)
        self.language = language
        self.cwd = cwd
        self._context_id: str | None = None
        self._executions: set[Execution] = set()

    @property
    def kernel_id(self) -> str:
        """The id of the kernel's context.

        Raises:
            RuntimeError: If not connected.
        """
        return self._context()

    async def __aenter__(self) -> ExecutionClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def connect(self, retries: int = 10, retry_interval: float = 1.0) -> None:
        """Creates the kernel, trying again while the server cannot be reached or is not ready.

        Args:
            retries: Number of tries after the first.
            retry_interval: Delay between tries in seconds.
        """
        if not isinstance(retries, int) or retries < 0:
            raise TypeError(f"retries must be a whole number >= 0, got {retries!r}")
        if not retry_interval >= 0:
            raise TypeError(f"retry_interval must be a number of seconds >= 0, got {retry_interval!r}")
        if self._context_id is not None:
            return
        body: dict[str, Any] = {"language": self.language}
        if self.cwd is not None:
            body["cwd"] = self.cwd
        attempt = 0
        while True:
            try:
                context = await self._http.json("POST", "/contexts", json_body=body)
                self._context_id = context["id"]
                return
            except (ConnectionError, UnavailableError):
                if attempt >= retries:
                    raise
                attempt += 1
                await asyncio.sleep(retry_interval)

    async def disconnect(self) -> None:
        """Deletes the kernel and closes the connections; nothing happens when it is gone already."""
        for execution in list(self._executions):
            await execution.cancel()
        self._executions.clear()
        context_id, self._context_id = self._context_id, None
        try:
            if context_id is not None:
                try:
                    await self._http.request("DELETE", f"/contexts/{_quote(context_id)}")
                except NotFoundError:
                    pass
        finally:
            await self._http.aclose()

    async def execute(
        self,
        code: str,
        timeout: float = 120,
        env_vars: dict[str, str] | None = None,
        on_input: InputHandler | None = None,
    ) -> ExecutionResult:
        """Executes code in this client's kernel and returns the result.

        Args:
            code: The code to execute, in the client's language.
            timeout: Seconds before the server interrupts the code.
            env_vars: Environment variables for this execution only; the kernel's are restored afterwards.
            on_input: Answers the code's `input()` and `getpass()`; without it they fail in the code.

        Raises:
            ExecutionError: If the code raised an error.
            TimeoutError: If the execution exceeded the timeout (the kernel was interrupted).
        """
        execution = await self.submit(code, timeout=timeout, env_vars=env_vars, on_input=on_input)
        return await execution.result()

    async def submit(
        self,
        code: str,
        timeout: float = 120,
        env_vars: dict[str, str] | None = None,
        on_input: InputHandler | None = None,
    ) -> Execution:
        """Starts executing code and returns the `Execution`, to `stream()` or await its `result()`.

        Takes the same arguments as `execute`.
        """
        if not isinstance(code, str):
            raise TypeError(f"code must be a string, got {type(code).__name__}")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise TypeError(f"timeout must be a positive number of seconds, got {timeout!r}")
        body: dict[str, Any] = {
            "code": code,
            "context_id": self._context(),
            "timeout": timeout,
            # The code keeps running when the connection drops, so the execution can be re-attached to.
            "on_disconnect": "continue",
        }
        if env_vars:
            body["env_vars"] = dict(env_vars)
        if on_input is not None:
            body["stdin"] = True
        response = await self._http.request("POST", "/execute", json_body=body, stream=True)
        return self._track(Execution(self._http, response, on_input=on_input))

    async def stream(
        self, code: str, timeout: float = 120, env_vars: dict[str, str] | None = None
    ) -> AsyncIterator[str | ExecutionResult]:
        """Executes code, yielding output text chunks as they come and the `ExecutionResult` last."""
        execution = await self.submit(code, timeout=timeout, env_vars=env_vars)
        async for chunk in execution.stream():
            yield chunk
        yield await execution.result()

    async def attach(
        self, execution_id: str, from_: int = 0, on_input: InputHandler | None = None
    ) -> Execution:
        """Reads an execution again by its id, from event `from_` on (after a lost connection, say)."""
        if not isinstance(from_, int) or from_ < 0:
            raise TypeError(f"from_ must be a whole number >= 0, got {from_!r}")
        response = await self._http.request(
            "GET", f"/executions/{_quote(execution_id)}/events", params={"from": from_}, stream=True
        )
        return self._track(
            Execution(self._http, response, on_input=on_input, from_=from_, execution_id=execution_id)
        )

    async def interrupt(self) -> None:
        """Interrupts whatever runs in the kernel."""
        await self._http.request("POST", f"/contexts/{_quote(self._context())}/interrupt")

    async def restart(self) -> None:
        """Restarts the kernel: its state is wiped, its id and working directory stay."""
        await self._http.request("POST", f"/contexts/{_quote(self._context())}/restart")

    def _track(self, execution: Execution) -> Execution:
        # Held until done, so that disconnect() can stop reading what is still streaming.
        self._executions.add(execution)
        execution._task.add_done_callback(lambda _: self._executions.discard(execution))
        return execution

    def _context(self) -> str:
        if self._context_id is None:
            raise RuntimeError("the client is not connected: call connect() first (or use `async with`)")
        return self._context_id
