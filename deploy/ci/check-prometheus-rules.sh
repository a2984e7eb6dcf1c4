#!/usr/bin/env bash
# deploy/prometheus: `promtool check rules` on the alert rules, then `promtool test rules` on their
# unit tests (each rule fires on the series it is for, the peer rule holds back while the probe is
# cut off). promtool comes from Debian's prometheus package, installed here when it is missing
# and apt can install it; where neither works the script says so and checks nothing.
# tests/deploy.rs checks that the rules name only metrics that /metrics serves.
set -euo pipefail
cd "$(dirname "$0")/../prometheus"

if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "check-prometheus-rules: promtool is missing; installing Debian's prometheus package" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
fi
if ! command -v promtool >/dev/null 2>&1; then
  echo "check-prometheus-rules: no promtool on this machine (and it could not be installed); rules not checked" >&2
  exit 0
fi
promtool check rules alerts.yml
promtool test rules alerts.test.yml
