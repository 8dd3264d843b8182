#!/usr/bin/env bash
# JS-to-JS self test of peer.mjs: an ethereumjs listener and an ethereumjs
# dialer on 127.0.0.1 exchange Hello and one `test` message each, then both
# must print HELLO / RECEIVED 1 <hex> / OK and exit 0.
set -euo pipefail

cd "$(dirname "$0")"

if [ ! -d node_modules ]; then
  echo "selftest: node_modules missing, running npm ci" >&2
  npm ci --no-audit --no-fund >&2
fi

work=$(mktemp -d)
listener_pid=
cleanup() {
  if [ -n "$listener_pid" ] && kill -0 "$listener_pid" 2>/dev/null; then
    kill "$listener_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

randkey() { node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("hex"))'; }
key_l=$(randkey)
key_d=$(randkey)

node peer.mjs listen --key "$key_l" --port 0 >"$work/listen.out" 2>"$work/listen.err" &
listener_pid=$!

# Wait (max 10 s) for the ENODE line.
enode=
for _ in $(seq 1 100); do
  line=$(grep -m1 '^ENODE ' "$work/listen.out" 2>/dev/null || true)
  if [ -n "$line" ]; then enode=${line#ENODE }; break; fi
  if ! kill -0 "$listener_pid" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$enode" ]; then
  echo "selftest: listener printed no ENODE line" >&2
  cat "$work/listen.out" "$work/listen.err" >&2
  exit 1
fi
echo "selftest: listener at $enode" >&2

set +e
node peer.mjs dial --key "$key_d" --enode "$enode" >"$work/dial.out" 2>"$work/dial.err"
dial_rc=$?
wait "$listener_pid"
listen_rc=$?
listener_pid=
set -e

expected_hex=$(node --input-type=module -e '
import { RLP } from "@ethereumjs/rlp"
process.stdout.write(Buffer.from(RLP.encode([Buffer.from("hello from ethereumjs")])).toString("hex"))')

lib_version=$(node -p 'require("./node_modules/@ethereumjs/devp2p/package.json").version')

check() { # name rc outfile expected-first-lines...
  local name=$1 rc=$2 file=$3
  shift 3
  local want got
  want=$(printf '%s\n' "$@")
  got=$(grep -v '^ENODE ' "$file" || true)
  if [ "$rc" -ne 0 ] || [ "$got" != "$want" ]; then
    echo "selftest: $name FAILED (exit $rc)" >&2
    echo "--- expected stdout:" >&2; echo "$want" >&2
    echo "--- got stdout:" >&2; cat "$file" >&2
    echo "--- stderr:" >&2; cat "${file%.out}.err" >&2
    return 1
  fi
  echo "selftest: $name ok (exit 0)" >&2
}

echo "--- listener stdout"; cat "$work/listen.out"
echo "--- dialer stdout"; cat "$work/dial.out"

status=0
check listener "$listen_rc" "$work/listen.out" \
  "HELLO ethereumjs-devp2p/$lib_version 5" "RECEIVED 1 $expected_hex" "OK" || status=1
check dialer "$dial_rc" "$work/dial.out" \
  "HELLO ethereumjs-devp2p/$lib_version 5" "RECEIVED 1 $expected_hex" "OK" || status=1
head -1 "$work/listen.out" | grep -Eq '^ENODE enode://[0-9a-f]{128}@127\.0\.0\.1:[0-9]+$' || {
  echo "selftest: bad ENODE line" >&2; status=1; }

if [ "$status" -eq 0 ]; then echo "selftest: PASS"; else echo "selftest: FAIL"; fi
exit "$status"
