#!/usr/bin/env bash
# Debian packages the tests use (redis-server for the queue, postgresql for the catalog on PostgreSQL (the tests
# start their own server with initdb + pg_ctl), tesseract for OCR, chromium for the dashboard
# test, docker-compose to validate the production compose file, prometheus for promtool on the alert rules). Installs only what is missing; needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
while read -r pkg; do
  [ -n "$pkg" ] || continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < scripts/apt-packages.txt
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
