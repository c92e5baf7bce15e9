"""The connection every client shares: where the server is, its token, and its error answers."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from .errors import CodeInterpreterError, ConnectionError, error_for

# The server sends a keepalive line on quiet streams, so a long read timeout only bounds a
# server that stopped answering altogether; connecting should never take long.
DEFAULT_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
# Bounds what one client holds: executions stream on their own connections.
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=8)
# The longest NDJSON line accepted: an image's base64 in one `result` event stays far below it.
MAX_LINE_BYTES = 256 * 1024 * 1024


def encode_path(path: str) -> str:
    """Percent-encodes each segment of a workspace path, keeping its slashes."""
    return "/".join(quote(segment, safe="") for segment in path.split("/") if segment != "")


def check_port(name: str, port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= 65535:
        raise TypeError(f"{name} must be an integer between 1 and 65535, got {port!r}")
    return port


class HttpConnection:
    """An `httpx.AsyncClient` for one server, turning its error answers into exceptions."""

    def __init__(self, port: int, host: str = "localhost", access_token: str | None = None) -> None:
        check_port("port", port)
        bracketed = f"[{host}]" if ":" in host and not host.startswith("[") else host
        self.base_url = f"http://{bracketed}:{port}"
        headers = {"authorization": f"Bearer {access_token}"} if access_token else {}
        self._client: httpx.AsyncClient | None = None
        self._headers = headers

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        content: AsyncIterable[bytes] | bytes | None = None,
        stream: bool = False,
        timeout: httpx.Timeout | None = None,
    ) -> httpx.Response:
        """Sends a request; an answer of 400 or more raises the error class of its code.

        With `stream=True` the body is left unread: the caller reads it and closes the response.
        """
        query = {key: value for key, value in (params or {}).items() if value is not None}
        request = self.client.build_request(
            method,
            path,
            params=query,
            json=json_body,
            content=content,
            **({"timeout": timeout} if timeout is not None else {}),
        )
        try:
            response = await self.client.send(request, stream=True)
        except httpx.WriteError as error:
            # httpx does not read an answer that comes while it still sends: the server refused
            # the body early, and its reason is lost.
            raise ConnectionError(
                f"{method} {path} failed: the server closed the connection before the whole body was sent, "
                f"so it refused it early (a path in the way, or a size limit such as MAX_UPLOAD_BYTES): {error!r}"
            ) from error
        except httpx.TransportError as error:
            raise ConnectionError(f"{method} {path} failed: {error!r}") from error
        if response.status_code >= 400:
            try:
                await response.aread()
            except httpx.HTTPError:
                pass
            finally:
                await response.aclose()
            raise error_from_response(response)
        if not stream:
            try:
                await response.aread()
            except httpx.TransportError as error:
                raise ConnectionError(f"{method} {path} broke off: {error!r}") from error
            finally:
                await response.aclose()
        return response

    async def json(self, method: str, path: str, **options: Any) -> Any:
        response = await self.request(method, path, **options)
        return response.json() if response.content else None


def error_from_response(response: httpx.Response) -> CodeInterpreterError:
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        text = ""
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and isinstance(parsed.get("code"), str):
            message = parsed.get("message")
            return error_for(response.status_code, parsed["code"], message if isinstance(message, str) else text)
    except ValueError:
        # Not the server's error shape (a proxy's page, say): the status is all there is.
        pass
    return CodeInterpreterError(
        f"HTTP {response.status_code}: {text[:200]}", f"HTTP_{response.status_code}", response.status_code
    )


async def ndjson_lines(response: httpx.Response, max_line_bytes: int = MAX_LINE_BYTES) -> AsyncIterator[Any]:
    """The NDJSON values of a streamed response, one per line, as each line arrives.

    Blank lines are skipped; a stream that ends inside a line, or a line longer than
    `max_line_bytes`, raises.
    """
    buffered = bytearray()
    async for chunk in response.aiter_bytes():
        buffered += chunk
        start = 0
        while (newline := buffered.find(b"\n", start)) != -1:
            line = bytes(buffered[start:newline])
            start = newline + 1
            if line.strip():
                yield json.loads(line)
        del buffered[:start]
        if len(buffered) > max_line_bytes:
            raise CodeInterpreterError(f"an NDJSON line is longer than {max_line_bytes} bytes", "ERR_PROTOCOL", 0)
    if bytes(buffered).strip():
        raise ConnectionError("the stream ended inside a line")
