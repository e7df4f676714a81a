#!/usr/bin/env bash
# systemd-analyze verify on deploy/systemd's units, with ExecStart pointed at
# a freshly built binary (verify wants the command to exist).
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
for unit in deploy/systemd/*.service; do
  sed "s|/usr/local/bin/ferry|$work/ferry|" "$unit" >"$work/$(basename "$unit")"
  systemd-analyze verify "$work/$(basename "$unit")" || fail "systemd-analyze verify $unit"
  echo "verified: $unit"
done
