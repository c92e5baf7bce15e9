# Code-interpreter container: the HTTP API (Node, port 49999) next to a Jupyter Server
# (127.0.0.1 only) whose kernels run Python and R; the API, Jupyter and the kernels each under an
# unprivileged user (see "Who runs what" below).
#
#   docker build -t code-interpreter .
#   docker run --rm -p 49999:49999 code-interpreter
#
# Without a reachable image registry, build a stand-in base first (see
# scripts/build-base-image.sh) and pass it with --build-arg BASE_IMAGE=...
#
# Stages, ordered so that a change to server code reuses every system-package layer:
#   system  Debian packages (Python, Jupyter, data-science set, R + IRkernel, tini), the user
#   build   npm ci + tsc -> dist/ (dev dependencies live and die here)
#   deps    npm ci --omit=dev -> production node_modules only
#   final   system + node_modules + dist/ + start-up scripts and configs
# Only classic-builder features are used, so it builds with or without BuildKit.

ARG BASE_IMAGE=node:24-trixie-slim

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS system

ENV LANG=C.UTF-8 \
    LC_ALL=C.UTF-8
# An ARG, not an ENV: it serves apt here and must not leak into the environment of user code.
ARG DEBIAN_FRONTEND=noninteractive

# Python, Jupyter and the data-science set come from Debian's packages (no Python package index
# is needed at build time, and versions move with the distribution's security updates).
# image/debian-packages.txt is what the server needs everywhere (development machines and CI install
# it too): Jupyter, the kernels (r-cran-irkernel brings R and IRkernel; python3-pip is what
# `pip install` runs in the kernels' virtual environment, which image/kernels/launch-kernel creates).
# The kernelspecs are ours (image/kernels/, found through JUPYTER_PATH); JavaScript and TypeScript run
# Deno, whose binary is the @deno/linux-x64-glibc npm dependency (deps stage). The image adds the
# libraries user code expects; tini is PID 1; ca-certificates lets user code (requests, R)
# reach HTTPS hosts.
COPY image/debian-packages.txt /tmp/debian-packages.txt
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      $(sed -e 's/#.*//' /tmp/debian-packages.txt) \
      ca-certificates \
      tini \
      python3 \
      python3-scipy \
      python3-sklearn \
      python3-seaborn \
      python3-plotly \
      python3-pil \
      python3-sympy \
      python3-bs4 \
 && rm -rf /var/lib/apt/lists/* /tmp/debian-packages.txt

# The unprivileged user that runs Jupyter and the kernels; /home/user is the workspace.
RUN useradd --create-home --home-dir /home/user --shell /bin/bash user

# Who runs what (start-up.sh starts as root, applies the egress rules, then drops to these, with
# no capabilities left):
#   user              Jupyter, the kernels, and the process host (commands and terminals; it
#                     starts as root only to bind its socket for the API's group, see
#                     docs/security.md)
#   code-interpreter  the API: kernel code can neither read its environment (the tokens) nor
#                     signal it
#   egress            the egress proxy (only with EGRESS_ALLOW)
# The API and the kernels share the workspace through the group `workspace`: /home/user is setgid
# to it and start-up.sh sets umask 002. nftables applies the egress allow-list (NET_ADMIN).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nftables \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system workspace \
 && usermod --append --groups workspace user \
 && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --groups workspace code-interpreter \
 && useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin egress \
 && chgrp workspace /home/user \
 && chmod 2775 /home/user

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY server ./server
COPY scripts/bundle.mjs ./scripts/
# The playground page (GET /), built by Vite into dist/playground.
COPY playground ./playground
RUN npm run build

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---------------------------------------------------------------------------------------------
FROM system

# SHUTDOWN_GRACE: `docker stop` sends SIGKILL 10 s after SIGTERM. The API lets running
# executions finish for SHUTDOWN_GRACE, then start-up.sh stops Jupyter (about 1 s); at the API's
# default of 10 s a long execution made `docker stop` end in SIGKILL and exit code 137. 7 s keeps
# the whole shutdown inside Docker's window. For a longer grace raise both together, e.g.
# `docker run --stop-timeout 40 -e SHUTDOWN_GRACE=30`.
ENV NODE_ENV=production \
    SHUTDOWN_GRACE=7 \
    HOST=0.0.0.0 \
    PORT=49999 \
    JUPYTER_URL=http://127.0.0.1:8888 \
    WORKSPACE_DIR=/home/user \
    JUPYTER_PYTHON=/usr/bin/python3 \
    KERNEL_USER=user \
    API_USER=code-interpreter \
    EGRESS_USER=egress \
    WORKSPACE_GROUP=workspace

# The application is owned by root and only readable by the others: code run in a kernel cannot
# rewrite the server that runs it.
WORKDIR /opt/code-interpreter
COPY --from=deps /src/node_modules ./node_modules
COPY package.json ./
COPY jupyter_server_config.py start-up.sh jupyter-healthcheck.sh ./
COPY image ./image
COPY --from=build /src/dist ./dist
RUN ln -s /opt/code-interpreter/image/egress-allow /usr/local/bin/egress-allow

# No USER: start-up.sh starts as root to apply the egress rules and to run the API and the
# kernels under their own users (see above); nothing else runs as root.
WORKDIR /home/user

EXPOSE 49999 49983

# Node rather than curl: no extra package, and /health is never behind auth.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||49999)+'/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# tini as PID 1 reaps orphaned kernel processes and forwards `docker stop`'s SIGTERM to
# start-up.sh, which stops the API first (running executions finish) and then Jupyter, and exits
# 0. Not -g: signalling the whole group at once would stop Jupyter under running executions.
# -e 143 still reports success if the script is killed by SIGTERM before its trap is set.
ENTRYPOINT ["/usr/bin/tini", "-e", "143", "--", "/opt/code-interpreter/start-up.sh"]
