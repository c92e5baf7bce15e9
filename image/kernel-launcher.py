"""Runs one kernel and takes every process it started down with it.

Usage: python3 kernel-launcher.py -- KERNEL_COMMAND...

jupyter_server_config.py puts this in front of every kernel's command. Jupyter stops a kernel by
a shutdown request and, if that is not enough, by signalling the kernel's process group; a
process the kernel's code started in a new session (setsid, a daemon's double fork) is in neither
and used to outlive its context. This launcher makes itself a child subreaper, so every orphaned
descendant is re-parented to it instead of to PID 1, and when the kernel exits (shut down, died,
killed) or the launcher is told to stop (SIGTERM, which Jupyter sends to the whole group before
SIGKILL), it kills every process left in its subtree and reaps them. The launcher is told to stop
when Jupyter itself dies, however it dies (PR_SET_PDEATHSIG): no kernel outlives its Jupyter.

SIGINT (Jupyter's interrupt, sent to the process group) is meant for the kernel alone: the
launcher ignores it through a handler, not SIG_IGN, so that the kernel does not inherit it.
Only the standard library; started with -I -S so that it costs a few milliseconds.
"""

import ctypes
import os
import signal
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36


def descendants(root):
    """Every process whose chain of parents leads to `root`, read from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, pending = [], [root]
    while pending:
        for child in children.get(pending.pop(), ()):
            found.append(child)
            pending.append(child)
    return found


def kill_subtree(deadline_seconds=10.0):
    """SIGKILLs and reaps every descendant until none is left (they may fork meanwhile).

    Never blocks in waitpid: a process forked after a scan would hold a blocking wait forever.
    Being a subreaper, every descendant ends up a child of ours once its parent is gone, so "no
    child left" (ChildProcessError) means the subtree is empty.
    """
    me = os.getpid()
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        for pid in descendants(me):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return
        time.sleep(0.01)


class _Stop(Exception):
    pass


def _stop(*_):
    # Raised, not recorded: Python retries an interrupted waitpid after a handler that returns.
    raise _Stop()


def main(argv):
    if len(argv) < 2 or argv[0] != "--":
        sys.stderr.write("usage: kernel-launcher.py -- KERNEL_COMMAND...\n")
        return 2
    command = argv[1:]
    jupyter = os.getppid()
    signal.signal(signal.SIGINT, lambda *_: None)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGHUP, _stop)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        # Jupyter killed outright (SIGKILL, the OOM killer) shuts no kernel down: without this
        # each of its kernels lived on, orphaned, for good (~70 MB each), beside those of the
        # Jupyter started in its place. SIGTERM takes the subtree down as a shutdown does.
        # Jupyter starts kernels from its event loop's thread, which lives as long as it does.
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the kernel still runs, its detached processes may outlive it
    if os.getppid() != jupyter:
        return 128 + signal.SIGTERM  # Jupyter died before the signal was asked for

    # The kernel exits when its parent changes (ipykernel's parent poller); its parent is us.
    os.environ["JPY_PARENT_PID"] = str(os.getpid())
    status = 1
    try:
        # Inside the try: a stop that arrives while the kernel is being forked still ends in
        # kill_subtree below.
        kernel = os.fork()
        if kernel == 0:
            try:
                os.execvp(command[0], command)
            except OSError as error:
                sys.stderr.write(f"kernel-launcher: cannot run {command[0]}: {error}\n")
            except BaseException:
                pass  # the stop was meant for the launcher: the kernel never ran
            os._exit(127)
        while True:
            # Orphaned descendants are reaped here as they exit; only the kernel ends the wait.
            pid, wait_status = os.waitpid(-1, 0)
            if pid == kernel:
                status = os.waitstatus_to_exitcode(wait_status)
                break
    except ChildProcessError:
        pass
    except _Stop:
        status = -signal.SIGTERM
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGHUP, lambda *_: None)
    kill_subtree()
    if status < 0:
        return 128 - status  # killed by a signal: the shell's convention
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
