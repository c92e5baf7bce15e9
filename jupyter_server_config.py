# Jupyter Server configuration for the code interpreter. Jupyter is an internal service: it
# listens on loopback with a token (start-up.sh passes both), and only the API talks to it.
# Works on jupyter_server 1.x (Tornado 6.2) and 2.x (Tornado 6.4).

import ctypes
import os
import sys

import jupyter_server
from jupyter_client.manager import KernelManager
from jupyter_server.serverapp import ServerApp

c = get_config()  # noqa: F821 (provided by the config loader)
_JUPYTER_SERVER_MAJOR = int(jupyter_server.__version__.split(".")[0])

c.ServerApp.open_browser = False
c.ServerApp.allow_root = True
c.ServerApp.quit_button = False
c.ServerApp.terminals_enabled = False

# --- What kernel code can reach -----------------------------------------------------------------
# Kernels run code from untrusted input under Jupyter's uid and inherit its environment, so
# Jupyter's token must be in neither its environment nor any file, and Jupyter serves only what
# the API uses (/api/status, /api/kernelspecs, /api/kernels and the kernel channels).
# start-up.sh already leaves the API's own variables (ACCESS_TOKEN, ...) out of Jupyter's
# environment; JUPYTER_TOKEN is the one Jupyter needs: taken here, then removed, so that no
# kernel inherits it.
_token = os.environ.pop("JUPYTER_TOKEN", "")
if _token:
    if _JUPYTER_SERVER_MAJOR >= 2:
        c.IdentityProvider.token = _token
    else:
        c.ServerApp.token = _token
del _token

# The environment Jupyter started with stays readable in /proc/<pid>/environ (and its memory
# through ptrace) to every process of the same uid, kernels included. A non-dumpable process
# has both closed to them; the kernels, being exec'd, are dumpable again as usual.
try:
    ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0
except (OSError, AttributeError):
    pass  # not Linux

# Jupyter writes its token into jpserver-<pid>.json and jpserver-<pid>-open.html in its runtime
# directory, and its cookie secret (enough to forge a login cookie) into jupyter_cookie_secret:
# all readable by the kernels. Nothing here reads those files; a secret made per start and kept
# in memory replaces the cookie file.
ServerApp.write_server_info_file = lambda self: None
ServerApp.write_browser_open_files = lambda self: None
ServerApp.write_browser_open_file = lambda self: None
c.ServerApp.cookie_secret = os.urandom(32)

# Only the services the API calls. Gone with the rest: contents and files (any file Jupyter
# can read), sessions, config, nbconvert, shutdown (POST /api/shutdown), the login pages.
ServerApp.default_services = ("api", "kernels", "kernelspecs")

# Jupyter's root (what remains of its file handlers is rooted there) is its working directory,
# an empty one that start-up.sh makes. Kernels, though, may run in any directory a context asks
# for: the API sends each cwd relative to `/`, so the kernel manager keeps `/` as its root.
c.MappingKernelManager.root_dir = "/"

# Every kernel runs under image/kernel-launcher.py, which takes the processes the kernel started
# (those in a session of their own included) down with it.
_KERNEL_LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "image", "kernel-launcher.py")
_format_kernel_cmd = KernelManager.format_kernel_cmd


def _format_kernel_cmd_with_launcher(self, extra_arguments=None):
    return [sys.executable, "-I", "-S", _KERNEL_LAUNCHER, "--"] + _format_kernel_cmd(self, extra_arguments)


if not getattr(KernelManager, "_code_interpreter_launcher", False):
    KernelManager.format_kernel_cmd = _format_kernel_cmd_with_launcher
    KernelManager._code_interpreter_launcher = True

# Outputs are budgeted and back-pressured by the API; Jupyter's own IOPub rate limit (1 MB/s on
# 1.x) would silently drop large outputs such as a plot or a dataframe instead.
# The setting moved in jupyter_server 2 (the old name still works there, with a warning).
_rate_limits = c.ZMQChannelsWebsocketConnection if _JUPYTER_SERVER_MAJOR >= 2 else c.ServerApp
_rate_limits.iopub_data_rate_limit = 1e12
_rate_limits.iopub_msg_rate_limit = 1e9

# Requests from the API to a kernel: the API accepts bodies up to 32 MiB (env_vars capped at
# 8 MiB, sent hex-encoded at twice that). Tornado's default of 10 MiB made Jupyter close the
# kernel socket on a 10 MiB cell, which left the context waiting; 64 MiB holds any request the
# API accepts.
c.ServerApp.tornado_settings = {"websocket_max_message_size": 64 * 1024 * 1024}

# A kernel that dies is restarted by Jupyter under the same id; the API reports it.
c.KernelRestarter.restart_limit = 5

# A kernel's five ZeroMQ ports are picked by binding to port 0 and closing again; until the kernel
# binds them (a second or so later) any other process may take one, and the kernel dies at start
# with "Address already in use". The restarter then starts it again on new ports, but only when
# the ports were not cached: with jupyter_client's port cache (its default for TCP, and not a
# setting in 7.x) every restart reuses the taken ports and the kernel is given up as dead after
# restart_limit tries. Each kernel manager is told not to cache them as it is made.
_kernel_manager_init = KernelManager.__init__


def _init_without_port_cache(self, *args, **kwargs):
    _kernel_manager_init(self, *args, **kwargs)
    self.cache_ports = False


if not getattr(KernelManager, "_code_interpreter_fresh_ports", False):
    KernelManager.__init__ = _init_without_port_cache
    KernelManager._code_interpreter_fresh_ports = True

# Jupyter Server 1.x asks a new kernel for its kernel_info once, on the shell port it had then, and
# holds every WebSocket to that kernel until the answer comes or kernel_info_timeout passes. A
# kernel restarted on new ports never answers on the old one, so each socket waited the default
# minute, longer than the API keeps one (8 s at most, server/jupyter/kernel-channel.ts) and as
# long as it waits for a kernel at all. Giving up sooner only skips adapting messages for kernels
# older than protocol 5; the API asks for kernel_info itself on the socket it then gets.
c.MappingKernelManager.kernel_info_timeout = 5
c.MappingKernelManager.cull_idle_timeout = 0


def _enable_nodelay_on_kernel_websockets():
    """Turn Nagle's algorithm off on kernel WebSockets.

    Tornado switches TCP_NODELAY off again after the HTTP upgrade, so the second small frame of
    every kernel reply waits for the client's delayed ACK: back-to-back `1+1` executions took
    48 ms p50 over the WebSocket against 6 ms over ZeroMQ. Calling the documented
    WebSocketHandler.set_nodelay(True) once the socket is open brought them to 8 ms.
    Setting it on accepted sockets alone does not work: Tornado resets it after the handshake.
    """
    handler_classes = []
    try:  # jupyter_server 2.x
        from jupyter_server.services.kernels.websocket import KernelWebsocketHandler

        handler_classes.append(KernelWebsocketHandler)
    except ImportError:
        pass
    try:  # jupyter_server 1.x
        from jupyter_server.services.kernels.handlers import ZMQChannelsHandler

        handler_classes.append(ZMQChannelsHandler)
    except ImportError:
        pass

    for cls in handler_classes:
        if getattr(cls, "_code_interpreter_nodelay", False):
            continue
        original_open = cls.open

        def open_with_nodelay(self, *args, _original_open=original_open, **kwargs):
            self.set_nodelay(True)
            return _original_open(self, *args, **kwargs)

        cls.open = open_with_nodelay
        cls._code_interpreter_nodelay = True


_enable_nodelay_on_kernel_websockets()
