# IPython kernel configuration for the code interpreter (start-up.sh puts it in the kernels'
# IPython profile).

c = get_config()  # noqa: F821

# Show whole sequences: an agent reading a list wants all of it, not "...".
c.PlainTextFormatter.max_seq_length = 0

# Every Python kernel shares this profile. With the input history in the profile's SQLite file,
# kernels started together could pick the same session number, and the second one's write then
# printed "ERROR! Session/line number was not unique in database..." into the running cell's
# stdout: output the code never wrote. Each kernel keeps its history in memory instead (`_i`,
# `%history` and `Out` still work; nothing is shared between kernels or kept across restarts).
c.HistoryManager.hist_file = ":memory:"


# ipykernel gathers everything printed between two flushes (0.2 s apart) into one IOPub
# message, so a loop printing fast sends a single message of hundreds of MB: the API would
# have to hold all of it at once, and a frame that large can break the WebSocket. Flushing
# whenever 64 KiB are pending bounds every stream message to about the size of one write, so
# output flows in pieces the API can stream and push back on.
c.InteractiveShellApp.exec_lines = [
    """
def _code_interpreter_bound_stream_messages(limit=1 << 16):
    import ipykernel.iostream as iostream
    stream_class = iostream.OutStream
    if getattr(stream_class, "_code_interpreter_bounded", False):
        return
    original_write = stream_class.write

    def pending_bytes(self):
        # ipykernel < 6.29 keeps one buffer; later versions one per parent message.
        lock = getattr(self, "_buffer_lock", None)
        buffers = getattr(self, "_buffers", None)
        if buffers is not None and lock is not None:
            with lock:
                candidates = list(buffers.values())
        else:
            candidates = [getattr(self, "_buffer", None)]
        pending = 0
        for buffer in candidates:
            try:
                pending += buffer.tell() if buffer is not None else 0
            except ValueError:
                pass
        return pending

    def write(self, string):
        written = original_write(self, string)
        if pending_bytes(self) > limit:
            self.flush()
        return written

    stream_class.write = write
    stream_class._code_interpreter_bounded = True

_code_interpreter_bound_stream_messages()
del _code_interpreter_bound_stream_messages
""",
    # The kernel's stdout and stderr carry its replies: code that closes them (a library
    # "cleaning up", or sys.stdout.close()) left the kernel unable to finish the execution,
    # which then hung until its timeout. Closing them only flushes.
    """
def _code_interpreter_keep_streams_open():
    import ipykernel.iostream as iostream
    stream_class = iostream.OutStream
    if getattr(stream_class, "_code_interpreter_unclosable", False):
        return
    stream_class.close = lambda self: self.flush()
    stream_class._code_interpreter_unclosable = True

_code_interpreter_keep_streams_open()
del _code_interpreter_keep_streams_open
""",
]

# Charts (image/code_interpreter_charts.py, which start-up.sh puts beside this file): a displayed
# matplotlib figure also carries its data as an `e2b/chart` entry. Loaded under a private module
# name, without touching sys.path, so that user code importing its own modules is not affected.
c.InteractiveShellApp.exec_lines.append(
    """
def _code_interpreter_register_charts():
    import importlib.util
    import os
    import sys
    shell = get_ipython()
    path = os.path.join(shell.profile_dir.location, "code_interpreter_charts.py")
    spec = importlib.util.spec_from_file_location("_code_interpreter_charts", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[spec.name] = module
    module.register(shell)

_code_interpreter_register_charts()
del _code_interpreter_register_charts
"""
)
