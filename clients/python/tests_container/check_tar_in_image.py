"""Safe extraction under the image's Python (3.13, where tarfile's `filter="data"` exists too).

Run by tests/container/python-client.test.ts as `python3 check_tar_in_image.py <package dir>`
inside the image, which has no httpx: `_tar` is loaded from its file, needing only the standard
library. Prints one line per check; exits non-zero when one fails.
"""

from __future__ import annotations

import importlib.util
import io
import os
import sys
import tarfile
import tempfile

spec = importlib.util.spec_from_file_location("_tar", os.path.join(sys.argv[1], "code_interpreter_client", "_tar.py"))
assert spec is not None and spec.loader is not None
_tar = importlib.util.module_from_spec(spec)
spec.loader.exec_module(_tar)


def tar_of(*members: tuple[str, bytes, str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, link, data in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, link, 0o644
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    buffer.seek(0)
    return buffer


print(f"python {sys.version_info[0]}.{sys.version_info[1]} data_filter={hasattr(tarfile, 'data_filter')}")
with tempfile.TemporaryDirectory() as parent:
    target = os.path.join(parent, "target")
    os.mkdir(target)
    _tar._extract_all(
        tar_of(
            ("dir", tarfile.DIRTYPE, "", b""),
            ("dir/file", tarfile.REGTYPE, "", b"content"),
            ("dir/alias", tarfile.SYMTYPE, "file", b""),
            ("hard", tarfile.LNKTYPE, "dir/file", b""),
        ),
        target,
    )
    with open(os.path.join(target, "dir", "alias")) as alias, open(os.path.join(target, "hard")) as hard:
        print(f"extracted: {sorted(os.listdir(target))} {alias.read()} {hard.read()}")
    for name, kind, link in [("../x", tarfile.REGTYPE, ""), ("out", tarfile.SYMTYPE, "../.."), ("/abs", tarfile.REGTYPE, "")]:
        try:
            _tar._extract_all(tar_of((name, kind, link, b"escaped")), target)
        except _tar.UnsafeArchiveError:
            print(f"refused: {name}")
        else:
            sys.exit(f"not refused: {name}")
    if sorted(os.listdir(parent)) != ["target"]:
        sys.exit(f"written outside the target: {sorted(os.listdir(parent))}")
