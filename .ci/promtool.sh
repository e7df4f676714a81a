#!/usr/bin/env bash
# promtool (Debian's prometheus package) on deploy/prometheus: the alert
# rules are valid and pass their unit tests, one per alert.
set -euo pipefail
cd "$(dirname "$0")/../deploy/prometheus"

command -v promtool >/dev/null || { echo "FAIL: promtool is not installed (apt-get install prometheus)"; exit 1; }
promtool check rules ferry.rules.yml
promtool test rules ferry.rules.test.yml
