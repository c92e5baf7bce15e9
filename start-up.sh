#!/usr/bin/env bash
# Starts Jupyter Server and the API next to it, and keeps them running:
# - Jupyter binds to the host and port of JUPYTER_URL (loopback by default) with JUPYTER_TOKEN,
#   a random one when unset; if Jupyter dies it is started again and the API reconnects.
# - The API starts alongside; it waits for Jupyter by itself. If the API dies, Jupyter is
#   stopped and this script exits with the API's status, so that Docker or an orchestrator
#   restarts the whole unit.
# - SIGTERM/SIGINT stop the API first (it lets running executions finish), then Jupyter; exit 0.
# - Run as root with KERNEL_USER, API_USER and WORKSPACE_GROUP set (as the image does), it starts
#   Jupyter and the kernels as KERNEL_USER and the API as API_USER, sharing the workspace through
#   WORKSPACE_GROUP; with EGRESS_ALLOW it first applies the egress allow-list (and refuses to
#   start if it cannot) and runs the egress proxy as EGRESS_USER.
# - ROLE=jupyter or ROLE=api split the unit in two for a pod whose containers run as non-root
#   users without setpriv (Pod Security "restricted"; deploy/kubernetes/): `jupyter` runs Jupyter,
#   the kernels and the process host as the container's own user, `api` runs the API alone
#   (JUPYTER_URL and PROCESS_HOST_SOCKET point at the other container, over the pod's loopback
#   and a shared emptyDir). Unset (the image's default), everything runs here, as above.
# Works the same inside the image (under tini) and on a development machine.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

export JUPYTER_URL="${JUPYTER_URL:-http://127.0.0.1:8888}"
export WORKSPACE_DIR="${WORKSPACE_DIR:-/home/user}"
if [[ -z "${JUPYTER_PYTHON:-}" ]]; then
  # Debian's Jupyter lives in the system Python, which may not be the first python3 on PATH.
  if [[ -x /usr/bin/python3 ]]; then JUPYTER_PYTHON=/usr/bin/python3; else JUPYTER_PYTHON=python3; fi
fi
export JUPYTER_PYTHON
if [[ -z "${JUPYTER_TOKEN:-}" ]]; then
  JUPYTER_TOKEN="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
fi
export JUPYTER_TOKEN
# matplotlib renders figures as PNG results (Agg underneath), never through a GUI.
export MPLBACKEND="${MPLBACKEND:-module://matplotlib_inline.backend_inline}"
export PYTHONUNBUFFERED=1
# ipykernel's debugger otherwise warns about frozen modules on every kernel start.
export PYDEVD_DISABLE_FILE_VALIDATION=1

# Variables only the API (or this script) needs. Jupyter is started without them, so no kernel
# inherits them: kernels run code from untrusted input. JUPYTER_TOKEN is handed to Jupyter
# alone, whose configuration takes it out of its environment before any kernel starts.
# tests/unit/start-up-env.test.ts checks that every variable the API reads is listed here.
SERVER_ONLY_VARS=(
  ACCESS_TOKEN AUTH_MODE CORS_ORIGINS ALLOWED_HOSTS JUPYTER_TOKEN JUPYTER_URL HOST PORT ENVD_PORT
  WORKSPACE_DIR LOG_LEVEL DEFAULT_LANGUAGE EXECUTION_TIMEOUT MAX_EXECUTION_TIMEOUT
  INTERRUPT_GRACE KEEPALIVE_INTERVAL MAX_OUTPUT_BYTES MAX_QUEUED_EXECUTIONS MAX_QUEUED_BYTES SHUTDOWN_GRACE
  MAX_UPLOAD_BYTES MAX_EXTRACT_BYTES MAX_EXTRACT_ENTRIES NODE_ENV NODE_OPTIONS NODE_COMPILE_CACHE API_COMMAND JUPYTER_PYTHON JUPYTER_WAIT_SECONDS
  EXECUTION_BUFFER_BYTES EXECUTION_BUFFER_TOTAL_BYTES EXECUTION_RETENTION MAX_RETAINED_EXECUTIONS
  MCP_MAX_FILE_BYTES MCP_MAX_TEXT MCP_SESSION_IDLE MCP_MAX_SESSIONS METRICS_PUBLIC METRICS_TOKEN
  REQUEST_TIMEOUT MAX_CONNECTIONS MAX_CONTEXTS CONTEXT_MEMORY_LIMIT KERNEL_POOL
  EGRESS_ALLOW EGRESS_PROXY_PORT EGRESS_STATE_DIR KERNEL_USER KERNEL_IDS API_USER EGRESS_USER WORKSPACE_GROUP
  MAX_PROCESSES PROCESS_HOST_SOCKET MAX_FILE_OPERATIONS MAX_WATCHES WATCH_MAX_DIRECTORIES ROLE PLAYGROUND
)

# Our kernelspecs (image/kernels/: Python from a user-writable venv, R, JavaScript and TypeScript)
# come first; each starts through image/kernels/launch-kernel, which reads the variables below: where
# pip and install.packages() write (the workspace, so installs outlive a restart) and the memory
# cap, which the API validated as CONTEXT_MEMORY_LIMIT.
export JUPYTER_PATH="$ROOT/image${JUPYTER_PATH:+:$JUPYTER_PATH}"
export PYTHON_VENV_DIR="${PYTHON_VENV_DIR:-$WORKSPACE_DIR/.venv}"
export R_LIBS_USER="${R_LIBS_USER:-$WORKSPACE_DIR/.R/library}"
export KERNEL_MEMORY_LIMIT="${CONTEXT_MEMORY_LIMIT:-}"

role="${ROLE:-all}"
case "$role" in
  all | jupyter | api) ;;
  *)
    echo "start-up.sh: ROLE=$role is not one of jupyter, api (unset: both)" >&2
    exit 2
    ;;
esac
if [[ "$role" == api ]]; then
  # Nothing of Jupyter's lives here: the API waits for it by itself, and the container's restart
  # policy replaces this script's supervision. Files the API writes stay the kernels' to change.
  umask 0002
  if [[ -n "${API_COMMAND:-}" ]]; then read -r -a api_command <<<"$API_COMMAND"; else api_command=(node "$ROOT/dist/server/main.js"); fi
  exec "${api_command[@]}"
fi

log() { printf '{"level":"%s","time":%s,"msg":"start-up: %s"}\n' "$1" "$(date +%s%3N)" "$2" >&2; }

# --- Separate users --------------------------------------------------------------------------
# Kernel code must neither read the API's environment (its tokens, in /proc/<pid>/environ) nor
# signal it: as root with KERNEL_USER set, Jupyter and the kernels run as KERNEL_USER, the API as
# API_USER, the egress proxy as EGRESS_USER, without capabilities. The workspace is shared
# through WORKSPACE_GROUP: setgid directories and umask 002, so that files written through the
# API can be changed by code and the other way round.
as_kernel=()
as_api=()
as_egress=()
as_host=()
separate_users=0
if [[ -n "${KERNEL_USER:-}" && "$(id -u)" == 0 ]]; then
  separate_users=1
  for name in API_USER EGRESS_USER WORKSPACE_GROUP; do
    if [[ -z "${!name:-}" ]]; then
      echo "start-up.sh: KERNEL_USER is set, so $name must be too" >&2
      exit 2
    fi
  done
  drop=(setpriv --init-groups --inh-caps=-all --no-new-privs)
  if setpriv --bounding-set=-all true 2>/dev/null; then drop+=(--bounding-set=-all); fi
  as_kernel=("${drop[@]}" --reuid="$KERNEL_USER" --regid="$(id -g "$KERNEL_USER")")
  as_api=("${drop[@]}" --reuid="$API_USER" --regid="$(id -g "$API_USER")")
  as_egress=("${drop[@]}" --reuid="$EGRESS_USER" --regid="$(id -g "$EGRESS_USER")")
  # The process host starts as root with three capabilities only: it binds its socket, gives it
  # to the API's group (chown), then becomes KERNEL_USER itself (setuid, setgid), which clears them.
  as_host=(setpriv --inh-caps=-all --no-new-privs)
  if setpriv --bounding-set=-all true 2>/dev/null; then as_host+=(--bounding-set=-all,+setuid,+setgid,+chown); fi
  kernel_home="$(getent passwd "$KERNEL_USER" | cut -d: -f6)"
  # The API judges which directories the kernels can enter (a context's cwd) by these ids.
  KERNEL_IDS="$(id -u "$KERNEL_USER"):$(id -G "$KERNEL_USER" | tr ' ' ',')"
  export KERNEL_IDS
  umask 0002
elif [[ "$role" == jupyter ]]; then
  # Shared with the API's container through the workspace's group (the pod's fsGroup).
  umask 0002
elif [[ -n "${KERNEL_USER:-}" ]]; then
  log warn "KERNEL_USER is set but start-up.sh does not run as root: the API, Jupyter and the kernels all run as $(id -un)"
fi
if [[ -n "${EGRESS_ALLOW:-}" ]] && ((!separate_users)); then
  echo "start-up.sh: EGRESS_ALLOW needs start-up.sh to run as root with KERNEL_USER, API_USER, EGRESS_USER and WORKSPACE_GROUP set (the image's default); not starting, so that no code runs unrestricted" >&2
  exit 2
fi

# The kernels' IPython profile carries image/ipython_kernel_config.py and the chart extractor it
# loads (image/code_interpreter_charts.py). A directory made here is
# removed again when this script exits.
owned_ipythondir=""
if [[ -z "${IPYTHONDIR:-}" ]]; then
  IPYTHONDIR="$(mktemp -d "${TMPDIR:-/tmp}/code-interpreter-ipython.XXXXXX")"
  owned_ipythondir="$IPYTHONDIR"
fi
export IPYTHONDIR
# Jupyter's own directories, away from HOME (the workspace, which kernel code can write): from
# ~/.jupyter and ~/.local/share/jupyter Jupyter would load configuration (Python), server
# extensions and kernelspecs that kernel code left there. Configuration and data are empty and
# not the kernels' user's to write; the runtime directory (the kernels' connection files) is.
jupyter_dirs="$(mktemp -d "${TMPDIR:-/tmp}/code-interpreter-jupyter.XXXXXX")"
chmod 755 "$jupyter_dirs"
export JUPYTER_CONFIG_DIR="${JUPYTER_CONFIG_DIR:-$jupyter_dirs/config}"
export JUPYTER_DATA_DIR="${JUPYTER_DATA_DIR:-$jupyter_dirs/data}"
export JUPYTER_RUNTIME_DIR="${JUPYTER_RUNTIME_DIR:-$jupyter_dirs/runtime}"
mkdir -p -m 755 "$JUPYTER_CONFIG_DIR" "$JUPYTER_DATA_DIR" "$jupyter_dirs/root"
mkdir -p -m 700 "$JUPYTER_RUNTIME_DIR"
# Jupyter would otherwise "migrate" IPYTHONDIR's profile (the kernels' to write) into its
# configuration, and fail, not being allowed to write there.
if [[ "$JUPYTER_CONFIG_DIR" == "$jupyter_dirs/config" ]]; then : >"$JUPYTER_CONFIG_DIR/migrated"; fi
# The process host's socket: only the API may open it (kernel code could otherwise run commands
# through it, or kill other users' processes). With separate users its directory is root's and the
# API's group's alone (0750); on a development machine it is a private directory of this script's.
owned_host_dir=""
if [[ -z "${PROCESS_HOST_SOCKET:-}" ]]; then
  if ((separate_users)); then
    host_dir=/run/code-interpreter/process-host
    install -d -o root -g "$(id -g "$API_USER")" -m 0750 "$host_dir"
  else
    host_dir="$(mktemp -d "${TMPDIR:-/tmp}/code-interpreter-process-host.XXXXXX")"
    owned_host_dir="$host_dir"
  fi
  PROCESS_HOST_SOCKET="$host_dir/host.sock"
fi
export PROCESS_HOST_SOCKET
remove_owned_files() {
  if [[ -n "$owned_ipythondir" ]]; then rm -rf -- "$owned_ipythondir"; fi
  if [[ -n "$owned_host_dir" ]]; then rm -rf -- "$owned_host_dir"; fi
  rm -rf -- "$jupyter_dirs"
}
trap remove_owned_files EXIT
mkdir -p "$IPYTHONDIR/profile_default"
cp "$ROOT/image/ipython_kernel_config.py" "$ROOT/image/code_interpreter_charts.py" "$IPYTHONDIR/profile_default/"
if ((separate_users)) && [[ -n "$owned_ipythondir" ]]; then chown -R "$KERNEL_USER" "$IPYTHONDIR"; fi
if ((separate_users)) && [[ "$JUPYTER_RUNTIME_DIR" == "$jupyter_dirs/runtime" ]]; then chown "$KERNEL_USER" "$JUPYTER_RUNTIME_DIR"; fi

if ! mkdir -p "$WORKSPACE_DIR" 2>/dev/null || [[ ! -w "$WORKSPACE_DIR" ]]; then
  echo "start-up.sh: WORKSPACE_DIR=$WORKSPACE_DIR cannot be created or written; set WORKSPACE_DIR to a writable directory" >&2
  exit 2
fi
if ((separate_users)); then
  # A workspace kept from an image without the shared group (a volume, a bind mount) is opened
  # to the group once; afterwards the setgid bit and the umask keep it so.
  if [[ "$(stat -c %G "$WORKSPACE_DIR")" != "$WORKSPACE_GROUP" ]]; then
    log info "giving the workspace to group $WORKSPACE_GROUP"
    chgrp -R "$WORKSPACE_GROUP" "$WORKSPACE_DIR" &&
      chmod -R g+rwX "$WORKSPACE_DIR" &&
      find "$WORKSPACE_DIR" -type d -exec chmod g+s {} + ||
      log warn "some of the workspace could not be given to group $WORKSPACE_GROUP"
  fi
  chown "$KERNEL_USER:$WORKSPACE_GROUP" "$WORKSPACE_DIR" && chmod 2775 "$WORKSPACE_DIR"
fi

# scheme://host[:port][/...], IPv6 in brackets, parsed here: starting Python for it would delay
# both starts by ~30 ms. Anything else (user@host, say) goes to Python's own parser.
if [[ "$JUPYTER_URL" =~ ^[A-Za-z][A-Za-z0-9+.-]*://(\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9._-]+))(:([0-9]+))?([/?#]|$) ]]; then
  JUPYTER_HOST="${BASH_REMATCH[2]:-${BASH_REMATCH[3],,}}"
  JUPYTER_PORT="${BASH_REMATCH[5]:-8888}"
else
  read -r JUPYTER_HOST JUPYTER_PORT < <(
    "$JUPYTER_PYTHON" -I -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(p.hostname or "127.0.0.1", p.port or 8888)' "$JUPYTER_URL"
  )
fi

if [[ -n "${API_COMMAND:-}" ]]; then
  read -r -a api_command <<<"$API_COMMAND"
else
  api_command=(node "$ROOT/dist/server/main.js")
fi

case "${LOG_LEVEL:-info}" in
  debug | trace) jupyter_log_level=INFO ;;
  *) jupyter_log_level=WARN ;;
esac

jupyter_pid=""
api_pid=""
host_pid=""
stopping=0

# Jupyter reads its token from JUPYTER_TOKEN (1.x and 2.x alike), which keeps it off the
# command line where any process could read it.
# JUPYTER_TOKEN stays exported for Jupyter: on a command line any process could read it.
jupyter_env=(env)
for name in "${SERVER_ONLY_VARS[@]}"; do
  [[ "$name" == JUPYTER_TOKEN ]] || jupyter_env+=(-u "$name")
done
if ((separate_users)); then
  jupyter_env+=(HOME="$kernel_home" USER="$KERNEL_USER" LOGNAME="$KERNEL_USER")
fi

# --- Egress allow-list -------------------------------------------------------------------------
# Applied before anything runs; if it cannot be, nothing starts (fail closed). Kernels reach
# allowed domains through the proxy (the proxy variables below; most HTTP clients honour them),
# the firewall rejects every other outbound connection of KERNEL_USER.
proxy_pid=""
EGRESS_PROXY_PORT="${EGRESS_PROXY_PORT:-3128}"
EGRESS_STATE_DIR="${EGRESS_STATE_DIR:-/run/code-interpreter}"
export EGRESS_PROXY_PORT EGRESS_STATE_DIR KERNEL_USER="${KERNEL_USER:-}"
egress() { node "$ROOT/dist/server/egress/main.js" "$@"; }
start_proxy() {
  "${as_egress[@]}" node "$ROOT/dist/server/egress/main.js" proxy &
  proxy_pid=$!
  echo "$proxy_pid" >"$EGRESS_STATE_DIR/egress-proxy.pid"
  local deadline=$((SECONDS + 15))
  until (exec 3<>"/dev/tcp/127.0.0.1/$EGRESS_PROXY_PORT") 2>/dev/null; do
    if ((SECONDS >= deadline)) || ! kill -0 "$proxy_pid" 2>/dev/null; then return 1; fi
    sleep 0.05
  done
}
if [[ -n "${EGRESS_ALLOW:-}" ]]; then
  if ! egress apply --initial "$EGRESS_ALLOW"; then
    echo "start-up.sh: EGRESS_ALLOW is set but the egress allow-list could not be applied (see above); not starting, so that no code runs unrestricted" >&2
    exit 1
  fi
  if ! start_proxy; then
    echo "start-up.sh: the egress proxy did not start on 127.0.0.1:$EGRESS_PROXY_PORT; not starting" >&2
    exit 1
  fi
  proxy_url="http://127.0.0.1:$EGRESS_PROXY_PORT"
  no_proxy="localhost,127.0.0.1,::1"
  jupyter_env+=(HTTP_PROXY="$proxy_url" HTTPS_PROXY="$proxy_url" http_proxy="$proxy_url" https_proxy="$proxy_url" NO_PROXY="$no_proxy" no_proxy="$no_proxy")
fi

# The process host runs the API's commands and terminals as the kernels' user, with the kernels'
# environment (jupyter_env: no server variable; the egress proxy's) less JUPYTER_TOKEN, which
# only Jupyter may hold; it reads the few variables given here and passes none of them on.
start_process_host() {
  (
    cd / || exit 1
    exec env -u JUPYTER_TOKEN "${jupyter_env[@]:1}" PROCESS_HOST_SOCKET="$PROCESS_HOST_SOCKET" WORKSPACE_DIR="$WORKSPACE_DIR" \
      LOG_LEVEL="${LOG_LEVEL:-info}" KERNEL_USER="$( ((separate_users)) && echo "$KERNEL_USER")" \
      "${as_host[@]}" node "$ROOT/dist/server/process-host/main.js"
  ) &
  host_pid=$!
}

# No process started here imports from a directory kernel code can write: Python runs isolated
# (-I: neither the working directory nor PYTHONPATH, PYTHONSTARTUP or the user site-packages
# under HOME are used). Jupyter runs in an empty directory, which is also the root of what is
# left of its file handlers (from `/` they served any file Jupyter can read).
# Jupyter used to start in the workspace without -I: a module
# planted there (prometheus_client.py, say) ran inside the next Jupyter, which sees every
# message between the API and the kernels, once kernel code had killed the running one.
start_jupyter() {
  (
    cd "$jupyter_dirs/root" || exit 1
    # PWD as before, for the kernels that inherit it: the workspace, not Jupyter's own directory.
    exec "${jupyter_env[@]}" PWD="$WORKSPACE_DIR" "${as_kernel[@]}" "$JUPYTER_PYTHON" -I -m jupyter_server \
      --config="$ROOT/jupyter_server_config.py" \
      --ServerApp.ip="$JUPYTER_HOST" \
      --ServerApp.port="$JUPYTER_PORT" \
      --ServerApp.port_retries=0 \
      --ServerApp.log_level="$jupyter_log_level" \
      --no-browser
  ) &
  jupyter_pid=$!
}

# Until Jupyter's port accepts connections, a probe from bash itself, every 20 ms: the Python
# health check costs ~40 ms of CPU per try, taken from Jupyter and the API while they start.
wait_for_jupyter() {
  local deadline=$((SECONDS + ${JUPYTER_WAIT_SECONDS:-60}))
  until (exec 3<>"/dev/tcp/$JUPYTER_HOST/$JUPYTER_PORT") 2>/dev/null || ((SECONDS >= deadline)); do
    sleep 0.02
  done
  JUPYTER_WAIT_SECONDS="$((deadline > SECONDS ? deadline - SECONDS : 1))" "$ROOT/jupyter-healthcheck.sh"
}

stop_all() {
  stopping=1
  if [[ -n "${tick_pid:-}" ]]; then kill "$tick_pid" 2>/dev/null; fi
  if [[ -n "$api_pid" ]] && kill -0 "$api_pid" 2>/dev/null; then
    kill -TERM "$api_pid" 2>/dev/null
    wait "$api_pid" 2>/dev/null
  fi
  # After the API: it ends its processes itself; the host's own stop ends whatever is left.
  if [[ -n "$host_pid" ]] && kill -0 "$host_pid" 2>/dev/null; then
    kill -TERM "$host_pid" 2>/dev/null
    wait "$host_pid" 2>/dev/null
  fi
  if [[ -n "$jupyter_pid" ]] && kill -0 "$jupyter_pid" 2>/dev/null; then
    kill -TERM "$jupyter_pid" 2>/dev/null
    wait "$jupyter_pid" 2>/dev/null
  fi
  if [[ -n "$proxy_pid" ]] && kill -0 "$proxy_pid" 2>/dev/null; then
    kill -TERM "$proxy_pid" 2>/dev/null
    wait "$proxy_pid" 2>/dev/null
  fi
}

on_signal() {
  log info "received $1; stopping"
  stop_all
  exit 0
}
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGINT' INT

# Both start at once: the API answers /health at once, reports not ready on /ready until
# Jupyter answers, and starts the default context as soon as it does.
start_jupyter
start_process_host
if [[ "$role" == all ]]; then
  "${as_api[@]}" "${api_command[@]}" &
  api_pid=$!
fi
if ! wait_for_jupyter; then
  log error "Jupyter did not start"
  stop_all
  exit 1
fi
log info "Jupyter is up at $JUPYTER_URL"

# Whether every process watched here still runs.
all_running() {
  { [[ -z "$api_pid" ]] || kill -0 "$api_pid" 2>/dev/null; } && kill -0 "$jupyter_pid" 2>/dev/null && kill -0 "$host_pid" 2>/dev/null &&
    { [[ -z "$proxy_pid" ]] || kill -0 "$proxy_pid" 2>/dev/null; }
}

restarts=0
host_restarts=0
tick_pid=""
while true; do
  # bash (5.2) forgets a child that ended before `wait -n` was called, and then waits for the
  # others ("no such job"): an API that died while Jupyter was starting used to leave this script
  # waiting forever and Jupyter running. So each pass looks first, and a tick ends the wait every
  # few seconds, for a child that ends between the look and the wait.
  if all_running; then
    sleep 5 &
    tick_pid=$!
    wait -n ${api_pid:+"$api_pid"} "$jupyter_pid" "$host_pid" ${proxy_pid:+"$proxy_pid"} "$tick_pid"
    kill "$tick_pid" 2>/dev/null
    tick_pid=""
  fi
  ((stopping)) && exit 0
  if [[ -n "$proxy_pid" ]] && ! kill -0 "$proxy_pid" 2>/dev/null; then
    wait "$proxy_pid" 2>/dev/null
    log warn "the egress proxy exited; starting it again"
    sleep 1
    start_proxy || log error "the egress proxy did not come back yet"
  fi
  if ! kill -0 "$host_pid" 2>/dev/null; then
    wait "$host_pid" 2>/dev/null
    host_restarts=$((host_restarts + 1))
    # Its connections closed with it; the new host kills what the old one left (their marker
    # variable names its socket), and the API reconnects on next use.
    log warn "the process host exited; starting it again (restart $host_restarts)"
    sleep "$((host_restarts > 5 ? 5 : 0))"
    start_process_host
  fi
  if [[ -n "$api_pid" ]] && ! kill -0 "$api_pid" 2>/dev/null; then
    wait "$api_pid"
    status=$?
    log error "the API exited with status $status; stopping"
    stop_all
    exit $((status == 0 ? 1 : status))
  fi
  if ! kill -0 "$jupyter_pid" 2>/dev/null; then
    wait "$jupyter_pid" 2>/dev/null
    restarts=$((restarts + 1))
    log warn "Jupyter exited; starting it again (restart $restarts)"
    # Back off a little when it keeps dying, without ever giving up on it.
    sleep "$((restarts > 5 ? 5 : 0))"
    start_jupyter
    wait_for_jupyter || log error "Jupyter did not come back yet"
  fi
done
