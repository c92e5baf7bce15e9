#!/usr/bin/env python3
"""Runs code on a code-interpreter server and prints its stdout as it arrives.

    npm start                        # in the repository root, in another shell: the server
    CODE_INTERPRETER_URL=http://localhost:49999 ACCESS_TOKEN=... python3 python_client.py 'print("hi")'
    echo 'print("hi")' | python3 python_client.py

stderr and errors go to stderr; PNG results (matplotlib figures, say) are saved as result-1.png,
... in OUTPUT_DIR (default: the current directory). Needs `requests`.
Exit status: 0, 1 if the code raised an error, 2 if the request was refused.
"""
import base64
import json
import os
import sys

import requests

url = os.environ.get("CODE_INTERPRETER_URL", "http://localhost:49999").rstrip("/")
token = os.environ.get("ACCESS_TOKEN")
output_dir = os.environ.get("OUTPUT_DIR", ".")
code = sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read()
headers = {"Authorization": f"Bearer {token}"} if token else {}

# stream=True hands the body over as it arrives: POST /execute sends one JSON event per line
# (NDJSON) while the code runs. No read timeout: the server sends keepalive lines during silences.
with requests.post(f"{url}/execute", json={"code": code}, headers=headers, stream=True, timeout=(10, None)) as response:
    if response.status_code != 200:
        error = response.json()  # {statusCode, code, error, message}
        print(f"{error['statusCode']} {error['code']}: {error['message']}", file=sys.stderr)
        sys.exit(2)

    failed, pngs = False, 0
    # chunk_size=None yields each line as soon as it is complete, not once 512 bytes are in.
    for line in response.iter_lines(chunk_size=None):
        if not line:
            continue
        event = json.loads(line)
        if event["type"] == "stdout":
            print(event["text"], end="", flush=True)
        elif event["type"] == "stderr":
            print(event["text"], end="", file=sys.stderr, flush=True)
        elif event["type"] == "result" and event["png"]:
            pngs += 1
            name = os.path.join(output_dir, f"result-{pngs}.png")
            with open(name, "wb") as file:
                file.write(base64.b64decode(event["png"]))
            print(f"[saved {name}]", file=sys.stderr)
        elif event["type"] == "result" and event["is_main_result"]:
            print(f"[result] {event['text']}", file=sys.stderr)
        elif event["type"] == "error":
            failed = True
            print(f"{event['name']}: {event['value']}", file=sys.stderr)

sys.exit(1 if failed else 0)
