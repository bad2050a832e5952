#!/usr/bin/env bash
# Idempotent: installs everything Petrel's build, tests and benchmarks need on a fresh Debian machine.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_PKGS=(liburing-dev pkg-config kcat python3-pip zlib1g-dev libsnappy-dev liblz4-dev libzstd-dev)
# mkfs.ext4 for the small loop-mounted file system of test_disk_full.py.
APT_PKGS+=(e2fsprogs)
# openssl: tools/make-test-certs.sh (throw-away CA and certificates for the TLS/mTLS tests).
APT_PKGS+=(openssl)
# Go + Debian's packaged sarama: Tests/IntegrationTests/go/sarama_group is built offline in GOPATH mode
# against /usr/share/gocode/src/github.com/Shopify/sarama (test_groups_sarama.py).
APT_PKGS+=(golang-go golang-github-shopify-sarama-dev golang-github-xdg-go-scram-dev)
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
# Clients and test runner for Tests/IntegrationTests. kafka-python needs the codec packages for
# snappy (cramjam / python-snappy), lz4 and zstd; confluent-kafka's wheel bundles all codecs.
# prometheus_client: its exposition-format parser checks the /metrics scrape (test_metrics.py; promtool's Debian package is ~100 MB).
PIP_PKGS=(kafka-python confluent-kafka pytest pytest-timeout lz4 cramjam python-snappy zstandard prometheus_client)
need_pip=0
$PY - >/dev/null 2>&1 <<'PYEOF' || need_pip=1
import kafka, confluent_kafka, pytest, pytest_timeout, lz4, cramjam, zstandard, prometheus_client
from kafka.codec import has_gzip, has_snappy, has_lz4, has_zstd
assert has_gzip() and has_snappy() and has_lz4() and has_zstd()
PYEOF
if [ $need_pip = 1 ]; then
  $PY -m pip install -q --disable-pip-version-check --root-user-action=ignore "${PIP_PKGS[@]}"
fi
echo "install-deps: ok"
