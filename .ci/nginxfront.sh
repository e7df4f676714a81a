#!/usr/bin/env bash
# deploy/nginx/ferry-origin.conf as an operator installs it, in front of a
# ferry origin on loopback: a tunnel goes through its 443 (TLS, a
# certificate the edge trusts), GET / serves the site's directory, and the
# secret path answers every request that is not a tunnel, and a tunnel whose
# token is bad, and any upgrade while ferry is down, exactly as a missing
# path does. Neither nginx's logs nor ferry's name the probing client's
# address or the secret path. Needs nginx, openssl, socat and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
http=18190 https=18191 origin=18192 edge=18193 admin=18194 target=19233
name=origin.test
secret=$(openssl rand -hex 16)
client=127.0.0.2 # the address the probes come from, looked for in the logs

socat TCP-LISTEN:$target,bind=127.0.0.1,fork,reuseaddr EXEC:cat >"$work/echo.log" 2>&1 &
pids+=($!)

# A self-signed certificate for the name, which the edge trusts as a root
# (SSL_CERT_FILE): as an operator's certbot certificate would be trusted.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=$name" -addext "subjectAltName=DNS:$name" \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
mkdir -p "$work/www" "$work/nginx"
chmod 711 "$work" # nginx's workers (nobody) read the site's directory
echo '<!doctype html><title>Welcome</title><p>An ordinary page.' >"$work/www/index.html"

# The deploy file with this run's paths, ports and names; each substitution
# must have happened, so that a change to the file cannot slip past.
sed -e '/^ *#/d' -e "s|listen 80;|listen 127.0.0.1:$http;|" \
  -e "s|listen 443 ssl http2;|listen 127.0.0.1:$https ssl http2;|" \
  -e '/listen \[::\]/d' \
  -e "s|/etc/letsencrypt/live/origin.example.com/fullchain.pem|$work/cert.pem|" \
  -e "s|/etc/letsencrypt/live/origin.example.com/privkey.pem|$work/key.pem|" \
  -e "s|origin.example.com|$name|" \
  -e "s|/var/www/html|$work/www|" \
  -e "s|/var/log/nginx/error.log|$work/nginx-error.log|" \
  -e "s|/CHANGE-ME-secret-path|/$secret|" \
  -e "s|127.0.0.1:8080|127.0.0.1:$origin|" \
  deploy/nginx/ferry-origin.conf >"$work/site.conf"
! grep -nE 'example\.com|CHANGE-ME|/etc/|/var/|:8080|listen (80|443)' "$work/site.conf" ||
  fail "deploy/nginx/ferry-origin.conf changed: a substitution above no longer applies"
[ "$(grep -c "/$secret" "$work/site.conf")" = 1 ] || fail "the secret path is not in the site file once"

# As installed (deploy/README.md): in Debian's own nginx.conf, unchanged but
# for the certificate. nginx -t binds no port, so 80 and 443 stay as they are.
cp -r /etc/nginx "$work/etc-nginx"
rm -f "$work/etc-nginx/sites-enabled/"*
sed -i "s|/etc/nginx/|$work/etc-nginx/|g" "$work/etc-nginx/nginx.conf"
sed -e "s|/etc/letsencrypt/live/origin.example.com/fullchain.pem|$work/cert.pem|" \
  -e "s|/etc/letsencrypt/live/origin.example.com/privkey.pem|$work/key.pem|" \
  deploy/nginx/ferry-origin.conf >"$work/etc-nginx/sites-enabled/ferry-origin"
out=$(nginx -t -q -c "$work/etc-nginx/nginx.conf" 2>&1) ||
  fail "nginx -t with Debian's nginx.conf and deploy/nginx/ferry-origin.conf: $out"

cat >"$work/nginx.conf" <<CFG
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log info;
events {}
http {
  include /etc/nginx/mime.types;
  default_type application/octet-stream;
  access_log $work/nginx-access.log;
  client_body_temp_path $work/nginx;
  proxy_temp_path $work/nginx;
  include $work/site.conf;
}
CFG
nginx -c "$work/nginx.conf" >"$work/nginx.log" 2>&1 &
pids+=($!)

export FERRY_SECRET=nginx-front-secret-0123456789-0123456789 FERRY_LOG_LEVEL=debug
FERRY_ADMIN=127.0.0.1:$admin FERRY_ORIGIN_LISTEN=ws://127.0.0.1:$origin/$secret FERRY_ORIGIN_TARGETS=chat=127.0.0.1:$target \
  "$work/ferry" origin >"$work/origin.log" 2>&1 &
origin_pid=$!
pids+=($origin_pid)
wait_port $https
wait_port $origin
wait_port $admin
SSL_CERT_FILE=$work/cert.pem FERRY_ADMIN= FERRY_EDGE_POOL=1 \
  FERRY_EDGE_LISTEN=tcp://127.0.0.1:$edge/chat?decoy=off FERRY_EDGE_ORIGINS=wss://$name:$https/$secret?connect=127.0.0.1:$https \
  "$work/ferry" edge >"$work/edge.log" 2>&1 &
pids+=($!)
wait_port $edge

# The tunnel: one line through edge, nginx and origin to the echo target.
# socat half-closes after the line and waits (-t) for the echo's end.
got=$(echo through-nginx | timeout 5 socat -t 5 - TCP:127.0.0.1:$edge 2>/dev/null) || true
[ "$got" = through-nginx ] || fail "no echo through the tunnel behind nginx"
echo "a tunnel through deploy/nginx/ferry-origin.conf carried an echo"

# probe SCHEME METHOD PATH [curl options]: "status hash-of-body header-names"
# of one request from $client, over HTTP/2 on https (as a browser) and
# HTTP/1.1 on http.
probe() {
  local scheme=$1 method=$2 path=$3 port=$http; shift 3
  [ "$scheme" = https ] && port=$https
  local how=(-X "$method" -o "$work/body")
  [ "$method" = HEAD ] && how=(-I -o /dev/null) # -I writes the headers as the body
  [ "$path" = "/$secret" ] || echo >>"$work/site-requests" # one line of the access log each
  : >"$work/head"
  : >"$work/body"
  curl -sS --max-time 5 --interface $client --resolve "$name:$port:127.0.0.1" --cacert "$work/cert.pem" \
    "${how[@]}" -D "$work/head" "$@" "$scheme://$name:$port$path" >/dev/null ||
    fail "curl $method $scheme://$name:$port/..."
  printf '%s %s %s\n' "$(head -1 "$work/head" | awk '{print $2}')" \
    "$(sha256sum <"$work/body" | cut -c1-16)" \
    "$(sed 1d "$work/head" | cut -d: -f1 | tr -d '\r' | tr A-Z a-z | grep -v '^date$' | sort | tr '\n' ' ')"
}
upgrade=(--http1.1 -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13'
  -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' # a token of the right size, which no secret made,
  -H "Cookie: sid=$(printf 'A%.0s' $(seq 76))" -H "Authorization: Bearer $(printf 'A%.0s' $(seq 76))") # where edges have put it
metric() { curl -s "http://127.0.0.1:$admin/metrics" | awk -v m="$1" '$1 ~ "^"m {s += $2} END {print s + 0}'; }

read -r status _ < <(probe https GET /)
[ "$status" = 200 ] && cmp -s "$work/body" "$work/www/index.html" || fail "GET / is not the directory's index.html ($status)"
echo "GET / serves the directory"

for scheme in https http; do
  for method in GET HEAD POST PUT DELETE OPTIONS; do
    want=$(probe $scheme $method /no-such-page-here)
    got=$(probe $scheme $method "/$secret")
    [ "$got" = "$want" ] || fail "$method $scheme /SECRET: '$got', a missing path: '$want'"
  done
done
for method in POST PUT; do # an upgrade only with GET, as ferry's listener has it
  got=$(probe http $method "/$secret" "${upgrade[@]}")
  [ "$got" = "$(probe http $method /no-such-page-here --http1.1)" ] || fail "$method /SECRET with Upgrade: '$got'"
done
echo "the secret path without an upgrade answers as a missing path: $want"
[ "$(metric ferry_decoy_hits_total)" = 0 ] || fail "a request that is not an upgrade reached ferry"

want=$(probe https GET /no-such-page-here)
for scheme in https http; do
  got=$(probe $scheme GET "/$secret" "${upgrade[@]}")
  [ "$got" = "$(probe $scheme GET /no-such-page-here --http1.1)" ] || fail "a bad token over $scheme: '$got'"
done
[ "$(metric ferry_tunnel_auth_failures_total)" = 2 ] || fail "the bad tokens did not reach ferry"
echo "an upgrade with a bad token reaches ferry, is refused, and gets nginx's 404: $got"

kill "$origin_pid"
wait "$origin_pid" 2>/dev/null || true
got=$(probe https GET "/$secret" "${upgrade[@]}")
[ "$got" = "$(probe https GET /no-such-page-here --http1.1)" ] || fail "an upgrade while ferry is down: '$got'"
echo "an upgrade while ferry is down gets nginx's 404 too"

# Logs. The site's own access log names $client (nginx's default, the
# operator's choice): the check below is not vacuous. Nothing for the
# secret path names it, or the path.
site=$(wc -l <"$work/site-requests")
[ "$(grep -c "^$client .*\"[A-Z]* /[a-z-]* HTTP" "$work/nginx-access.log")" = "$site" ] ||
  fail "the access log does not have the $site lines of the site's requests: is the check below vacuous?"
[ "$(wc -l <"$work/nginx-access.log")" = "$site" ] || fail "the access log has lines for the secret path"
# (ferry's own start line shows its configuration, the path included.)
! grep -n "$secret" "$work"/nginx-*.log || fail "the secret path is in nginx's log"
! grep -n "$client" "$work"/origin.log "$work"/edge.log || fail "ferry logged $client"
! grep -n "$client.*$secret\|$secret.*$client" "$work"/nginx-error.log || fail "nginx's error log names $client for the secret path"
echo "no nginx log line names the secret path, and only the site's own access lines name the client"
