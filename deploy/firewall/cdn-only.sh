#!/usr/bin/env bash
# cdn-only.sh: an nftables ruleset that lets only a CDN's address ranges
# reach this host's web ports (TCP and UDP, so HTTP/3 too), for an origin
# behind the CDN: a censor who scans the origin's address sees nothing that
# answers. Other ports (SSH among them) and loopback are left alone.
#
#   cdn-only.sh [-p PORTS] RANGES-FILE... > cdn-only.nft && nft -f cdn-only.nft
#
# Each RANGES-FILE (- for standard input) holds one IPv4 or IPv6 address or
# CIDR range a line, as Cloudflare publishes them
# (https://www.cloudflare.com/ips-v4, https://www.cloudflare.com/ips-v6);
# blank lines and # comments are skipped. PORTS is a comma-separated list,
# "80,443" by default. The ruleset replaces its own table (inet
# ferry_cdn_only) and nothing else, so running it again updates the ranges.
#
# A list that fails to download comes back as an error page or nothing, and
# a ruleset made from it would shut the CDN out too: any line that is not an
# address range, or no range at all, is refused (exit 1, nothing written).
set -euo pipefail
export LC_ALL=C # bytes: in some locales [a-f] matches more than six letters


usage() {
  echo "usage: cdn-only.sh [-p PORTS] RANGES-FILE..." >&2
  exit 2
}
die() {
  echo "cdn-only.sh: $*" >&2
  exit 1
}

ports=80,443
while getopts p: opt; do
  case $opt in
    p) ports=$OPTARG ;;
    *) usage ;;
  esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
ports=${ports// /}
[[ $ports =~ ^[0-9]{1,5}(,[0-9]{1,5})*$ ]] || die "-p $ports: not a comma-separated list of ports"
IFS=, read -ra list <<<"$ports"
for p in "${list[@]}"; do
  ((10#$p >= 1 && 10#$p <= 65535)) || die "-p: $p is not a port"
done

# is_v4 RANGE: an IPv4 address, optionally /0 to /32, without leading zeros
# (which some parsers read as octal).
is_v4() {
  local octet='(0|[1-9][0-9]{0,2})' o
  [[ $1 =~ ^$octet\.$octet\.$octet\.$octet(/(0|[1-9][0-9]?))?$ ]] || return 1
  for o in "${BASH_REMATCH[1]}" "${BASH_REMATCH[2]}" "${BASH_REMATCH[3]}" "${BASH_REMATCH[4]}"; do
    ((o <= 255)) || return 1
  done
  [ -z "${BASH_REMATCH[6]}" ] || ((BASH_REMATCH[6] <= 32))
}

# groups PART: how many 16-bit groups PART (hex groups between colons)
# holds, or failure if it is not such a list; empty holds 0.
groups() {
  [ -n "$1" ] || { echo 0; return 0; }
  [[ $1 =~ ^[0-9a-fA-F]{1,4}(:[0-9a-fA-F]{1,4})*$ ]] || return 1
  local colons=${1//[^:]/}
  echo $((${#colons} + 1))
}

# is_v6 RANGE: an IPv6 address in hex groups, at most one "::", optionally
# /0 to /128 (no embedded IPv4 and no zone: no CDN list uses them).
is_v6() {
  local addr=$1 bits='' head tail nh nt
  if [[ $addr == */* ]]; then
    bits=${addr#*/} addr=${addr%%/*}
    [[ $bits =~ ^(0|[1-9][0-9]{0,2})$ ]] && ((bits <= 128)) || return 1
  fi
  if [[ $addr == *::* ]]; then
    head=${addr%%::*} tail=${addr#*::}
    [[ $tail != *::* ]] || return 1
    nh=$(groups "$head") && nt=$(groups "$tail") || return 1
    ((nh + nt <= 7))
  else
    [ "$(groups "$addr")" = 8 ]
  fi
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
v4=() v6=()
for f in "$@"; do
  name=$f
  [ "$f" = - ] && name=stdin f=/dev/stdin
  cat -- "$f" >"$tmp" 2>/dev/null || die "$name: cannot read it"
  # read drops NUL bytes without a word, which would join what is around them.
  [ "$(tr -d '\000' <"$tmp" | wc -c)" = "$(wc -c <"$tmp")" ] || die "$name: a NUL byte; refusing the whole list"
  n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%%#*}
    line=${line#"${line%%[![:space:]]*}"} # leading blanks
    line=${line%"${line##*[![:space:]]}"} # trailing blanks and CR
    [ -n "$line" ] || continue
    if is_v4 "$line"; then
      v4+=("$line")
    elif is_v6 "$line"; then
      v6+=("$line")
    else
      die "$name:$n: not an IPv4 or IPv6 address range; refusing the whole list (a failed download?)"
    fi
  done <"$tmp"
done
((${#v4[@]} + ${#v6[@]} > 0)) || die "no address ranges in $*: refusing a ruleset that would shut the CDN out"

# set_of NAME TYPE RANGE...: one interval set; auto-merge, because some CDNs'
# lists overlap and nft refuses overlapping intervals otherwise.
set_of() {
  local name=$1 type=$2
  shift 2
  printf '\tset %s {\n\t\ttype %s\n\t\tflags interval\n\t\tauto-merge\n' "$name" "$type"
  if [ $# -gt 0 ]; then
    local elements
    printf -v elements '%s, ' "$@"
    printf '\t\telements = { %s }\n' "${elements%, }"
  fi
  printf '\t}\n'
}

# The empty "table" line makes "delete" work the first time too; nft
# applies the file as one transaction, so the ports are never open between.
cat <<NFT
#!/usr/sbin/nft -f
# Made by cdn-only.sh: only these ranges reach ports ${ports//,/, }.
table inet ferry_cdn_only
delete table inet ferry_cdn_only
table inet ferry_cdn_only {
$(set_of cdn4 ipv4_addr ${v4[@]+"${v4[@]}"})
$(set_of cdn6 ipv6_addr ${v6[@]+"${v6[@]}"})
	chain input {
		type filter hook input priority filter; policy accept;
		iif "lo" accept
		meta l4proto { tcp, udp } th dport { ${ports//,/, } } jump web
	}
	chain web {
		ip saddr @cdn4 accept
		ip6 saddr @cdn6 accept
		counter drop
	}
}
NFT
