#!/usr/bin/env bash
# deploy/firewall/cdn-only.sh's ruleset applied for real, in a network
# namespace of this script's own (the "origin", 192.0.2.1 and 2001:db8::1)
# reached over a veth pair from another (the "Internet"): a source in the
# ranges gets through to 443, one outside them does not, the outsider
# still reaches another port (22), and applying a new list replaces the old
# one. Needs root, iproute2, nftables and socat.
set -euo pipefail
cd "$(dirname "$0")/.."

. .ci/lib.sh
id=$$
srv=ferry-cdn-srv-$id cli=ferry-cdn-cli-$id
trap 'ip netns del "$srv" 2>/dev/null || true; ip netns del "$cli" 2>/dev/null || true; cleanup' EXIT
ip netns add "$srv"
ip netns add "$cli"
ip link add "fc$id" netns "$srv" type veth peer name "fc$id" netns "$cli"
ip -n "$srv" addr add 192.0.2.1/24 dev "fc$id"
ip -n "$srv" addr add 2001:db8::1/64 dev "fc$id" nodad
ip -n "$cli" addr add 192.0.2.2/24 dev "fc$id"
ip -n "$cli" addr add 192.0.2.3/24 dev "fc$id"
ip -n "$cli" addr add 2001:db8::2/64 dev "fc$id" nodad
ip -n "$cli" addr add 2001:db8::3/64 dev "fc$id" nodad
for ns in "$srv" "$cli"; do
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "fc$id" up
done

for port in 443 22; do
  ip netns exec "$srv" socat TCP6-LISTEN:$port,ipv6only=0,fork,reuseaddr EXEC:cat >"$work/listen-$port.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do
  [ "$(ip netns exec "$srv" ss -Hltn | grep -c ':443 \|:22 ')" = 2 ] && break
  sleep 0.1
done

# reach SRC DST PORT: whether a line sent from SRC comes back from DST:PORT;
# a dropped SYN is given up after 1 s.
reach() {
  local got
  got=$(echo hello | ip netns exec "$cli" timeout 5 socat -t 2 - "TCP:$2:$3,bind=$1,connect-timeout=1" 2>/dev/null) || true
  [ "$got" = hello ]
}
apply() { # RANGES-FILE...
  deploy/firewall/cdn-only.sh "$@" >"$work/cdn-only.nft" || fail "cdn-only.sh $*"
  ip netns exec "$srv" nft -f "$work/cdn-only.nft" || fail "nft -f: $(cat "$work/cdn-only.nft")"
}

reach 192.0.2.3 192.0.2.1 443 || fail "no echo from the listener before any ruleset"
printf '192.0.2.2/32\n2001:db8::2/128\n' >"$work/cdn.txt"
apply deploy/firewall/testdata/cloudflare.txt "$work/cdn.txt"
reach 192.0.2.2 192.0.2.1 443 || fail "a CDN address (IPv4) did not get through"
reach '[2001:db8::2]' '[2001:db8::1]' 443 || fail "a CDN address (IPv6) did not get through"
! reach 192.0.2.3 192.0.2.1 443 || fail "an address outside the CDN's ranges got through (IPv4)"
! reach '[2001:db8::3]' '[2001:db8::1]' 443 || fail "an address outside the CDN's ranges got through (IPv6)"
reach 192.0.2.3 192.0.2.1 22 || fail "another port than 80 and 443 was closed"
dropped=$(ip netns exec "$srv" nft list chain inet ferry_cdn_only web | grep -o 'packets [0-9]*' | cut -d' ' -f2)
[ "$dropped" -ge 2 ] || fail "the drop rule counted $dropped packets"
echo "cdn-only.sh's ruleset: CDN sources reach 443, others do not ($dropped packets dropped), port 22 untouched"

printf '192.0.2.3/32\n' >"$work/cdn.txt"
apply "$work/cdn.txt"
apply "$work/cdn.txt" # twice: it replaces its own table
reach 192.0.2.3 192.0.2.1 443 || fail "the new list's address did not get through"
! reach 192.0.2.2 192.0.2.1 443 || fail "the old list's address still gets through"
[ "$(ip netns exec "$srv" nft list tables | grep -c ferry_cdn_only)" = 1 ] || fail "more than one table"
echo "applied again with a new list, the ruleset replaced the old ranges"
