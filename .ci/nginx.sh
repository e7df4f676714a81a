#!/usr/bin/env bash
# A tunnel through a real nginx WebSocket reverse proxy whose
# proxy_read_timeout is 20 s: idle for 60 s, it must carry a new client at
# once, with no reconnect in between. The edge dials the proxy by a name
# (tunnel.test) that nginx passes on in the Host header, as a CDN does: the
# token is bound to it. Needs nginx and socat.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
echo_once() { # PORT MSG: one line through the edge, with a 3 s limit
  { printf '%s\n' "$2"; sleep 1; } | timeout 3 socat - "TCP:127.0.0.1:$1" 2>/dev/null | head -1
}

socat TCP-LISTEN:19223,bind=127.0.0.1,fork,reuseaddr EXEC:cat >"$work/echo.log" 2>&1 &
pids+=($!)

mkdir -p "$work/nginx"
cat >"$work/nginx.conf" <<CFG
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log info;
events {}
http {
  access_log off;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  server {
    listen 127.0.0.1:18090;
    location /tunnel {
      proxy_pass http://127.0.0.1:18091;
      proxy_http_version 1.1;
      proxy_set_header Host \$host;
      proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_read_timeout 20s;
      proxy_send_timeout 20s;
    }
  }
}
CFG
nginx -c "$work/nginx.conf" >"$work/nginx.log" 2>&1 &
pids+=($!)

export FERRY_SECRET=nginx-secret-0123456789-0123456789 FERRY_ADMIN=
FERRY_ORIGIN_LISTEN=ws://127.0.0.1:18091/tunnel FERRY_ORIGIN_TARGETS=chat=127.0.0.1:19223 \
  "$work/ferry" origin >"$work/origin.log" 2>&1 &
pids+=($!)
wait_port 18090
wait_port 18091
FERRY_EDGE_LISTEN=tcp://127.0.0.1:18092/chat?decoy=off FERRY_EDGE_ORIGINS=ws://tunnel.test:18090/tunnel?connect=127.0.0.1:18090 FERRY_EDGE_POOL=1 \
  "$work/ferry" edge >"$work/edge.log" 2>&1 &
pids+=($!)
wait_port 18092

[ "$(echo_once 18092 before)" = before ] || fail "no echo through nginx"
echo "echo through nginx works; the tunnel now idles for 60 s"
sleep 60
[ "$(echo_once 18092 after)" = after ] || fail "no echo after 60 s idle"
ups=$(grep -c 'tunnel up' "$work/edge.log" || true)
downs=$(grep -c 'tunnel down' "$work/edge.log" || true)
[ "$ups" = 1 ] && [ "$downs" = 0 ] || fail "the tunnel reconnected ($ups up, $downs down)"
echo "nginx (proxy_read_timeout 20s): the tunnel idled 60 s and carried a new client with no reconnect"
