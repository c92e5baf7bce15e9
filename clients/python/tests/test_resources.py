from __future__ import annotations

import asyncio
import io
import os
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from code_interpreter_client import (
    AlreadyExistsError,
    AuthenticationError,
    CodeInterpreterError,
    ExecutionClient,
    NotFoundError,
    ResourceClient,
    UnsafeArchiveError,
)

from conftest import Server


def write_tree(root: Path) -> dict[str, bytes]:
    tree = {
        "top.txt": b"top level\n",
        "nested/inner.bin": bytes(range(256)) * 64,
        "nested/deeper/leaf.txt": "ünïcode ✓\n".encode(),
        "nested/empty.txt": b"",
        # Many chunks: the archive streams through a bounded queue.
        "nested/deeper/large.bin": os.urandom(5 * 1024 * 1024),
    }
    for name, content in tree.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    (root / "nested" / "empty-dir").mkdir()
    return tree


async def test_a_file_goes_up_and_comes_back(files: ResourceClient, remote_dir: str, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    content = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(content)
    answer = await files.upload_file(source, f"{remote_dir}/sub/file.bin")
    assert answer["size"] == len(content)
    target = tmp_path / "out" / "file.bin"
    await files.download_file(f"{remote_dir}/sub/file.bin", target)
    assert target.read_bytes() == content
    assert [entry.name for entry in (tmp_path / "out").iterdir()] == ["file.bin"]


async def test_the_code_sees_an_uploaded_file_and_its_output_comes_back(
    files: ResourceClient, client: ExecutionClient, remote_dir: str, tmp_path: Path
) -> None:
    (tmp_path / "numbers.txt").write_text("1\n2\n3\n")
    await files.upload_file(tmp_path / "numbers.txt", f"{remote_dir}/numbers.txt")
    code = (
        "import os\n"
        f"base = os.path.join(os.path.expanduser('~'), {remote_dir!r})\n"
        "total = sum(int(line) for line in open(os.path.join(base, 'numbers.txt')))\n"
        "open(os.path.join(base, 'total.txt'), 'w').write(str(total))\n"
        "print(total)"
    )
    # The kernel's working directory is the workspace unless the client says otherwise.
    result = await client.execute(code.replace("os.path.expanduser('~')", "os.getcwd()"))
    assert result.text == "6"
    await files.download_file(f"{remote_dir}/total.txt", tmp_path / "total.txt")
    assert (tmp_path / "total.txt").read_text() == "6"


async def test_a_directory_with_nested_files_goes_up_and_comes_back(
    files: ResourceClient, remote_dir: str, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    tree = write_tree(source)
    answer = await files.upload_directory(source, f"{remote_dir}/tree")
    assert answer["entries"] >= len(tree)
    names = {entry["name"] for entry in await files.list(f"{remote_dir}/tree/nested")}
    assert names == {"inner.bin", "deeper", "empty.txt", "empty-dir"}
    assert [entry["size"] for entry in await files.list(f"{remote_dir}/tree/nested/deeper") if entry["name"] == "large.bin"] == [
        5 * 1024 * 1024
    ]
    target = tmp_path / "target"
    await files.download_directory(f"{remote_dir}/tree", target)
    for name, content in tree.items():
        assert (target / name).read_bytes() == content, name
    assert (target / "nested" / "empty-dir").is_dir()


async def test_copy_move_mkdir_delete_and_list(files: ResourceClient, remote_dir: str, tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    await files.upload_file(tmp_path / "a.txt", f"{remote_dir}/a.txt")
    await files.copy(f"{remote_dir}/a.txt", f"{remote_dir}/b.txt")
    with pytest.raises(AlreadyExistsError):
        await files.copy(f"{remote_dir}/a.txt", f"{remote_dir}/b.txt")
    await files.copy(f"{remote_dir}/a.txt", f"{remote_dir}/b.txt", overwrite=True)
    await files.make_directory(f"{remote_dir}/d/e")
    await files.move(f"{remote_dir}/b.txt", f"{remote_dir}/d/e/c.txt")
    listing = await files.list(remote_dir)
    assert [(entry["name"], entry["type"]) for entry in listing] == [("d", "dir"), ("a.txt", "file")]
    await files.download_file(f"{remote_dir}/d/e/c.txt", tmp_path / "c.txt")
    assert (tmp_path / "c.txt").read_text() == "a"
    await files.delete(f"{remote_dir}/d")
    assert [entry["name"] for entry in await files.list(remote_dir)] == ["a.txt"]


async def test_a_missing_file_is_not_found_and_leaves_nothing(
    files: ResourceClient, remote_dir: str, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError) as raised:
        await files.download_file(f"{remote_dir}/missing.txt", tmp_path / "missing.txt")
    assert raised.value.status == 404
    assert raised.value.code == "ERR_FILE_NOT_FOUND"
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        await files.upload_file(tmp_path / "nothing-here", f"{remote_dir}/x")


async def test_a_wrong_token_is_refused(server: Server) -> None:
    if not server.access_token:
        pytest.skip("the server runs without an access token")
    async with ResourceClient(port=server.port, host=server.host, access_token="wrong-token-0123456789") as files:
        with pytest.raises(AuthenticationError, match="access_token="):
            await files.list()


# --- Hostile archives: a stand-in server answers every GET with the archive given ----------------


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, content in members:
            info.size = len(content) if info.isfile() else 0
            archive.addfile(info, io.BytesIO(content) if info.isfile() else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    return info


@pytest.fixture
def archive_server() -> Iterator[tuple[int, list[bytes]]]:
    served: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = served[0]
            self.send_response(200)
            self.send_header("content-type", "application/x-tar")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield http.server_address[1], served
    http.shutdown()
    thread.join()


HOSTILE = {
    "dot-dot": [(entry("ok.txt"), b"fine"), (entry("../x"), b"escaped")],
    "nested dot-dot": [(entry("a/../../x"), b"escaped")],
    "absolute": [(entry("/tmp/x"), b"escaped")],
    "symlink out": [(entry("link", tarfile.SYMTYPE, "../.."), b"")],
    "absolute symlink": [(entry("link", tarfile.SYMTYPE, "/etc"), b"")],
    "write through a link": [(entry("sub", tarfile.SYMTYPE, "."), b""), (entry("sub/../../x"), b"escaped")],
    "hard link out": [(entry("hard", tarfile.LNKTYPE, "../x"), b"")],
    "device": [(entry("dev", tarfile.CHRTYPE), b"")],
}


@pytest.mark.parametrize("case", list(HOSTILE))
async def test_a_hostile_archive_is_refused_without_writing_outside(
    archive_server: tuple[int, list[bytes]], tmp_path: Path, case: str
) -> None:
    port, served = archive_server
    served.append(tar_of(*HOSTILE[case]))
    target = tmp_path / "deep" / "target"
    async with ResourceClient(port=port, host="127.0.0.1") as files:
        with pytest.raises(UnsafeArchiveError):
            await files.download_directory("anything", target)
    outside = [path for path in tmp_path.rglob("*") if not str(path).startswith(str(target))]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in outside) == ["deep"]
    assert not Path("/tmp/x").exists() or Path("/tmp/x").read_bytes() != b"escaped"


async def test_a_link_planted_in_the_target_is_not_written_through(
    archive_server: tuple[int, list[bytes]], tmp_path: Path
) -> None:
    port, served = archive_server
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    target = tmp_path / "target"
    target.mkdir()
    (target / "file.txt").symlink_to(outside)
    served.append(tar_of((entry("file.txt"), b"from the archive")))
    async with ResourceClient(port=port, host="127.0.0.1") as files:
        await files.download_directory("anything", target)
    assert outside.read_text() == "untouched"
    assert not (target / "file.txt").is_symlink()
    assert (target / "file.txt").read_bytes() == b"from the archive"


async def test_links_that_stay_inside_are_kept(archive_server: tuple[int, list[bytes]], tmp_path: Path) -> None:
    port, served = archive_server
    served.append(
        tar_of(
            (entry("dir", tarfile.DIRTYPE), b""),
            (entry("dir/real.txt"), b"real"),
            (entry("dir/alias.txt", tarfile.SYMTYPE, "real.txt"), b""),
            (entry("up.txt", tarfile.SYMTYPE, "dir/real.txt"), b""),
        )
    )
    target = tmp_path / "target"
    async with ResourceClient(port=port, host="127.0.0.1") as files:
        await files.download_directory("anything", target)
    assert (target / "dir" / "alias.txt").read_bytes() == b"real"
    assert (target / "up.txt").read_bytes() == b"real"
    await asyncio.sleep(0)


async def test_a_refused_directory_upload_raises_and_stops_packing(
    files: ResourceClient, remote_dir: str, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("in the way")
    await files.upload_file(tmp_path / "file", f"{remote_dir}/in-the-way")
    source = tmp_path / "source"
    source.mkdir()
    write_tree(source)
    with pytest.raises(CodeInterpreterError) as raised:
        await asyncio.wait_for(files.upload_directory(source, f"{remote_dir}/in-the-way"), timeout=60)
    # The server's answer, or, when it came while the archive was still being sent, the broken connection.
    assert raised.value.status >= 400 or "before the whole body was sent" in str(raised.value)
    # The packing thread ended with the request.
    assert not [thread for thread in threading.enumerate() if thread.name == "tar-pack"]
