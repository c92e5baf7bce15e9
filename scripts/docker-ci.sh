#!/usr/bin/env bash
# Proves the container works: builds the image, runs it, waits for a first real execution and
# runs the integration suite (tests/integration) against it over HTTP, then the container tests
# (tests/container: isolation and the egress allow-list), which start containers of their own.
#
# Meant for CI as root on a fresh Debian 12 machine without an image registry: installs
# docker.io and debootstrap when missing, starts dockerd when no daemon answers, and builds the
# stand-in base image (scripts/build-base-image.sh, reused when present) that the Dockerfile's
# BASE_IMAGE argument points at. The container is always removed at the end; the images stay,
# so the next run reuses the base and the layer cache. Exits non-zero on any failure.
#
# Usage: bash scripts/docker-ci.sh
# Env:   BASE_IMAGE            base for the Dockerfile (default: the local stand-in,
#                              code-interpreter-base:trixie-node24, built when missing)
#        IMAGE                 tag for the image under test (default code-interpreter:ci)
#        DOCKERD_WAIT_SECONDS  how long to wait for a daemon we start (default 60)
#        READY_WAIT_SECONDS    how long to wait for /health and a first execution (default 180)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BASE_IMAGE="${BASE_IMAGE:-code-interpreter-base:trixie-node24}"
IMAGE="${IMAGE:-code-interpreter:ci}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"
READY_WAIT_SECONDS="${READY_WAIT_SECONDS:-180}"
CONTAINER="code-interpreter-ci-$$"

log() { printf '[docker-ci] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- step timing: each step's duration is printed at the end, pass or fail ------------------
timings=()
step_name=""
step_started=0
step() {
  finish_step
  step_name="$1"
  step_started=$SECONDS
  log "== $step_name"
}
finish_step() {
  if [[ -n "$step_name" ]]; then
    timings+=("$(printf '%6d s  %s' $((SECONDS - step_started)) "$step_name")")
    step_name=""
  fi
}

container_started=""
cleanup() {
  local status=$?
  finish_step
  if [[ -n "$container_started" ]]; then
    if ((status != 0)); then
      log "container logs (last 80 lines):"
      docker logs --tail 80 "$CONTAINER" >&2 2>&1 || true
    fi
    docker rm -f "$CONTAINER" >/dev/null 2>&1 || true
  fi
  if ((${#timings[@]})); then
    log "step timings:"
    printf '%s\n' "${timings[@]}" >&2
    printf '%6d s  total\n' "$SECONDS" >&2
  fi
  ((status == 0)) && log "passed" || log "FAILED (exit $status)"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- 1. tools -------------------------------------------------------------------------------
step "install docker.io and debootstrap if missing"
missing=()
command -v docker >/dev/null || missing+=(docker.io)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if ((${#missing[@]})); then
  [[ "$(id -u)" == 0 ]] || die "need root to install: ${missing[*]}"
  log "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${missing[@]}" | sort -u) ca-certificates >/dev/null
fi

# --- 2. daemon ------------------------------------------------------------------------------
step "docker daemon"
if ! docker info >/dev/null 2>&1; then
  [[ "$(id -u)" == 0 ]] || die "no Docker daemon answers and only root can start one"
  log "starting dockerd (log: /var/log/dockerd.log)"
  # Left running on purpose: the next run (and the layer cache) reuses it.
  nohup dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
  deadline=$((SECONDS + DOCKERD_WAIT_SECONDS))
  until docker info >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || ! kill -0 $! 2>/dev/null; then
      tail -n 30 /var/log/dockerd.log >&2 || true
      die "dockerd did not answer within ${DOCKERD_WAIT_SECONDS}s"
    fi
    sleep 1
  done
fi
log "daemon $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"

# --- 3. base image --------------------------------------------------------------------------
step "base image $BASE_IMAGE"
if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "reusing $BASE_IMAGE"
elif [[ "$BASE_IMAGE" == code-interpreter-base:* ]]; then
  BASE_TAG="$BASE_IMAGE" bash scripts/build-base-image.sh
else
  docker pull "$BASE_IMAGE" || die "cannot get $BASE_IMAGE"
fi

# --- 4. image -------------------------------------------------------------------------------
step "docker build $IMAGE"
build_log="$(mktemp /tmp/docker-ci-build.XXXXXX.log)"
if ! docker build --build-arg BASE_IMAGE="$BASE_IMAGE" -t "$IMAGE" . >"$build_log" 2>&1; then
  tail -n 60 "$build_log" >&2
  die "docker build failed (full log: $build_log)"
fi
rm -f "$build_log"
log "image size: $(docker image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"

# --- 5. container ---------------------------------------------------------------------------
step "docker run -> first successful execute"
# Published on loopback only, on a port Docker picks (always free).
run_started_ms="$(date +%s%3N)"
# CONTEXT_MEMORY_LIMIT and MAX_CONTEXTS as the dev suite's server has them (tests/helpers/global-setup.ts).
docker run -d --name "$CONTAINER" -p 127.0.0.1::49999 -e CONTEXT_MEMORY_LIMIT=4GiB -e MAX_CONTEXTS=100 "$IMAGE" >/dev/null
container_started=1
port="$(docker port "$CONTAINER" 49999/tcp | head -n 1 | sed 's/.*://')"
[[ -n "$port" ]] || die "no host port published for 49999"
base_url="http://127.0.0.1:$port"
log "container $CONTAINER at $base_url"

# Waits for /health, then for `print(1)` to stream stdout "1" and end_of_execution: the first
# execution also proves Jupyter and a kernel are up inside the container.
RUN_STARTED_MS="$run_started_ms" BASE_URL="$base_url" WAIT_MS=$((READY_WAIT_SECONDS * 1000)) CONTAINER="$CONTAINER" node --input-type=module <<'JS'
import { execFileSync } from 'node:child_process';
const base = process.env.BASE_URL;
const started = Number(process.env.RUN_STARTED_MS); // just before `docker run`
const deadline = Date.now() + Number(process.env.WAIT_MS);
// AbortSignal.timeout's timers don't hold the event loop open, and a fetch whose connection
// docker-proxy has accepted before the container listens doesn't either: without a timer of our
// own, Node would exit with 13 (unsettled top-level await) on the very first attempt.
const keepAlive = setInterval(() => {}, 1000);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const running = () =>
  execFileSync('docker', ['inspect', '--format', '{{.State.Running}}', process.env.CONTAINER]).toString().trim() === 'true';
async function until(what, attempt) {
  let last = '';
  while (Date.now() < deadline) {
    if (!running()) throw new Error(`the container exited while waiting for ${what}`);
    try {
      const result = await attempt();
      if (result === true) return;
      last = String(result);
    } catch (error) {
      last = error.message;
    }
    await sleep(200);
  }
  throw new Error(`${what} did not succeed in time (last: ${last})`);
}
await until('GET /health', async () => {
  const response = await fetch(`${base}/health`, { signal: AbortSignal.timeout(2000) });
  return response.ok || `status ${response.status}`;
});
const health = Date.now();
await until('POST /execute print(1)', async () => {
  const response = await fetch(`${base}/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code: 'print(1)' }),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await response.text();
  if (!response.ok) return `status ${response.status}: ${text.slice(0, 200)}`;
  const events = text.split('\n').filter((line) => line.trim()).map((line) => JSON.parse(line));
  const stdout = events.filter((e) => e.type === 'stdout').map((e) => e.text).join('');
  const last = events.at(-1)?.type;
  return (stdout === '1\n' && last === 'end_of_execution') || `unexpected stream: ${text.slice(0, 300)}`;
});
const done = Date.now();
clearInterval(keepAlive);
console.error(`[docker-ci] from docker run: /health after ${health - started} ms, first execute after ${done - started} ms`);
JS

# Jupyter's own start time, from the container's start and start-up.sh's "Jupyter is up" line.
node --input-type=module - "$(docker inspect --format '{{.State.StartedAt}}' "$CONTAINER")" \
  "$(docker logs "$CONTAINER" 2>&1 | grep -m1 'Jupyter is up' || true)" <<'JS' || true
const [startedAt, line] = process.argv.slice(2);
const up = line ? JSON.parse(line).time : NaN;
if (Number.isFinite(up)) console.error(`[docker-ci] Jupyter up ${up - Date.parse(startedAt)} ms after the container started`);
JS

# --- 6. integration suite -------------------------------------------------------------------
step "integration suite against the container"
[[ -x node_modules/.bin/vitest ]] || npm ci --no-audit --no-fund
BASE_URL="$base_url" npx vitest run tests/integration

# --- 6b. limits that need a container of their own ------------------------------------------
# MAX_CONTEXTS=3 (tests/integration/max-contexts.test.ts), and a memory limit on the whole
# container without CONTEXT_MEMORY_LIMIT, so that a kernel really meets the out-of-memory
# killer (tests/integration/oom-kill.test.ts).
step "limits container (MAX_CONTEXTS=3, -m 1g) and its tests"
LIMITS_CONTAINER="$CONTAINER-limits"
docker run -d --name "$LIMITS_CONTAINER" -p 127.0.0.1::49999 -m 1g --memory-swap 1g -e MAX_CONTEXTS=3 "$IMAGE" >/dev/null
limits_port="$(docker port "$LIMITS_CONTAINER" 49999/tcp | head -n 1 | sed 's/.*://')"
limits_url="http://127.0.0.1:$limits_port"
limits_status=0
for _ in $(seq "$READY_WAIT_SECONDS"); do
  curl -fsS "$limits_url/ready" >/dev/null 2>&1 && break
  sleep 1
done
BASE_URL="$limits_url" MAX_CONTEXTS_BASE_URL="$limits_url" OOM_BASE_URL="$limits_url" \
  npx vitest run tests/integration/max-contexts.test.ts tests/integration/oom-kill.test.ts || limits_status=$?
if ((limits_status != 0)); then docker logs --tail 40 "$LIMITS_CONTAINER" >&2 2>&1 || true; fi
docker rm -f "$LIMITS_CONTAINER" >/dev/null 2>&1 || true
((limits_status == 0)) || die "the limits tests failed"

# --- 6c. containers of the tests' own ---------------------------------------------------------
# tests/container: isolation (the API under its own uid), the egress allow-list, planted code,
# Jupyter killed, upgrade floods from kernel code, archives as the API's user, and the e2b SDK on
# 127.0.0.1:49999 (free by now: the main container is published on a port Docker picks). They
# start containers of the image themselves; the egress tests on a Docker network they create,
# with HTTP servers on the base image as targets.
step "container tests (tests/container)"
CONTAINER_IMAGE="$IMAGE" TARGET_IMAGE="$BASE_IMAGE" npx vitest run --project container

# --- 6d. the Kubernetes pod ----------------------------------------------------------------
# The integration suite once more, against deploy/kubernetes/plain's pod: its two containers
# (jupyter and api) under Docker with the manifest's users, read-only root, tmpfs emptyDirs,
# dropped capabilities and memory limits (tests/helpers/k8s-pod.ts, started by the suite's
# global setup when POD_IMAGE is set, removed at its end).
step "integration suite against the Kubernetes pod's two containers"
POD_IMAGE="$IMAGE" npx vitest run tests/integration

# --- 7. shutdown ----------------------------------------------------------------------------
step "docker stop"
stop_started=$SECONDS
docker stop "$CONTAINER" >/dev/null
exit_code="$(docker inspect --format '{{.State.ExitCode}}' "$CONTAINER")"
log "docker stop took $((SECONDS - stop_started)) s; exit code $exit_code"
[[ "$exit_code" == 0 ]] || die "the container exited with $exit_code on docker stop (expected 0)"
finish_step
