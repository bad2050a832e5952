#!/usr/bin/env bash
# Creates a throw-away CA and certificates for TLS tests and the README's secure quick start.
# Usage: tools/make-test-certs.sh DIR [HOST]
#   DIR/ca.pem ca.key                    the CA (ssl.truststore.location for clients and, for mTLS, the broker)
#   DIR/broker.pem broker.key            the broker's certificate (SAN: HOST, localhost, 127.0.0.1) and key
#   DIR/broker-keystore.pem              key + certificate chain in one PEM file (ssl.keystore.location)
#   DIR/client.pem client.key            a client certificate, subject CN=client,OU=test,O=Petrel (for mTLS)
# Keys are unencrypted EC P-256; never use these outside tests.
set -euo pipefail
DIR=${1:?usage: make-test-certs.sh DIR [HOST]}
HOST=${2:-localhost}
mkdir -p "$DIR"
cd "$DIR"
days=30
openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days $days -subj "/O=Petrel Test/CN=Petrel Test CA" -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() { # name subject extensions
  local name=$1 subject=$2 ext=$3
  openssl ecparam -name prime256v1 -genkey -noout -out "$name.ec.key" 2>/dev/null
  openssl pkcs8 -topk8 -nocrypt -in "$name.ec.key" -out "$name.key"
  rm -f "$name.ec.key"
  openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr" 2>/dev/null
  printf '%b\n' "$ext" > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days $days -sha256 -extfile "$name.ext" -out "$name.pem" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
issue broker "/O=Petrel/CN=$HOST" "subjectAltName=DNS:$HOST,DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature"
issue client "/O=Petrel/OU=test/CN=client" "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature"
cat broker.key broker.pem ca.pem > broker-keystore.pem
echo "certificates in $PWD"
