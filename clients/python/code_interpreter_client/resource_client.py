"""Moves files and directories in and out of the server's workspace: `ResourceClient`."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

from ._http import HttpConnection, encode_path
from ._tar import CHUNK_BYTES, pack_directory, unpack_into

__all__ = ["ResourceClient"]


def _check_path(name: str, value: object) -> str:
    if not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise TypeError(f"{name} must be a non-empty path, got {value!r}")
    return os.fspath(value)  # type: ignore[arg-type]


async def _read_file(path: str) -> AsyncIterator[bytes]:
    with open(path, "rb") as file:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            yield chunk


class ResourceClient:
    """Transfers files and directories between this machine and the workspace of a server.

    Remote paths are relative to the workspace (`/home/user` in the image). Every transfer
    streams: no file or archive is held in memory whole. Used as an async context manager, it
    closes its connections at the end.

    Example:
        ```python
        async with ResourceClient(port=container.resource_port, access_token=container.access_token) as files:
            await files.upload_directory("data", "data")
            await files.download_file("data/out.csv", "out.csv")
        ```

    Args:
        port: The server's port (`ExecutionContainer.resource_port`).
        host: The server's host.
        access_token: The server's access token; None when it runs without one.
    """

    def __init__(self, port: int, host: str = "localhost", access_token: str | None = None) -> None:
        self._http = HttpConnection(port, host, access_token)

    async def __aenter__(self) -> ResourceClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connections."""
        await self._http.aclose()

    async def upload_file(self, local_path: str | os.PathLike[str], remote_path: str) -> dict[str, Any]:
        """Uploads a local file, creating the remote parent directories; an existing file is replaced.

        Returns:
            The server's answer: `path`, `size`, `modified`.
        """
        remote = _check_path("remote_path", remote_path)
        local = _check_path("local_path", local_path)
        if not os.path.isfile(local):
            raise FileNotFoundError(f"{local} is not a file")
        return await self._http.json("PUT", f"/files/{encode_path(remote)}", content=_read_file(local))

    async def upload_directory(self, local_dir: str | os.PathLike[str], remote_dir: str) -> dict[str, Any]:
        """Uploads a local directory's contents into `remote_dir` (created when missing).

        The contents travel as one tar archive, unpacked by the server all or nothing:
        same-named files are replaced, directories merged, and what `remote_dir` holds besides stays.

        Returns:
            The server's answer: `path`, `entries`, `bytes`.
        """
        remote = _check_path("remote_dir", remote_dir)
        local = _check_path("local_dir", local_dir)
        if not os.path.isdir(local):
            raise NotADirectoryError(f"{local} is not a directory")
        archive = pack_directory(local)
        try:
            return await self._http.json(
                "PUT", f"/files/{encode_path(remote) or '.'}", params={"extract": "tar"}, content=archive
            )
        finally:
            await archive.aclose()

    async def download_file(self, remote_path: str, local_path: str | os.PathLike[str]) -> None:
        """Downloads a remote file to `local_path`, creating its parent directories.

        It is written beside the target and renamed into place once complete, so a failed
        download leaves no partial file.
        """
        remote = _check_path("remote_path", remote_path)
        local = _check_path("local_path", local_path)
        os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
        partial = f"{local}.{os.getpid()}.{secrets.token_hex(4)}.part"
        response = await self._http.request("GET", f"/files/{encode_path(remote)}", stream=True)
        try:
            with open(partial, "wb") as file:
                async for chunk in response.aiter_bytes(CHUNK_BYTES):
                    await asyncio.to_thread(file.write, chunk)
            os.replace(partial, local)
        except BaseException:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
            raise
        finally:
            await response.aclose()

    async def download_directory(self, remote_dir: str, local_dir: str | os.PathLike[str]) -> None:
        """Downloads a remote directory's contents into `local_dir` (created when missing).

        The archive is checked entry by entry: an absolute name, `..`, a link out of `local_dir`,
        a device file or a write through a link raises `UnsafeArchiveError` (a `ValueError`)
        before that entry is written, so nothing is written outside `local_dir`.
        """
        remote = _check_path("remote_dir", remote_dir)
        local = _check_path("local_dir", local_dir)
        response = await self._http.request(
            "GET", f"/files/{encode_path(remote) or '.'}", params={"format": "tar"}, stream=True
        )
        try:
            os.makedirs(local, exist_ok=True)
            await unpack_into(response.aiter_bytes(CHUNK_BYTES), local)
        finally:
            await response.aclose()

    async def copy(self, source: str, target: str, overwrite: bool = False) -> None:
        """Copies a file, link or directory (recursively) within the workspace.

        Raises:
            AlreadyExistsError: If `target` exists and `overwrite` is False.
        """
        await self._action(source, {"action": "copy", "to": _check_path("target", target), "overwrite": overwrite})

    async def move(self, source: str, target: str, overwrite: bool = False) -> None:
        """Moves (renames) a file, link or directory within the workspace.

        Raises:
            AlreadyExistsError: If `target` exists and `overwrite` is False.
        """
        await self._action(source, {"action": "move", "to": _check_path("target", target), "overwrite": overwrite})

    async def make_directory(self, remote_path: str) -> None:
        """Makes a directory and its parents; nothing happens when it exists."""
        await self._action(remote_path, {"action": "mkdir"})

    async def delete(self, remote_path: str) -> None:
        """Deletes a file, a link (never its target) or a directory with everything in it."""
        await self._http.request("DELETE", f"/files/{encode_path(_check_path('remote_path', remote_path))}")

    async def list(self, remote_path: str = ".") -> list[dict[str, Any]]:
        """Every entry of a remote directory (default: the workspace root), directories first, then by name."""
        entries: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await self._http.json("GET", "/files", params={"path": remote_path, "cursor": cursor})
            entries.extend(page["entries"])
            cursor = page.get("next_cursor")
            if not cursor:
                return entries

    async def _action(self, remote_path: str, body: dict[str, Any]) -> None:
        await self._http.request(
            "POST", f"/files/{encode_path(_check_path('remote_path', remote_path))}", json_body=body
        )
