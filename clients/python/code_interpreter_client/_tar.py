"""Directory archives, streamed through bounded queues between asyncio and a tarfile thread.

Every archive from the server is treated as hostile: absolute names, `..`, links that lead out
of the target directory, device files and writes through symbolic links are refused before
anything is written (Python's `filter="data"` is applied too where it exists, from 3.11.4).
"""

from __future__ import annotations

import asyncio
import os
import queue
import tarfile
import threading
from collections.abc import AsyncIterable, AsyncIterator
from typing import IO, Any

CHUNK_BYTES = 256 * 1024
# Chunks in flight between the thread and the event loop: what one transfer holds in memory.
QUEUE_CHUNKS = 16
_END = b""


class UnsafeArchiveError(ValueError):
    """An archive entry would write outside the target directory, or is not a file, directory or link."""


class _QueueWriter:
    """A write-only file for tarfile that hands its bytes to the event loop in bounded chunks."""

    def __init__(self, chunks: queue.Queue[bytes], stopped: threading.Event) -> None:
        self._chunks = chunks
        self._stopped = stopped

    def write(self, data: bytes) -> int:
        for start in range(0, len(data), CHUNK_BYTES):
            self._put(bytes(data[start : start + CHUNK_BYTES]))
        return len(data)

    def _put(self, chunk: bytes) -> None:
        while not self._stopped.is_set():
            try:
                self._chunks.put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue
        raise OSError("the upload was abandoned")

    def flush(self) -> None:
        pass


async def pack_directory(directory: str) -> AsyncIterator[bytes]:
    """A tar archive of a directory's contents, names relative to it, as a stream of chunks."""
    chunks: queue.Queue[bytes] = queue.Queue(QUEUE_CHUNKS)
    stopped = threading.Event()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            writer = _QueueWriter(chunks, stopped)
            with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
                for name in sorted(os.listdir(directory)):
                    archive.add(os.path.join(directory, name), arcname=name, recursive=True)
        except BaseException as error:  # handed to the consumer below
            failure.append(error)
        finally:
            if not stopped.is_set():
                try:
                    _QueueWriter(chunks, stopped)._put(_END)
                except OSError:
                    pass

    def take() -> bytes | None:
        # A bounded wait: a consumer that goes away must not leave a thread blocked on the queue.
        try:
            return chunks.get(timeout=0.5)
        except queue.Empty:
            return None

    thread = threading.Thread(target=produce, name="tar-pack", daemon=True)
    thread.start()
    try:
        while True:
            chunk = await asyncio.to_thread(take)
            if chunk is None:
                continue
            if chunk == _END:
                break
            yield chunk
        if failure:
            raise failure[0]
    finally:
        stopped.set()
        await asyncio.to_thread(thread.join)


class _QueueReader:
    """A read-only file for tarfile fed by the event loop through a bounded queue."""

    def __init__(self, chunks: queue.Queue[bytes | None]) -> None:
        self._chunks = chunks
        self._buffer = b""
        self._ended = False

    def read(self, size: int = -1) -> bytes:
        while not self._ended and (size < 0 or len(self._buffer) < size):
            chunk = self._chunks.get()
            if chunk is None:
                raise OSError("the download was abandoned")
            if chunk == _END:
                self._ended = True
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data


def _inside(root: str, path: str) -> bool:
    relative = os.path.relpath(path, root)
    return relative == "." or not (relative == ".." or relative.startswith(".." + os.sep) or os.path.isabs(relative))


def _check_name(name: str, what: str) -> str:
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"the archive's {what} {name!r} is absolute: refused")
    parts = [part for part in name.replace("\\", "/").split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafeArchiveError(f"the archive's {what} {name!r} contains '..': refused")
    return "/".join(parts)


def check_member(root: str, member: tarfile.TarInfo) -> str | None:
    """The member's safe path relative to `root` (a real path), or None for the root itself.

    Raises:
        UnsafeArchiveError: If extracting the member could write outside `root`.
    """
    name = _check_name(member.name, "entry")
    if name == "":
        return None
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise UnsafeArchiveError(f"the archive's entry {member.name!r} is a device or pipe: refused")
    target = os.path.join(root, name)
    parent = os.path.realpath(os.path.dirname(target))
    if not _inside(root, parent):
        raise UnsafeArchiveError(f"the archive's entry {member.name!r} would be written through a link out of the directory: refused")
    if member.issym():
        if os.path.isabs(member.linkname):
            raise UnsafeArchiveError(f"the archive's link {member.name!r} points to an absolute path: refused")
        if not _inside(root, os.path.normpath(os.path.join(parent, member.linkname))):
            raise UnsafeArchiveError(f"the archive's link {member.name!r} points out of the directory: refused")
    if member.islnk():
        linked = _check_name(member.linkname, "hard link target")
        if not _inside(root, os.path.realpath(os.path.join(root, linked))):
            raise UnsafeArchiveError(f"the archive's hard link {member.name!r} leads out of the directory: refused")
    return name


def _extract_all(fileobj: IO[bytes] | Any, directory: str) -> None:
    root = os.path.realpath(directory)
    has_filter = hasattr(tarfile, "data_filter")
    with tarfile.open(fileobj=fileobj, mode="r|*") as archive:
        for member in archive:
            name = check_member(root, member)
            if name is None:
                continue
            target = os.path.join(root, name)
            # tarfile opens an existing path and would follow a link planted there.
            if os.path.islink(target) or (os.path.lexists(target) and not member.isdir()):
                if os.path.isdir(target) and not os.path.islink(target):
                    raise UnsafeArchiveError(f"the archive's entry {member.name!r} would replace a directory: refused")
                os.unlink(target)
            # Files belong to whoever downloads, with ordinary permissions (no set-id bits).
            member.uid = member.gid = 0
            member.uname = member.gname = ""
            member.mode = (0o755 if member.isdir() or member.mode & 0o100 else 0o644)
            if has_filter:
                archive.extract(member, root, filter="data")  # type: ignore[call-arg]
            else:
                archive.extract(member, root, set_attrs=not member.issym(), numeric_owner=True)


async def unpack_into(chunks: AsyncIterable[bytes], directory: str) -> None:
    """Extracts a tar stream into `directory` (which exists), refusing unsafe entries."""
    pending: queue.Queue[bytes | None] = queue.Queue(QUEUE_CHUNKS)
    reader = _QueueReader(pending)
    task = asyncio.create_task(asyncio.to_thread(_extract_all, reader, directory))
    try:
        async for chunk in chunks:
            # Once tarfile read the end-of-archive marker it stops: the rest is block padding.
            while chunk and not task.done():
                try:
                    pending.put_nowait(chunk)
                    break
                except queue.Full:
                    await asyncio.sleep(0.01)
            if task.done():
                await task  # raises the extraction's error, if any
        while not task.done():
            try:
                pending.put_nowait(_END)
                break
            except queue.Full:
                await asyncio.sleep(0.01)
        await task
    finally:
        if not task.done():
            # Unblocks the thread's read so that it ends.
            while not task.done():
                try:
                    pending.put_nowait(None)
                except queue.Full:
                    try:
                        pending.get_nowait()
                    except queue.Empty:
                        pass
                await asyncio.sleep(0.01)
