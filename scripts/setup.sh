#!/usr/bin/env bash
# Sets stegostream up on a Debian/Ubuntu machine with Node.js 20.19+:
#   bash scripts/setup.sh            system packages the service needs (ffmpeg), npm ci, build
#   bash scripts/setup.sh demo       the same, then runs the built-in demo
#   bash scripts/setup.sh --test-deps  only the system packages the test suite uses
# System packages are installed with apt-get when missing and possible (root, or sudo without a
# password); otherwise it stops with one line saying what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNTIME_PKGS=(ffmpeg)
# nats-server: NATS tests; chromium: viewer tests; python3-torch/onnx: the DINO export tests;
# prometheus: its promtool checks the /metrics exposition; python3-websockets: the Python example.
TEST_PKGS=(ffmpeg nats-server chromium python3-torch python3-onnx prometheus python3-websockets)

need_node() {
  if ! command -v node >/dev/null 2>&1; then
    echo "stegostream setup: Node.js 20.19 or newer is required: install it (https://nodejs.org or your package manager) and run this again." >&2
    exit 1
  fi
  local v
  v=$(node -p 'process.versions.node')
  if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
    echo "stegostream setup: Node.js $v is too old: install Node.js 20.19 or newer." >&2
    exit 1
  fi
}

pkg_missing() {
  case "$1" in
    ffmpeg) ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1 ;;
    nats-server) ! command -v nats-server >/dev/null 2>&1 ;;
    chromium) ! command -v chromium >/dev/null 2>&1 ;;
    python3-torch) ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 ;;
    python3-onnx) ! /usr/bin/python3 -c 'import onnx' >/dev/null 2>&1 ;;
    python3-websockets) ! /usr/bin/python3 -c 'import websockets' >/dev/null 2>&1 ;;
    *) ! dpkg -s "$1" >/dev/null 2>&1 ;;
  esac
}

install_pkgs() {
  local missing=()
  for p in "$@"; do if pkg_missing "$p"; then missing+=("$p"); fi; done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo="sudo"; else
      echo "stegostream setup: missing system packages: ${missing[*]}. Install them: sudo apt-get install -y ${missing[*]}" >&2
      return 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "stegostream setup: missing system packages: ${missing[*]}. Install them with your package manager." >&2
    return 1
  fi
  echo "stegostream setup: installing ${missing[*]} with apt-get" >&2
  $sudo apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

case "${1:-}" in
  --test-deps)
    # Tests whose system package cannot be installed skip with a reason; do not fail here.
    install_pkgs "${TEST_PKGS[@]}" || true
    exit 0
    ;;
esac

need_node
install_pkgs "${RUNTIME_PKGS[@]}"
# onnxruntime-node's install step would download CUDA libraries from outside the npm registry;
# the CPU provider is inside the package (README "GPU set-up" for CUDA).
export ONNXRUNTIME_NODE_INSTALL=skip
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm run build
fi
if [ "${1:-}" = "demo" ]; then
  shift
  node dist/cli.js demo "$@"
fi
