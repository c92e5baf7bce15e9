#!/usr/bin/env bash
# Makes this checkout ready to run or test, doing only what is missing:
#   1. the Debian packages of image/debian-packages.txt (what the server needs) and of
#      scripts/dev-debian-packages.txt (what only development and tests need, not in the image):
#      installed when run as root, otherwise the exact apt-get command is printed and the script stops;
#   2. node_modules: `npm ci` when it is missing or was installed from another package-lock.json;
#   3. dist/: `npm run build` when it is missing or was built from other sources.
# `npm start` and `npm test` run it first. It needs only bash, coreutils and npm: nothing from
# node_modules, which it may have to install.
#
# Env: SYSTEM_PACKAGES=skip  do not check the Debian packages (Jupyter comes from elsewhere;
#                            point JUPYTER_PYTHON at it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- 1. Debian packages --------------------------------------------------------------------------
mapfile -t packages < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' image/debian-packages.txt scripts/dev-debian-packages.txt)
if [[ "${SYSTEM_PACKAGES:-}" == skip ]]; then
  say "not checking Debian packages (SYSTEM_PACKAGES=skip)"
elif ! command -v dpkg-query >/dev/null; then
  say "this is not a Debian system: install the equivalent of ${packages[*]}, then run with SYSTEM_PACKAGES=skip"
  exit 1
else
  missing=()
  for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
  done
  if ((${#missing[@]})); then
    if [[ "$(id -u)" == 0 ]]; then
      say "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      say "missing Debian packages: ${missing[*]}"
      say "install them, then run this again:"
      printf '\n  sudo apt-get update && sudo apt-get install -y --no-install-recommends %s\n\n' "${missing[*]}" >&2
      exit 1
    fi
  fi
fi

# --- 2. node_modules -----------------------------------------------------------------------------
fingerprint() { cat "$@" | sha256sum | cut -d' ' -f1; }

lock_hash="$(fingerprint package.json package-lock.json)"
if [[ "$(cat node_modules/.setup-lock-hash 2>/dev/null)" != "$lock_hash" ]]; then
  if [[ -d node_modules ]]; then say "package-lock.json changed: npm ci"; else say "no node_modules: npm ci"; fi
  npm ci --no-audit --no-fund
  echo "$lock_hash" >node_modules/.setup-lock-hash
fi

# --- 3. dist/ ------------------------------------------------------------------------------------
# The sources the build reads, by content: a checkout of another branch, an edit or a deleted
# file all change it; a touch does not.
mapfile -t sources < <(find server playground -type f \( -name '*.ts' -o -name '*.html' -o -name '*.css' -o -name '*.json' \) | LC_ALL=C sort)
build_hash="$(fingerprint tsconfig.json tsconfig.build.json package-lock.json scripts/bundle.mjs "${sources[@]}" <(printf '%s\n' "${sources[@]}"))"
if [[ ! -f dist/server/main.js || ! -f dist/playground/index.html || "$(cat dist/.setup-build-hash 2>/dev/null)" != "$build_hash" ]]; then
  say "building dist/"
  rm -rf dist
  npm run --silent build
  echo "$build_hash" >dist/.setup-build-hash
fi
