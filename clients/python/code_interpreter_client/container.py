"""Runs the server's Docker image: `ExecutionContainer`."""

from __future__ import annotations

import asyncio
import enum
import json
import os
import re
import secrets
import sys
import time
from typing import TYPE_CHECKING, Literal

import httpx

if TYPE_CHECKING:
    import docker
    from docker.models.containers import Container

__all__ = ["ExecutionContainer", "DEFAULT_TAG", "CONTAINER_API_PORT", "CONTAINER_WORKSPACE", "SERVER_SETTINGS"]

DEFAULT_TAG = "code-interpreter"
"""The image built with `docker build -t code-interpreter .` in the server's repository."""
CONTAINER_API_PORT = 49999
"""The image's API port inside the container: it serves the executor and the resource API alike."""
CONTAINER_WORKSPACE = "/home/user"
"""The workspace in the image: bind targets are relative to it."""

# Variables the image's server and start-up script read as their own settings: the same list as
# SERVER_SETTINGS in clients/typescript/src/container.ts (start-up.sh's SERVER_ONLY_VARS). `env`
# is for the code inside, so these names are refused there: the server would take them as its settings.
SERVER_SETTINGS: tuple[str, ...] = (
    "ACCESS_TOKEN", "AUTH_MODE", "CORS_ORIGINS", "ALLOWED_HOSTS", "JUPYTER_TOKEN", "JUPYTER_URL", "HOST", "PORT", "ENVD_PORT",
    "WORKSPACE_DIR", "LOG_LEVEL", "DEFAULT_LANGUAGE", "EXECUTION_TIMEOUT", "MAX_EXECUTION_TIMEOUT",
    "INTERRUPT_GRACE", "KEEPALIVE_INTERVAL", "MAX_OUTPUT_BYTES", "MAX_QUEUED_EXECUTIONS", "MAX_QUEUED_BYTES", "SHUTDOWN_GRACE",
    "MAX_UPLOAD_BYTES", "MAX_EXTRACT_BYTES", "MAX_EXTRACT_ENTRIES", "NODE_ENV", "NODE_OPTIONS", "NODE_COMPILE_CACHE", "API_COMMAND",
    "JUPYTER_PYTHON", "JUPYTER_WAIT_SECONDS",
    "EXECUTION_BUFFER_BYTES", "EXECUTION_BUFFER_TOTAL_BYTES", "EXECUTION_RETENTION", "MAX_RETAINED_EXECUTIONS",
    "MCP_MAX_FILE_BYTES", "MCP_MAX_TEXT", "MCP_SESSION_IDLE", "MCP_MAX_SESSIONS", "METRICS_PUBLIC", "METRICS_TOKEN",
    "REQUEST_TIMEOUT", "MAX_CONNECTIONS", "MAX_CONTEXTS", "CONTEXT_MEMORY_LIMIT", "KERNEL_POOL",
    "EGRESS_ALLOW", "EGRESS_PROXY_PORT", "EGRESS_STATE_DIR", "KERNEL_USER", "KERNEL_IDS", "API_USER", "EGRESS_USER", "WORKSPACE_GROUP",
    "MAX_PROCESSES", "PROCESS_HOST_SOCKET", "MAX_FILE_OPERATIONS", "MAX_WATCHES", "WATCH_MAX_DIRECTORIES", "ROLE", "PLAYGROUND",
)  # fmt: skip



class _Token(enum.Enum):
    # A typed sentinel: None already means "no token", so "generate one" needs a value of its own.
    GENERATED = "generated"


_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_port(name: str, port: int | None) -> None:
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port <= 65535):
        raise TypeError(f"{name} must be an integer between 1 and 65535, got {port!r}")


def binds_for(binds: dict[str, str], cwd: str | None = None) -> list[str]:
    """`host:target` pairs for Docker, the targets made absolute under the workspace."""
    result = []
    for host_path, container_path in binds.items():
        if host_path == "":
            raise ValueError("binds: a host path is empty")
        if container_path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", container_path):
            raise ValueError(
                f'binds: the container path "{container_path}" must be relative to the workspace ({CONTAINER_WORKSPACE}), not absolute'
            )
        segments = [s for s in re.split(r"[/\\]", container_path) if s not in ("", ".")]
        if ".." in segments:
            raise ValueError(f'binds: the container path "{container_path}" must stay inside the workspace (no "..")')
        if not segments:
            raise ValueError(f'binds: the container path for "{host_path}" names no directory under the workspace')
        source = os.path.abspath(os.path.join(cwd or os.getcwd(), host_path))
        # Docker's bind syntax is source:target[:options]; a colon elsewhere would be read as a separator.
        for part in [source, *segments]:
            if ":" in part:
                raise ValueError(f'binds: "{part}" contains ":", which Docker\'s bind syntax cannot carry')
        result.append(f"{source}:{CONTAINER_WORKSPACE}/{'/'.join(segments)}")
    return result


def environment_for(env: dict[str, str]) -> list[str]:
    """The container's environment: the code's variables, refusing the server's own settings."""
    settings = set(SERVER_SETTINGS)
    result = []
    for name, value in env.items():
        if not _VARIABLE_NAME.match(name):
            raise ValueError(f'env: "{name}" is not a valid variable name')
        if name in settings:
            raise ValueError(
                f"env: {name} is a setting of the server in the image, not a variable for the code; "
                "pass it per execution (execute's env_vars) instead"
            )
        if not isinstance(value, str):
            raise TypeError(f"env: the value of {name} must be a string")
        result.append(f"{name}={value}")
    return result


def _allow_list_text(allowed_domains: list[str]) -> str:
    """An allow-list as the image's EGRESS_ALLOW and egress-allow take it."""
    if isinstance(allowed_domains, str):
        raise TypeError("allowed_domains must be a list of domains, addresses or CIDR ranges, not one string")
    for entry in allowed_domains:
        if not isinstance(entry, str) or entry.strip() == "" or re.search(r"[,\s]", entry.strip()):
            raise ValueError(f'allowed_domains: "{entry}" is not one domain, address or CIDR range')
    return ",".join(entry.strip() for entry in allowed_domains) if allowed_domains else "none"


def _daemon_host() -> tuple[str, bool]:
    """Where the daemon publishes ports, as seen from here: its host for a remote DOCKER_HOST."""
    match = re.match(r"^(?:tcp|http|https|ssh)://(?:[^@/]*@)?(\[[^\]]+\]|[^:/]+)", os.environ.get("DOCKER_HOST", ""))
    if not match:
        return "127.0.0.1", True
    host = match.group(1).strip("[]")
    local = host in ("localhost", "127.0.0.1", "::1")
    return ("127.0.0.1" if local else host), local


class ExecutionContainer:
    """Context manager for the lifecycle of a code execution Docker container.

    `run()` creates and starts a container of the image, publishes its API port and waits until
    it executes code; `kill()` removes it; `async with` does both. One port serves the
    executor (`ExecutionClient`) and the resource API (`ResourceClient`).

    Example:
        ```python
        async with ExecutionContainer(binds={"./data": "data"}, env={"API_KEY": "abc"}) as container:
            async with ExecutionClient(
                port=container.executor_port, host=container.host, access_token=container.access_token
            ) as client:
                print((await client.execute("import os; print(os.listdir('data'))")).text)
        ```

    Args:
        tag: The image, `name[:tag]`. Pulled when missing (progress on stderr unless
            `show_pull_progress` is False).
        binds: Bind mounts: host path (relative to the working directory, or absolute) → path
            relative to the workspace (`/home/user`) in the container.
        env: Environment variables for the code that runs inside (kernels and commands). The
            server's own settings (`SERVER_SETTINGS`) are refused.
        executor_port: The API's host port; random unless given. Same as `resource_port`.
        resource_port: The API's host port; random unless given. Same as `executor_port`.
        port_allocation_timeout: Seconds to wait for Docker to report the random host port.
        show_pull_progress: Whether to show progress when pulling the image.
        access_token: The server's token; generated unless given; None runs the server without one.
        allowed_domains: Starts the container with an egress allow-list (domains, `*.domains`,
            IPs, CIDRs; empty: only the essentials) and the NET_ADMIN capability it needs. Only
            such a container can take `init_firewall()`.
        start_timeout: Seconds `run()` waits for the server to execute code.
    """

    def __init__(
        self,
        tag: str = DEFAULT_TAG,
        binds: dict[str, str] | None = None,
        env: dict[str, str] | None = None,
        executor_port: int | None = None,
        resource_port: int | None = None,
        port_allocation_timeout: float = 10,
        show_pull_progress: bool = True,
        access_token: str | None | Literal[_Token.GENERATED] = _Token.GENERATED,
        allowed_domains: list[str] | None = None,
        start_timeout: float = 120,
    ) -> None:
        self.tag = tag
        self.binds = dict(binds or {})
        self.env = dict(env or {})
        self.show_pull_progress = show_pull_progress
        self.access_token: str | None = secrets.token_hex(32) if access_token is _Token.GENERATED else access_token
        if self.access_token is not None and (not isinstance(self.access_token, str) or self.access_token == ""):
            raise TypeError("access_token must be a non-empty string, or None to run the server without one")
        _check_port("executor_port", executor_port)
        _check_port("resource_port", resource_port)
        if executor_port is not None and resource_port is not None and executor_port != resource_port:
            raise ValueError(
                f"executor_port ({executor_port}) and resource_port ({resource_port}) differ, but one port of "
                "the image serves both: give one of them, or the same port"
            )
        self._requested_port = executor_port if executor_port is not None else resource_port
        self._port_allocation_timeout = port_allocation_timeout
        self._start_timeout = start_timeout
        self._allowed_domains = list(allowed_domains) if allowed_domains is not None else None
        if self._allowed_domains is not None:
            _allow_list_text(self._allowed_domains)
        # Checked now, so that a wrong bind or variable fails before anything is created.
        binds_for(self.binds)
        environment_for(self.env)
        self.host, self._local_daemon = _daemon_host()
        self._docker: docker.DockerClient | None = None
        self._container: Container | None = None
        self._host_port: int | None = None

    @property
    def executor_port(self) -> int:
        """The API's host port: given to the constructor, or allocated by Docker at `run()`.

        Raises:
            RuntimeError: If the container is not running and no port was given.
        """
        port = self._host_port or self._requested_port
        if port is None:
            raise RuntimeError("executor_port is not known before run(): the container is not running and no port was given")
        return port

    @property
    def resource_port(self) -> int:
        """The API's host port: the same as `executor_port` (one port serves both).

        Raises:
            RuntimeError: If the container is not running and no port was given.
        """
        port = self._host_port or self._requested_port
        if port is None:
            raise RuntimeError("resource_port is not known before run(): the container is not running and no port was given")
        return port

    @property
    def id(self) -> str | None:
        """The container's id, once `run()` created it."""
        return self._container.id if self._container is not None else None

    async def __aenter__(self) -> ExecutionContainer:
        await self.run()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.kill()

    async def run(self) -> None:
        """Creates and starts the container, and waits until its server executes code."""
        if self._container is not None:
            raise RuntimeError("this container already runs: kill() it first")
        if self._docker is None:
            # Imported on first use: programs that only use the HTTP clients never load it.
            import docker

            self._docker = await asyncio.to_thread(docker.from_env)
        await self._ensure_image()
        env = environment_for(self.env)
        env.append(f"ACCESS_TOKEN={self.access_token or ''}")
        if self._allowed_domains is not None:
            env.append(f"EGRESS_ALLOW={_allow_list_text(self._allowed_domains)}")
        port_key = f"{CONTAINER_API_PORT}/tcp"
        docker_client = self._docker
        self._container = await asyncio.to_thread(
            docker_client.containers.create,
            self.tag,
            environment=env,
            labels={"code-interpreter-client": "ExecutionContainer"},
            volumes=binds_for(self.binds),
            # No host port lets Docker pick a free one; it is read back below.
            ports={port_key: ("127.0.0.1" if self._local_daemon else "", self._requested_port)},
            cap_add=["NET_ADMIN"] if self._allowed_domains is not None else None,
            detach=True,
        )
        try:
            await asyncio.to_thread(self._container.start)
            self._host_port = await self._read_port(port_key)
            await self._wait_until_ready()
        except BaseException:
            await self.kill()
            raise

    async def _ensure_image(self) -> None:
        import docker.errors

        assert self._docker is not None
        try:
            await asyncio.to_thread(self._docker.images.get, self.tag)
            return
        except docker.errors.ImageNotFound:
            pass
        try:
            await asyncio.to_thread(self._pull)
        except Exception as error:
            raise RuntimeError(
                f"the image {self.tag} is not there and could not be pulled ({error}). Build it from the "
                f"code-interpreter repository: docker build -t {self.tag} . (see its README)"
            ) from error

    def _pull(self) -> None:
        assert self._docker is not None
        repository, _, tag = self.tag.rpartition(":") if ":" in self.tag.rsplit("/", 1)[-1] else (self.tag, "", "latest")
        for event in self._docker.api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise RuntimeError(event["error"])
            if self.show_pull_progress and event.get("status"):
                prefix = f"{event['id']}: " if event.get("id") else ""
                progress = f" {event['progress']}" if event.get("progress") else ""
                print(f"{prefix}{event['status']}{progress}", file=sys.stderr)

    async def _read_port(self, port_key: str) -> int:
        assert self._container is not None
        deadline = time.monotonic() + self._port_allocation_timeout
        while True:
            await asyncio.to_thread(self._container.reload)
            bindings = (self._container.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(port_key) or []
            for binding in bindings:
                if binding.get("HostPort"):
                    return int(binding["HostPort"])
            if not self._container.attrs["State"]["Running"]:
                raise RuntimeError(f"the container exited before its port was published: {await self._logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Docker did not publish port {CONTAINER_API_PORT} within {self._port_allocation_timeout} s "
                    "(port_allocation_timeout)"
                )
            await asyncio.sleep(0.1)

    async def _wait_until_ready(self) -> None:
        """Until `print(1)` runs: /ready alone says Jupyter answers, not that a kernel is up."""
        assert self._container is not None
        headers = {"authorization": f"Bearer {self.access_token}"} if self.access_token else {}
        deadline = time.monotonic() + self._start_timeout
        last = "no answer yet"
        async with httpx.AsyncClient(base_url=f"http://{self.host}:{self._host_port}", headers=headers) as http:
            while True:
                try:
                    # A connection Docker's proxy accepts before the server listens may never be answered.
                    ready = await http.get("/ready", timeout=5)
                    ready.raise_for_status()
                    answer = await http.post("/execute", json={"code": "print(1)"}, timeout=30)
                    answer.raise_for_status()
                    events = [json.loads(line) for line in answer.text.splitlines() if line.strip()]
                    if any(e.get("type") == "stdout" and e.get("text") == "1\n" for e in events):
                        return
                    last = f"print(1) answered {[e for e in events if e.get('type') != 'keepalive']}"[:300]
                except (httpx.HTTPError, ValueError) as error:
                    last = repr(error)
                await asyncio.to_thread(self._container.reload)
                state = self._container.attrs["State"]
                if not state["Running"]:
                    raise RuntimeError(
                        f"the container exited (status {state.get('ExitCode')}) before it ran code: {await self._logs()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the container did not run code within {self._start_timeout} s (last: {last})")
                await asyncio.sleep(0.3)

    async def _logs(self) -> str:
        assert self._container is not None
        try:
            logs = await asyncio.to_thread(self._container.logs, stdout=True, stderr=True, tail=20)
            return logs.decode("utf-8", "replace").strip()
        except Exception:
            return "(no logs)"

    async def init_firewall(self, allowed_domains: list[str] | None = None) -> None:
        """Replaces the egress allow-list of the code in the running container.

        Afterwards only these domains (`*.example.com` for every name under one), IP addresses
        and CIDR ranges are reachable from kernels and commands; DNS and loopback stay allowed.
        None or an empty list leaves only those. Calling it again replaces the list. It runs the
        image's `egress-allow` as root.

        Raises:
            RuntimeError: If the container is not running, was not started with `allowed_domains`
                (the image cannot start enforcing a list in a container that started without
                one), or `egress-allow` failed.
        """
        if self._container is None:
            raise RuntimeError("init_firewall: the container is not running; run() it first")
        if self._allowed_domains is None:
            raise RuntimeError(
                "init_firewall: this container cannot enforce an egress allow-list: the image applies one only to a "
                "container started with it. Give allowed_domains (an empty list allows only the essentials) to the "
                "ExecutionContainer"
            )
        text = _allow_list_text(list(allowed_domains or []))
        exit_code, output = await asyncio.to_thread(self._container.exec_run, ["egress-allow", text], user="root")
        if exit_code != 0:
            message = (output or b"").decode("utf-8", "replace").strip()
            raise RuntimeError(f"init_firewall: egress-allow failed (exit status {exit_code}): {message}")

    async def kill(self) -> None:
        """Kills and removes the container; does nothing when there is none."""
        import docker.errors

        container, self._container = self._container, None
        self._host_port = None
        if container is None:
            return
        try:
            await asyncio.to_thread(container.remove, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as error:
            # 409: a removal already under way (a second kill racing this one).
            if error.status_code != 409:
                raise
