"""Files: move files and whole directories in and out of the container's workspace, and copy,
list and delete them there. Paths in the container are relative to the workspace.

    python3 06_file_operations.py
"""

import asyncio
import os
import tempfile
from pathlib import Path

from code_interpreter_client import ExecutionContainer, ResourceClient

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")


async def main() -> None:
    async with ExecutionContainer(tag=TAG) as container:
        async with ResourceClient(
            port=container.resource_port, host=container.host, access_token=container.access_token
        ) as files:
            with tempfile.TemporaryDirectory() as directory:
                local = Path(directory)
                (local / "data.txt").write_text("Hello from the host\n")
                (local / "project" / "src").mkdir(parents=True)
                (local / "project" / "README.md").write_text("# A project\n")
                (local / "project" / "src" / "main.py").write_text("print('main')\n")

                # A single file, then a whole directory (sent as one tar stream).
                await files.upload_file(local / "data.txt", "uploads/data.txt")
                uploaded = await files.upload_directory(local / "project", "project")
                print(f"Uploaded a directory: {uploaded['entries']} entries")

                # Copy inside the container, and look.
                await files.copy("uploads/data.txt", "backup/data.txt")
                print(f"backup/: {', '.join(entry['name'] for entry in await files.list('backup'))}")

                # Download a file and a directory.
                await files.download_file("backup/data.txt", local / "downloaded.txt")
                print(f"Downloaded file: {(local / 'downloaded.txt').read_text().rstrip()}")
                await files.download_directory("project", local / "project-copy")
                names = sorted(path.relative_to(local / "project-copy").as_posix() for path in (local / "project-copy").rglob("*"))
                print(f"Downloaded directory: {', '.join(names)}")

                # Delete.
                await files.delete("uploads/data.txt")
                print(f"uploads/ after the delete: {[entry['name'] for entry in await files.list('uploads')]}")


if __name__ == "__main__":
    asyncio.run(main())
