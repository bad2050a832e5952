#!/usr/bin/env bash
# Idempotent: installs everything Petrel's build, tests and benchmarks need on a fresh Debian machine.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_PKGS=(liburing-dev pkg-config kcat python3-pip zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
PIP_PKGS=(kafka-python confluent-kafka pytest)
need_pip=0
$PY -c "import kafka, confluent_kafka, pytest" >/dev/null 2>&1 || need_pip=1
if [ $need_pip = 1 ]; then
  $PY -m pip install -q --disable-pip-version-check "${PIP_PKGS[@]}"
fi
echo "install-deps: ok"
