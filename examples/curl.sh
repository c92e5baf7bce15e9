#!/usr/bin/env bash
# Runs code on a code-interpreter server with curl and prints its stdout as it arrives; stderr and
# errors go to stderr, and PNG results (matplotlib figures, say) are saved as result-1.png, ...
#
#   npm start                        # in the repository root, in another shell: the server
#   CODE_INTERPRETER_URL=http://localhost:49999 ACCESS_TOKEN=... examples/curl.sh 'print("hi")'
#   echo 'print("hi")' | examples/curl.sh
#
# POST /execute answers NDJSON: one JSON event per line, sent as the kernel emits it. curl -N
# hands each line on as soon as it arrives; python3 (its standard library only) decodes the JSON.
# Exit status: 0, 1 if the code raised an error, 2 if the request was refused.
set -euo pipefail

url=${CODE_INTERPRETER_URL:-http://localhost:49999}
headers=(-H 'Content-Type: application/json')
if [[ -n ${ACCESS_TOKEN:-} ]]; then headers+=(-H "Authorization: Bearer $ACCESS_TOKEN"); fi

encode='import json, sys; sys.stdout.write(json.dumps({"code": sys.stdin.read()}))'

read -r -d '' decode <<'PY' || true
import base64, json, os, sys

failed, pngs = False, 0
for line in sys.stdin:
    if not line.strip():
        continue
    event = json.loads(line)
    kind = event.get('type')
    if kind == 'stdout':
        sys.stdout.write(event['text'])
        sys.stdout.flush()
    elif kind == 'stderr':
        sys.stderr.write(event['text'])
    elif kind == 'result' and event.get('png'):
        pngs += 1
        name = os.path.join(os.environ.get('OUTPUT_DIR', '.'), f'result-{pngs}.png')
        with open(name, 'wb') as file:
            file.write(base64.b64decode(event['png']))
        print(f'[saved {name}]', file=sys.stderr)
    elif kind == 'result' and event.get('is_main_result'):
        print(f"[result] {event['text']}", file=sys.stderr)
    elif kind == 'error':
        failed = True
        print(f"{event['name']}: {event['value']}", file=sys.stderr)
    elif kind is None:  # an error answer ({statusCode, code, message}) instead of a stream
        print(f"{event['statusCode']} {event['code']}: {event['message']}", file=sys.stderr)
        sys.exit(2)
sys.exit(1 if failed else 0)
PY

# The code goes through pipes rather than arguments: Linux caps each argument at 128 KiB.
{ if (($#)); then printf '%s' "$1"; else cat; fi; } |
  python3 -c "$encode" |
  curl -sS -N --fail-with-body "${headers[@]}" --data-binary @- "${url%/}/execute" |
  python3 -u -c "$decode"
