# Shared by the CI scripts that run ferry beside real tools: a scratch
# directory, background processes stopped at exit, and helpers.
# Source it after `set -euo pipefail` and `cd` to the repository.

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# fail MESSAGE: prints it and the tails of every log, and exits 1.
fail() {
  echo "FAIL: $*"
  for f in "$work"/*.log; do echo "--- $f"; tail -n 30 "$f"; done
  exit 1
}

# wait_port PORT: waits up to 10 s for a listener on 127.0.0.1:PORT.
wait_port() {
  for _ in $(seq 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  fail "nothing listens on port $1"
}

go build -o "$work/ferry" ./cmd/ferry
