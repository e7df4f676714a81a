#!/usr/bin/env bash
# Interoperability with real tools, beside `go test`: openssl s_client
# through a tls:// listener, and HAProxy as an L4 balancer sending PROXY v2
# to a proxy+tls:// listener. Needs haproxy, openssl and socat.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh


# The fake WhatsApp chat server echoes; with the origin's PROXY v1 on, its
# first line is the PROXY header the origin sent.
socat TCP-LISTEN:19222,bind=127.0.0.1,fork,reuseaddr EXEC:cat >"$work/echo.log" 2>&1 &
pids+=($!)
wait_port 19222

export FERRY_SECRET=interop-secret-0123456789-0123456789 FERRY_ADMIN=
FERRY_ORIGIN_LISTEN=ws://127.0.0.1:18080/tunnel FERRY_ORIGIN_TARGETS=chat=127.0.0.1:19222 \
  FERRY_ORIGIN_PROXY_PROTOCOL=v1 "$work/ferry" origin >"$work/origin.log" 2>&1 &
pids+=($!)
wait_port 18080
FERRY_EDGE_LISTEN=tls://127.0.0.1:18443/chat?decoy=off,proxy+tls://127.0.0.1:18444/chat?decoy=off \
  FERRY_EDGE_ORIGINS=ws://127.0.0.1:18080/tunnel "$work/ferry" edge >"$work/edge.log" 2>&1 &
pids+=($!)
wait_port 18443
wait_port 18444

cat >"$work/haproxy.cfg" <<CFG
global
  log stderr format raw local0 warning
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend clients
  bind 127.0.0.1:18445
  default_backend ferry
backend ferry
  server edge 127.0.0.1:18444 send-proxy-v2
CFG
haproxy -f "$work/haproxy.cfg" -db >"$work/haproxy.log" 2>&1 &
pids+=($!)
wait_port 18445

# tls_echo PORT FLAG: one line through openssl s_client; prints the reply.
tls_echo() {
  { printf 'hello through %s\n' "$1"; sleep 2; } |
    timeout 10 openssl s_client -connect "127.0.0.1:$1" "$2" -quiet 2>>"$work/s_client.log" || true
}

for flag in -tls1_2 -tls1_3; do
  out=$(tls_echo 18443 "$flag")
  echo "openssl s_client $flag -> tls:// listener: $(echo "$out" | tr '\r\n' '  ')"
  grep -q '^PROXY TCP4 127.0.0.1 ' <<<"$out" || fail "no PROXY header with the client address at the target ($flag)"
  grep -q 'hello through 18443' <<<"$out" || fail "no echo through the tls:// listener ($flag)"
done

out=$(tls_echo 18445 -tls1_3)
echo "openssl s_client -> haproxy send-proxy-v2 -> proxy+tls:// listener: $(echo "$out" | tr '\r\n' '  ')"
grep -q '^PROXY TCP4 127.0.0.1 ' <<<"$out" || fail "no PROXY header at the target through HAProxy"
grep -q 'hello through 18445' <<<"$out" || fail "no echo through HAProxy and the proxy+tls:// listener"

echo "interop: ok"
