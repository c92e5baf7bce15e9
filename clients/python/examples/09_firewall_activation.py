"""Network restrictions: an egress allow-list for the code in the container, replaced while it runs.

    python3 09_firewall_activation.py

A container is restricted only if it starts with `allowed_domains` (here the empty list: nothing
but DNS and loopback); init_firewall() then replaces the list as often as needed.
"""

import asyncio
import os

from code_interpreter_client import ExecutionClient, ExecutionContainer

TAG = os.environ.get("CODE_INTERPRETER_IMAGE", "code-interpreter")


def fetch_from(host: str) -> str:
    """Code that prints what it sees when it fetches a page: the status, or the error."""
    return f"""
import urllib.request, urllib.error
try:
    print(urllib.request.urlopen("http://{host}/", timeout=10).status)
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode().strip()[:100])
except Exception as e:
    print(type(e).__name__, str(e)[:100])
"""


async def main() -> None:
    async with ExecutionContainer(tag=TAG, allowed_domains=[]) as container:
        async with ExecutionClient(
            port=container.executor_port, host=container.host, access_token=container.access_token
        ) as client:
            # 403 egress to example.com is not allowed
            print(f"example.com before: {(await client.execute(fetch_from('example.com'))).text}")

            await container.init_firewall(["example.com"])
            # Allowed now: the page, or whatever the network says (there may be none).
            print(f"example.com after: {(await client.execute(fetch_from('example.com'))).text}")
            # 403 egress to example.org is not allowed
            print(f"example.org after: {(await client.execute(fetch_from('example.org'))).text}")


if __name__ == "__main__":
    asyncio.run(main())
