#!/usr/bin/env bash
# Runs the README's run command, `go run ./cmd/ferry standalone`, with no
# configuration, and checks that it listens on every port of the official
# proxy, then stops it.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
setsid go run ./cmd/ferry standalone >"$log" 2>&1 &
pid=$!
trap 'kill -TERM -- -$pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -f "$log"' EXIT

for port in 443 80 5222 587 7777 8443 8080 8222; do
  for _ in $(seq 300); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then continue 2; fi
    if ! kill -0 "$pid" 2>/dev/null; then echo "ferry standalone exited:"; cat "$log"; exit 1; fi
    sleep 0.1
  done
  echo "ferry standalone does not listen on port $port:"; cat "$log"; exit 1
done
echo "ferry standalone listens on 443 80 5222 587 7777 8443 8080 8222"
