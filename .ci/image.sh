#!/usr/bin/env bash
# The container image (release/image.sh, deploy/Dockerfile) is built from
# the release binary that .ci/release.sh left in dist/, then runs `ferry
# standalone` with the edge's ports mapped to high loopback ports: every
# port accepts, the web site answers on 80 and (inside TLS) on 443, and the
# image's HEALTHCHECK reports healthy. With no engine running, it starts
# dockerd of its own (no iptables rules) and stops it by its pid at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
name=ferry-ci-$$
own_dockerd=
own_bridge=
stop_all() {
  docker rm -f "$name" >/dev/null 2>&1 || true
  if [ -n "$own_dockerd" ]; then
    kill "$own_dockerd" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$own_dockerd" 2>/dev/null || break; sleep 0.1; done
  fi
  if [ -n "$own_bridge" ]; then ip link delete "$own_bridge" 2>/dev/null || true; fi
  cleanup
}
trap stop_all EXIT

if ! docker info >/dev/null 2>&1; then
  mkdir -p "$work/docker"
  export DOCKER_HOST=unix://$work/docker/docker.sock
  # No iptables rules and no ip_forward: Docker would otherwise set the
  # host's FORWARD policy to DROP, under the network-namespace tests that
  # run after this. Published loopback ports go through docker-proxy, which
  # needs neither.
  ip link show docker0 >/dev/null 2>&1 || own_bridge=docker0
  dockerd --data-root "$work/docker/data" --exec-root "$work/docker/exec" \
    --pidfile "$work/docker/pid" -H "$DOCKER_HOST" --iptables=false --ip-forward=false \
    >"$work/dockerd.log" 2>&1 &
  own_dockerd=$!
  for _ in $(seq 300); do docker info >/dev/null 2>&1 && break; sleep 0.1; done
  docker info >/dev/null 2>&1 || fail "dockerd did not start"
fi
echo "docker engine $(docker version --format '{{.Server.Version}}')"

release/image.sh -o dist >"$work/image.log" 2>&1 || fail "release/image.sh"
tail -n 1 "$work/image.log"
[ "$(docker inspect --format '{{.Config.User}}' ferry:latest)" = 65532:65532 ] || fail "the image does not run as 65532:65532"

# Host ports: 443 80 5222 587 7777 plus 20000.
docker run -d --name "$name" --health-interval 1s --health-start-period 1s --health-timeout 5s \
  -p 127.0.0.1:20443:443 -p 127.0.0.1:20080:80 -p 127.0.0.1:25222:5222 \
  -p 127.0.0.1:20587:587 -p 127.0.0.1:27777:7777 ferry:latest standalone >/dev/null \
  || fail "docker run"
for port in 20443 20080 25222 20587 27777; do wait_port "$port"; done

# docker-proxy accepts on the host before ferry does; the web site's answer
# proves ferry is behind each of these.
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:20080/" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null -w 'port 80: HTTP %{http_code}\n' "http://127.0.0.1:20080/" || fail "no web site on port 80"
curl -fsSk -o /dev/null -w 'port 443: HTTPS %{http_code}\n' "https://127.0.0.1:20443/" || fail "no web site inside TLS on 443"
curl -fsS -o /dev/null -w 'port 5222: HTTP %{http_code}\n' "http://127.0.0.1:25222/" || fail "no web site on port 5222"

for _ in $(seq 300); do
  status=$(docker inspect --format '{{.State.Health.Status}}' "$name")
  [ "$status" = healthy ] && break
  [ "$status" = unhealthy ] && break
  sleep 0.1
done
[ "$status" = healthy ] || { docker logs "$name" 2>&1 | tail -n 20; fail "healthcheck: $status"; }
echo "healthcheck: $status"
docker logs "$name" 2>&1 | grep -q 'ferry standalone starting' || fail "no start line in the container's log"
# A non-root user binding 80 and 443: either the file capability or
# Docker's ip_unprivileged_port_start=0 did it; check the capability alone.
docker rm -f "$name" >/dev/null
docker run -d --name "$name" --sysctl net.ipv4.ip_unprivileged_port_start=1024 \
  -p 127.0.0.1:20080:80 -e FERRY_EDGE_LISTEN=tcp://:80/chat80 ferry:latest standalone >/dev/null || fail "docker run"
for _ in $(seq 100); do
  curl -fsS -o /dev/null "http://127.0.0.1:20080/" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null -w 'port 80 by the file capability alone: HTTP %{http_code}\n' "http://127.0.0.1:20080/" \
  || { docker logs "$name" 2>&1 | tail -n 5; fail "uid 65532 cannot bind 80 with the file capability alone"; }
