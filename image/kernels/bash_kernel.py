"""A Jupyter kernel for bash: one persistent interactive bash per kernel, driven through a PTY.

    python3 -I bash_kernel.py -f CONNECTION_FILE   (started by image/kernels/launch-kernel bash)

Debian packages no bash kernel and this server has no Python package index, so this is ours,
built on what Debian ships: ipykernel's Kernel base class and pexpect.

- State persists because it is one shell: variables, functions, aliases, cwd, background jobs.
- Each cell is written to a file in a private directory and run with `. FILE` at the prompt, so
  any code (here-documents, unbalanced quotes, `return`) arrives byte-exact and the command line
  typed into the terminal stays short (a terminal line holds at most 4095 bytes). Because the
  file is sourced, not run in a subshell, the cell's `cd`, `export` and `f() {...}` stay.
- stdout is the PTY, streamed as it comes; the cell's stderr is redirected to a FIFO read beside
  it, so stdout and stderr arrive as separate streams (programs see a terminal on stdout and a
  pipe on stderr, as in a notebook). Bash's own job notices still go to the terminal.
- The exit status of the cell (its last command) comes back in the prompt; a non-zero one is an
  `error` (ename `ExitCode`, evalue the number), as e2b's bash kernel reports it, so a failing
  command fails the execution.
- Interrupt: Jupyter sends SIGINT to the kernel; the kernel types the terminal's interrupt
  character, so the foreground job gets SIGINT (job control: bash itself survives), and reports
  `KeyboardInterrupt` like the Python kernel. A shell that ignores it is killed and started again.
- `exit` ends the shell: the next prompt comes from a new one, and the cell reports `BashExited`.
"""

import codecs
import errno
import os
import re
import secrets
import shlex
import select
import shutil
import signal
import tempfile
import termios
import time

import pexpect
from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel

READ_SIZE = 65536
# After the terminal's interrupt character, how long the foreground job has to give the prompt back.
INTERRUPT_GRACE_S = 3.0


class BashKernel(Kernel):
    implementation = "code-interpreter-bash"
    implementation_version = "1.0"
    language = "bash"
    language_version = "5"
    language_info = {
        "name": "bash",
        "mimetype": "text/x-sh",
        "file_extension": ".sh",
        "codemirror_mode": "shell",
        "pygments_lexer": "bash",
    }
    banner = "bash"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._dir = tempfile.mkdtemp(prefix="bash-kernel-")
        self._cell = os.path.join(self._dir, "cell.sh")
        self._fifo = os.path.join(self._dir, "stderr")
        os.mkfifo(self._fifo, 0o600)
        # Our own write end keeps the FIFO open between cells, so reads never see end-of-file.
        self._err_r = os.open(self._fifo, os.O_RDONLY | os.O_NONBLOCK)
        self._err_w = os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK)
        self._token = secrets.token_hex(8)
        # The prompt carries the status of the last command; the token keeps output from faking it.
        self._prompt = re.compile(rb"\x01CI" + self._token.encode() + rb":(\d+)\x02")
        self._prompt_head = b"\x01CI" + self._token.encode() + b":"
        self._start_bash()

    # The shell ------------------------------------------------------------------------------

    def _start_bash(self):
        env = dict(os.environ)
        # No colours or pagers waiting for a key: the output is read by programs, not a person.
        env.update({"TERM": "dumb", "PAGER": "cat", "GIT_PAGER": "cat"})
        # kernelapp ignores SIGINT outside message handlers and children inherit that: bash's
        # jobs must be interruptible, so the default is back for the fork.
        previous = signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            self._bash = pexpect.spawn(
                "/bin/bash",
                ["--norc", "--noprofile", "--noediting", "-i"],
                env=env,
                echo=False,
                dimensions=(50, 200),
            )
        finally:
            signal.signal(signal.SIGINT, previous)
        self._raw_newlines()
        setup = (
            f"PS1=$'\\001CI{self._token}:'\"\\$?\"$'\\002'; PS2=''; PS0=''; PROMPT_COMMAND=''; "
            "unset HISTFILE; set +o history +m"
        )
        self._bash.sendline(setup)
        # The first prompt is still bash's default one: wait for ours.
        self._run_until_prompt(None, None)

    def _raw_newlines(self):
        """Output exactly as programs wrote it: no "\\n" → "\\r\\n" by the terminal."""
        # Again before every cell: bash puts back the terminal settings it saved at its start
        # when a job dies of a signal (an interrupt), and those may predate this change.
        attrs = termios.tcgetattr(self._bash.child_fd)
        if attrs[1] & termios.ONLCR:
            attrs[1] &= ~termios.ONLCR
            termios.tcsetattr(self._bash.child_fd, termios.TCSANOW, attrs)

    def _restart_bash(self):
        try:
            self._bash.close(force=True)
        except Exception:
            pass
        self._start_bash()

    def _run_until_prompt(self, on_stdout, on_stderr, interruptible=False):
        """Reads the terminal and the FIFO until the prompt; returns the status, or None at EOF."""
        out_decoder = codecs.getincrementaldecoder("utf-8")("replace")
        err_decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = b""
        interrupted_at = None
        fd = self._bash.child_fd
        while True:
            try:
                timeout = None
                if interrupted_at is not None:
                    timeout = max(0.0, interrupted_at + INTERRUPT_GRACE_S - time.monotonic())
                    if timeout == 0.0:
                        self._restart_bash()
                        raise _Interrupted("the shell ignored the interrupt and was restarted; its state is lost")
                readable, _, _ = select.select([fd, self._err_r], [], [], timeout)
            except KeyboardInterrupt:
                if not interruptible:
                    continue
                if interrupted_at is None:
                    interrupted_at = time.monotonic()
                self._bash.sendintr()
                continue
            if self._err_r in readable:
                data = _read(self._err_r)
                if data and on_stderr:
                    on_stderr(err_decoder.decode(data))
            if fd not in readable:
                continue
            data = _read(fd)
            if not data:
                self._drain_stderr(on_stderr, err_decoder)
                if on_stdout and pending:
                    on_stdout(out_decoder.decode(pending, final=True))
                return None
            pending += data
            match = self._prompt.search(pending)
            if match:
                self._drain_stderr(on_stderr, err_decoder)
                if on_stdout:
                    text = out_decoder.decode(pending[: match.start()], final=True)
                    # Bash answers an interrupt with a bare line break of its own (here and below).
                    if text and not (interrupted_at is not None and text.strip() == ""):
                        on_stdout(text)
                if interrupted_at is not None:
                    raise _Interrupted()
                return int(match.group(1))
            # Hold back what could be the start of the prompt, emit the rest.
            keep = _partial_suffix(pending, self._prompt_head)
            ready, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
            if ready and on_stdout:
                text = out_decoder.decode(ready)
                if text and not (interrupted_at is not None and text.strip() == ""):
                    on_stdout(text)

    def _drain_stderr(self, on_stderr, decoder):
        # Whatever the cell wrote to stderr was in the FIFO before bash printed its prompt.
        while True:
            data = _read(self._err_r)
            if not data:
                break
            if on_stderr:
                on_stderr(decoder.decode(data))
        if on_stderr:
            tail = decoder.decode(b"", final=True)
            if tail:
                on_stderr(tail)

    def _discard_pending(self):
        """Output that background jobs printed between cells belongs to no cell."""
        while True:
            readable, _, _ = select.select([self._bash.child_fd, self._err_r], [], [], 0)
            if not readable:
                return
            for fd in readable:
                if not _read(fd) and fd == self._bash.child_fd:
                    return

    # The kernel protocol ----------------------------------------------------------------------

    def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False):
        def stream(name):
            if silent:
                return None
            return lambda text: self.send_response(self.iopub_socket, "stream", {"name": name, "text": text})

        if not self._bash.isalive():
            self._restart_bash()
        self._discard_pending()
        self._raw_newlines()
        with open(self._cell, "wb") as handle:
            handle.write(code.encode("utf-8", "surrogateescape"))
        self._bash.sendline(f". {shlex.quote(self._cell)} </dev/null 2>{shlex.quote(self._fifo)}")
        try:
            status = self._run_until_prompt(stream("stdout"), stream("stderr"), interruptible=True)
        except _Interrupted as interrupted:
            return self._error("KeyboardInterrupt", str(interrupted), silent)
        if status is None:
            self._restart_bash()
            return self._error("BashExited", "the shell exited; a new one was started and the state is lost", silent)
        if status != 0:
            return self._error("ExitCode", str(status), silent)
        return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}

    def _error(self, ename, evalue, silent):
        content = {"ename": ename, "evalue": evalue, "traceback": []}
        if not silent:
            self.send_response(self.iopub_socket, "error", content)
        return {"status": "error", "execution_count": self.execution_count, **content}

    def do_shutdown(self, restart):
        try:
            self._bash.close(force=True)
        except Exception:
            pass
        for fd in (self._err_r, self._err_w):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._dir, ignore_errors=True)
        return {"status": "ok", "restart": restart}


class _Interrupted(Exception):
    pass


def _read(fd):
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return b""
    except OSError as error:
        # A PTY whose other side is gone answers EIO instead of end-of-file.
        if error.errno == errno.EIO:
            return b""
        raise


def _partial_suffix(data, head):
    """The length of the longest end of `data` that is a beginning of `head` (or holds all of it)."""
    start = data.rfind(head[:1], max(0, len(data) - len(head) - 24))
    while start != -1:
        tail = data[start:]
        if head.startswith(tail[: len(head)]) if len(tail) < len(head) else tail.startswith(head):
            return len(data) - start
        start = data.rfind(head[:1], max(0, len(data) - len(head) - 24), start)
    return 0


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=BashKernel)
