#!/usr/bin/env bash
# Waits until Jupyter Server answers GET /api/status, for at most JUPYTER_WAIT_SECONDS (60).
# Exit 0 when it does, 1 when it didn't in time. Needs only the Python that runs Jupyter.
set -euo pipefail

url="${JUPYTER_URL:-http://127.0.0.1:8888}"
python="${JUPYTER_PYTHON:-/usr/bin/python3}"
deadline=$((SECONDS + ${JUPYTER_WAIT_SECONDS:-60}))

# -I: start-up.sh runs this as root, in the workspace; nothing may be imported from there.
until "$python" -I - "$url" <<'PY' 2>/dev/null
import os, sys, urllib.request
request = urllib.request.Request(sys.argv[1].rstrip("/") + "/api/status")
token = os.environ.get("JUPYTER_TOKEN", "")
if token:
    request.add_header("Authorization", "token " + token)
with urllib.request.urlopen(request, timeout=2) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
do
  if ((SECONDS >= deadline)); then
    echo "jupyter-healthcheck: Jupyter did not answer at $url within ${JUPYTER_WAIT_SECONDS:-60}s" >&2
    exit 1
  fi
  sleep 0.1
done
