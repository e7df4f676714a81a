#!/usr/bin/env bash
# TLS handshakes per second that one core of an edge completes, with its
# default certificate (ECDSA P-256) against an RSA-4096 one (the official
# proxy's), measured in one run by openssl s_time on the other core.
# Usage: bench/tls-handshakes.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/ferry" ./cmd/ferry
openssl req -x509 -newkey rsa:4096 -nodes -subj "/CN=rsa.example" -days 2 \
  -keyout "$work/rsa.key" -out "$work/rsa.crt" 2>/dev/null

run() { # NAME PORT [CERT KEY]
  local name=$1 port=$2
  FERRY_ADMIN= FERRY_EDGE_LISTEN="tls://127.0.0.1:$port/chat" FERRY_ORIGIN_TARGETS=chat=127.0.0.1:9 \
    FERRY_EDGE_TLS_CERT=${3:-} FERRY_EDGE_TLS_KEY=${4:-} GOMAXPROCS=1 \
    taskset -c 0 "$work/ferry" standalone 2>"$work/$name.log" &
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  local pid=$! out n cpu0 cpu1
  cpu0=$(cpu_ticks "$pid")
  out=$(taskset -c 1 openssl s_time -connect "127.0.0.1:$port" -new -time "$secs" 2>/dev/null | grep 'connections in' | head -1)
  cpu1=$(cpu_ticks "$pid")
  kill "$pid" 2>/dev/null; wait 2>/dev/null || true
  n=$(echo "$out" | awk '{print $1}')
  # Handshakes per second of wall time, and per CPU-second of the edge:
  # the second does not depend on whether the client kept the core busy.
  awk -v name="$name" -v n="$n" -v s="$secs" -v c=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" \
    'BEGIN{printf "%s %.0f %.0f %.0f\n", name, n/s, n/(c/hz), 100*c/hz/s}'
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "certificate handshakes/s handshakes/CPU-s edge-core-busy-%"

ecdsa=$(run ecdsa-p256 18601)
rsa=$(run rsa-4096 18602 "$work/rsa.crt" "$work/rsa.key")
echo "$ecdsa"
echo "$rsa"
awk -v a="$(echo "$ecdsa" | cut -d' ' -f3)" -v b="$(echo "$rsa" | cut -d' ' -f3)" \
  'BEGIN{printf "ratio of handshakes per edge CPU-second, ECDSA P-256 / RSA-4096: %.1fx\n", a/b}'
