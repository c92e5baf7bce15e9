from __future__ import annotations

import asyncio
import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import docker
import pytest

from code_interpreter_client import AuthenticationError, ExecutionClient, ExecutionContainer


def exists(container_id: str) -> bool:
    return bool(docker.from_env().containers.list(all=True, filters={"id": container_id}))


def client_for(container: ExecutionContainer, **options: object) -> ExecutionClient:
    return ExecutionClient(
        port=container.executor_port, host=container.host, access_token=container.access_token, **options  # type: ignore[arg-type]
    )


def test_the_port_properties_raise_before_run_unless_a_port_was_given(image: str) -> None:
    container = ExecutionContainer(tag=image)
    with pytest.raises(RuntimeError, match=r"executor_port is not known before run\(\)"):
        container.executor_port
    with pytest.raises(RuntimeError, match=r"resource_port is not known before run\(\)"):
        container.resource_port
    given = ExecutionContainer(tag=image, executor_port=45678)
    assert (given.executor_port, given.resource_port) == (45678, 45678)
    with pytest.raises(ValueError, match="one port of the image serves both"):
        ExecutionContainer(executor_port=45678, resource_port=45679)


def test_binds_outside_the_workspace_and_server_settings_in_env_are_refused() -> None:
    with pytest.raises(ValueError, match="must be relative to the workspace"):
        ExecutionContainer(binds={"data": "/etc"})
    with pytest.raises(ValueError, match=r'no "\.\."'):
        ExecutionContainer(binds={"data": "a/../../etc"})
    with pytest.raises(ValueError, match="ACCESS_TOKEN is a setting of the server"):
        ExecutionContainer(env={"ACCESS_TOKEN": "x"})
    with pytest.raises(ValueError, match="not a valid variable name"):
        ExecutionContainer(env={"A-B": "x"})


async def test_two_containers_with_binds_env_and_tokens_and_kill_leaves_nothing(image: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    # The kernels' user in the container is not this one: the bound directory must be theirs to write.
    shared.chmod(0o777)
    (shared / "from-host.txt").write_text("written on the host")
    first = ExecutionContainer(
        tag=image, binds={os.path.relpath(shared): "data/shared"}, env={"GREETING": "hello from the host"}
    )
    second = ExecutionContainer(tag=image, access_token=None)
    try:
        await asyncio.gather(first.run(), second.run())
        ids = [first.id, second.id]
        assert re.fullmatch(r"[0-9a-f]{64}", first.access_token or "")
        assert second.access_token is None
        assert first.executor_port == first.resource_port
        assert first.executor_port != second.executor_port

        async with client_for(first) as client:
            read = await client.execute("print(open('/home/user/data/shared/from-host.txt').read())")
            assert read.text == "written on the host"
            await client.execute("open('data/shared/from-code.txt', 'w').write('written by code')")
            assert (shared / "from-code.txt").read_text() == "written by code"
            assert (await client.execute("import os; print(os.environ['GREETING'])")).text == "hello from the host"
        async with client_for(second) as client:
            assert (await client.execute("import os; print(6 * 7, 'GREETING' in os.environ)")).text == "42 False"

        # Without the token the first server refuses.
        anonymous = ExecutionClient(port=first.executor_port, host=first.host)
        with pytest.raises(AuthenticationError):
            await anonymous.connect(retries=0)
        await anonymous.disconnect()

        # A container started without an allow-list cannot take one.
        with pytest.raises(RuntimeError, match="cannot enforce an egress allow-list"):
            await second.init_firewall(["example.com"])
    finally:
        await asyncio.gather(first.kill(), second.kill())
    assert not any(exists(container_id or "") for container_id in ids)
    with pytest.raises(RuntimeError, match="not known before run"):
        first.executor_port
    await first.kill()  # a second time does nothing


async def test_async_with_removes_the_container_when_the_block_raises(image: str) -> None:
    container_id = None
    with pytest.raises(LookupError, match="planned failure"):
        async with ExecutionContainer(tag=image) as container:
            container_id = container.id
            raise LookupError("planned failure")
    assert container_id is not None and not exists(container_id)


async def test_a_missing_image_says_how_to_build_it() -> None:
    container = ExecutionContainer(tag="code-interpreter-missing.invalid/none:absent", show_pull_progress=False)
    with pytest.raises(RuntimeError, match=r"docker build -t code-interpreter-missing\.invalid/none:absent \."):
        await container.run()


async def test_the_firewall_refuses_then_allows_then_replaces_the_list(image: str) -> None:
    mirror = os.environ.get("DEBIAN_MIRROR", "")
    if not mirror:
        pytest.fail("DEBIAN_MIRROR is not set: a Debian mirror's URL the containers reach (apt's, say)")
    host = urlsplit(mirror).hostname
    fetch_release = "\n".join(
        [
            "import urllib.request, urllib.error",
            "try:",
            f"    answer = urllib.request.urlopen({mirror.rstrip('/') + '/dists/trixie/Release'!r}, timeout=30)",
            "    print(answer.status, answer.read(4096).decode(errors='replace'))",
            "except urllib.error.HTTPError as e:",
            "    print(e.code, e.read().decode()[:200])",
            "except Exception as e:",
            "    print(repr(e)[:200])",
        ]
    )
    with pytest.raises(RuntimeError, match="not running"):
        await ExecutionContainer(tag=image, allowed_domains=[]).init_firewall(["example.com"])
    async with ExecutionContainer(tag=image, allowed_domains=[]) as container:
        async with client_for(container) as client:
            assert f"403 egress to {host} is not allowed" in (await client.execute(fetch_release)).text
            await container.init_firewall([host or ""])
            # The mirror's own answer: Debian's Release file for trixie.
            assert re.match(r"^200 [\s\S]*Codename: trixie", (await client.execute(fetch_release)).text)
            await container.init_firewall(["example.org"])
            assert f"403 egress to {host} is not allowed" in (await client.execute(fetch_release)).text
            await container.init_firewall()
            assert f"403 egress to {host} is not allowed" in (await client.execute(fetch_release)).text
            with pytest.raises(ValueError, match="allowed_domains"):
                await container.init_firewall(["not a domain"])
            with pytest.raises(RuntimeError, match=r"egress-allow failed .*bad_name!"):
                await container.init_firewall(["bad_name!"])


class DockerTcpRelay:
    """A TCP port that relays to the local daemon's socket: a stand-in for a remote DOCKER_HOST."""

    def __init__(self) -> None:
        self.socket_path = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock").removeprefix("unix://")
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.connections = 0
        self.url = f"tcp://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            daemon = socket.socket(socket.AF_UNIX)
            daemon.connect(self.socket_path)
            for source, target in ((client, daemon), (daemon, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, target):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


async def test_docker_is_reached_at_a_tcp_docker_host(image: str, monkeypatch: pytest.MonkeyPatch) -> None:
    relay = DockerTcpRelay()
    monkeypatch.setenv("DOCKER_HOST", relay.url)
    try:
        async with ExecutionContainer(tag=image) as container:
            assert container.host == "127.0.0.1"
            async with client_for(container) as client:
                assert (await client.execute("print('over tcp')")).text == "over tcp"
        assert relay.connections > 0
    finally:
        relay.close()
