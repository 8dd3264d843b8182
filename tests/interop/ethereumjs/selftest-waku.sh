#!/usr/bin/env bash
# JS-to-JS self test of `peer.mjs --proto waku`, plus the vector self-check.
#   1. node waku-selfcheck.mjs            (waku.mjs against tests/vectors/waku.json)
#   2. signed <-> signed, same chat       both: HELLO, STATUS, STATUS_POW, SENT, OPENED <the other's
#                                          envelope, signer, text>, OK; exit 0
#   3. unsigned 300-byte text <-> signed empty text (2-byte size field, signer "none", empty payload)
#   4. different chats                    envelopes ignored (other topic) -> ERROR (listener: timeout), exit 1
# Only 127.0.0.1 is used.
set -euo pipefail

cd "$(dirname "$0")"

if [ ! -d node_modules ]; then
  echo "selftest-waku: node_modules missing, running npm ci" >&2
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

status=0
randkey() { node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("hex"))'; }
pubkey() { node -e 'const {secp256k1}=require("ethereum-cryptography/secp256k1");process.stdout.write(Buffer.from(secp256k1.getPublicKey(process.argv[1],false)).toString("hex"))' "$1"; }
lib_version=$(node -p 'require("./node_modules/@ethereumjs/devp2p/package.json").version')
# The Status every waku-mode peer.mjs sends (pow 0.000002, full bloom, ...).
our_status=$(node --input-type=module -e '
import { encodeStatusOptions, hex } from "./waku.mjs"
process.stdout.write(hex(encodeStatusOptions({ pow: 0.000002, bloom: new Uint8Array(64).fill(0xff),
  lightNode: false, confirmations: false, packetRateLimits: [0, 0, 0], bytesRateLimits: [0, 0, 0] })))')

# ------------------------------------------------------------------ 1. vectors
echo "=== node waku-selfcheck.mjs"
if node waku-selfcheck.mjs >"$work/selfcheck.out" 2>&1; then
  tail -1 "$work/selfcheck.out"
else
  cat "$work/selfcheck.out"
  echo "selftest-waku: selfcheck FAILED" >&2
  status=1
fi

# ------------------------------------------------------------------ helpers
# run_pair <name> <timeout-ms> -- <listener waku args...> -- <dialer waku args...>
# leaves $work/<name>.{listen,dial}.{out,err} and sets listen_rc / dial_rc
run_pair() {
  local name=$1 tmo=$2
  shift 3
  local largs=() dargs=()
  while [ "$1" != "--" ]; do largs+=("$1"); shift; done
  shift
  dargs=("$@")
  local lo="$work/$name.listen.out" le="$work/$name.listen.err"
  local do="$work/$name.dial.out" de="$work/$name.dial.err"
  node peer.mjs listen --proto waku --key "$(randkey)" --port 0 --timeout-ms "$tmo" "${largs[@]}" >"$lo" 2>"$le" &
  listener_pid=$!
  local enode= line
  for _ in $(seq 1 100); do
    line=$(grep -m1 '^ENODE ' "$lo" 2>/dev/null || true)
    if [ -n "$line" ]; then enode=${line#ENODE }; break; fi
    if ! kill -0 "$listener_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  if [ -z "$enode" ]; then
    echo "selftest-waku: $name: listener printed no ENODE line" >&2
    cat "$lo" "$le" >&2
    return 1
  fi
  set +e
  node peer.mjs dial --proto waku --key "$(randkey)" --enode "$enode" --timeout-ms "$tmo" "${dargs[@]}" >"$do" 2>"$de"
  dial_rc=$?
  wait "$listener_pid"
  listen_rc=$?
  listener_pid=
  set -e
  echo "--- $name: listener stdout (exit $listen_rc)"; cat "$lo"
  echo "--- $name: dialer stdout (exit $dial_rc)"; cat "$do"
}

field() { grep -m1 "^$1 " "$2" | cut -d' ' -f"$3"; }

# check_ok <name> <side> <outfile> <rc> <other outfile> <expected signer|none> <expected text>
check_ok() {
  local name=$1 side=$2 file=$3 rc=$4 other=$5 signer=$6 text=$7
  local sent_hash sent_pow other_hash other_pow want got
  sent_hash=$(field SENT "$file" 2)
  sent_pow=$(field SENT "$file" 3)
  other_hash=$(field SENT "$other" 2)
  other_pow=$(field SENT "$other" 3)
  want=$(printf '%s\n' "HELLO ethereumjs-devp2p/$lib_version 5" "STATUS $our_status" "STATUS_POW 0.000002" \
    "SENT $sent_hash $sent_pow" "OPENED $other_hash $other_pow $signer $text" "OK")
  got=$(grep -v '^ENODE ' "$file" || true)
  local bad=
  [ "$rc" -eq 0 ] || bad="exit $rc"
  [ "$got" = "$want" ] || bad="$bad stdout mismatch"
  [[ "$sent_hash" =~ ^[0-9a-f]{64}$ ]] || bad="$bad bad SENT hash"
  [[ "$other_hash" =~ ^[0-9a-f]{64}$ ]] || bad="$bad bad SENT hash of the other side"
  node -e 'process.exit(Number(process.argv[1]) >= 0.002 ? 0 : 1)' "$sent_pow" || bad="$bad SENT pow $sent_pow < 0.002"
  if [ -n "$bad" ]; then
    echo "selftest-waku: $name $side FAILED ($bad)" >&2
    echo "--- expected stdout:" >&2; echo "$want" >&2
    echo "--- got stdout:" >&2; echo "$got" >&2
    echo "--- stderr:" >&2; cat "${file%.out}.err" >&2
    return 1
  fi
  echo "selftest-waku: $name $side ok"
}

# ------------------------------------------------------------------ 2. signed <-> signed
sk_l=$(randkey); sk_d=$(randkey)
pub_l=$(pubkey "$sk_l"); pub_d=$(pubkey "$sk_d")
text_l='héllo from the listener: ünïcode & spaces  ok'
text_d='hi from the dialer'
echo "=== signed <-> signed (chat test-chat)"
run_pair signed 15000 -- --chat test-chat --text "$text_l" --sign-key "$sk_l" \
  -- --chat test-chat --text "$text_d" --sign-key "$sk_d" || status=1
check_ok signed listener "$work/signed.listen.out" "$listen_rc" "$work/signed.dial.out" "$pub_d" "$text_d" || status=1
check_ok signed dialer "$work/signed.dial.out" "$dial_rc" "$work/signed.listen.out" "$pub_l" "$text_l" || status=1
head -1 "$work/signed.listen.out" | grep -Eq '^ENODE enode://[0-9a-f]{128}@127\.0\.0\.1:[0-9]+$' || {
  echo "selftest-waku: bad ENODE line" >&2; status=1; }

# ------------------------------------------------------------------ 3. unsigned long text <-> signed empty text
long_text=$(printf 'x%.0s' $(seq 1 300))
echo "=== unsigned 300-byte text <-> signed empty text (chat status)"
run_pair mixed 15000 -- --chat status --text "$long_text" \
  -- --chat status --text "" --sign-key "$sk_d" || status=1
check_ok mixed listener "$work/mixed.listen.out" "$listen_rc" "$work/mixed.dial.out" "$pub_d" "" || status=1
check_ok mixed dialer "$work/mixed.dial.out" "$dial_rc" "$work/mixed.listen.out" "none" "$long_text" || status=1

# ------------------------------------------------------------------ 4. different chats -> nothing opened
echo "=== different chats (expect ERROR: nothing on our topic)"
run_pair otherchat 3000 -- --chat chat-one --sign-key "$sk_l" -- --chat chat-two --sign-key "$sk_d" || status=1
for side in listen dial; do
  f="$work/otherchat.$side.out"
  rc=$([ "$side" = listen ] && echo "$listen_rc" || echo "$dial_rc")
  # The listener started first, so it times out first; the dialer then sees
  # the connection go away (any ERROR is fine there).
  want_err='^ERROR '; [ "$side" = listen ] && want_err='^ERROR timeout after 3000 ms$'
  if [ "$rc" -eq 1 ] && grep -q '^SENT ' "$f" && ! grep -q '^OPENED ' "$f" && tail -1 "$f" | grep -Eq "$want_err"; then
    echo "selftest-waku: otherchat $side ok (exit 1, envelope on the other topic ignored)"
  else
    echo "selftest-waku: otherchat $side FAILED (exit $rc)" >&2; cat "$f" >&2; status=1
  fi
done

if [ "$status" -eq 0 ]; then echo "selftest-waku: PASS"; else echo "selftest-waku: FAIL"; fi
exit "$status"
