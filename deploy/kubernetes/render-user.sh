#!/usr/bin/env bash
# Prints one user's code interpreter for `kubectl apply -f -`: a Secret with fresh random tokens
# (the API's, the metrics scraper's, Jupyter's), then plain/user.yaml renamed for that user.
#
#   deploy/kubernetes/render-user.sh alice | kubectl apply -n code-interpreters -f -
#   kubectl get secret code-interpreter-alice -o jsonpath='{.data.ACCESS_TOKEN}' | base64 -d
#
# Applying it again draws new tokens (the pod must then be restarted to use them): render once,
# or apply only the part after the Secret.
set -euo pipefail

name="${1:-}"
# A DNS label, short enough for "code-interpreter-NAME" and the pod name's suffix.
if ! [[ "$name" =~ ^[a-z0-9]([a-z0-9-]{0,29}[a-z0-9])?$ ]]; then
  echo "usage: $0 NAME   (NAME: lower-case letters, digits and '-', 1 to 31 characters, not starting or ending with '-')" >&2
  exit 2
fi

token() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

cat <<SECRET
apiVersion: v1
kind: Secret
metadata:
  name: code-interpreter-$name
  labels:
    app.kubernetes.io/name: code-interpreter
    app.kubernetes.io/instance: $name
type: Opaque
stringData:
  ACCESS_TOKEN: $(token)
  METRICS_TOKEN: $(token)
  JUPYTER_TOKEN: $(token)
---
SECRET
sed -e '/^#/d' \
  -e "s/code-interpreter-example/code-interpreter-$name/g" \
  -e "s/app.kubernetes.io\/instance: example$/app.kubernetes.io\/instance: $name/" \
  "$(dirname "${BASH_SOURCE[0]}")/plain/user.yaml"
