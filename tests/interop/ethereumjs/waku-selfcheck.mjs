#!/usr/bin/env node
// Checks waku.mjs against tests/vectors/waku.json (status-go oracle
// vectors) and the self-computed examples of docs/protocol/waku.md.
//
//   node waku-selfcheck.mjs [path/to/waku.json]
//
// Prints one line per check; exits 1 if any check fails, 2 if the vector file
// cannot be read.

import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

import { RLP } from '@ethereumjs/rlp'

import {
  bitsToF64,
  bloomMatches,
  buildPlaintext,
  decodeEnvelope,
  decodeStatusOptions,
  decryptSymmetric,
  encodeStatusOptions,
  encryptSymmetric,
  envelopeRlp,
  f64ToBits,
  hex,
  keccak256,
  parsePlaintext,
  powOf,
  rlpListOfEncoded,
  publicKeyOf,
  sealEnvelope,
  shortRlp,
  splitRlpList,
  symKeyFromPassword,
  topicBloomGo,
  topicFromName,
  unhex,
  utf8,
} from './waku.mjs'

const vectorPath = process.argv[2] ?? fileURLToPath(new URL('../../vectors/waku.json', import.meta.url))
let V
try {
  V = JSON.parse(readFileSync(vectorPath, 'utf8'))
} catch (e) {
  console.log(`selfcheck: cannot read ${vectorPath}: ${e.message}`)
  process.exit(2)
}

let failures = 0
let passes = 0
function check(name, got, want) {
  const g = typeof got === 'string' ? got : JSON.stringify(got, (_, v) => (typeof v === 'bigint' ? v.toString() : v))
  const w = typeof want === 'string' ? want : JSON.stringify(want, (_, v) => (typeof v === 'bigint' ? v.toString() : v))
  if (g === w) {
    passes++
    console.log(`ok   ${name}`)
  } else {
    failures++
    console.log(`FAIL ${name}\n     got  ${g}\n     want ${w}`)
  }
}
function checkThrows(name, fn) {
  try {
    fn()
    failures++
    console.log(`FAIL ${name}: no error`)
  } catch (e) {
    passes++
    console.log(`ok   ${name} (${e.message})`)
  }
}
const bitsHex = (f) => f64ToBits(f).toString(16).padStart(16, '0')

// ---------------------------------------------------------------- spec examples

check('spec: topic("status")', hex(topicFromName('status')), 'cd423760')
check('spec: PBKDF2("status")', hex(symKeyFromPassword('status')), '36224048e42c49e5c59c57bba5024fbb8822d6b4ee6ac5fbefd8b77f5323ecc4')
{
  const env = { expiry: 1600000050, ttl: 50, topic: unhex('cd423760'), data: unhex('0102030405060708090a0b0c0d0e0f10'), nonce: 0x1234 }
  const short = shortRlp(env)
  check('spec §3: short rlp', hex(short), 'dc845f5e10323284cd423760900102030405060708090a0b0c0d0e0f10')
  const raw = envelopeRlp(env)
  check('spec §3: envelope rlp', hex(raw), 'df845f5e10323284cd423760900102030405060708090a0b0c0d0e0f10821234')
  check('spec §3: hash', hex(keccak256(raw)), 'a631530c7e6c8e044f02262b15b22009947cb1980b74d4e048ec7db06c1d7ab6')
  const p = powOf(short, env.ttl, env.nonce)
  check('spec §3: pow hash / bits / pow', [hex(p.powHash), p.bits, p.pow], ['5e9119c64adc7ee7faae9989e629b12d7f8d36c50371bf28e053b8bb352b83c6', 1, 0.001379310344827586])
  check('spec §3: messages packet', hex(rlpListOfEncoded([raw])), 'e0df845f5e10323284cd423760900102030405060708090a0b0c0d0e0f10821234')
}
{
  // §6 example (key 6 before key 5): decode it, re-encode in key order
  const o = decodeStatusOptions(unhex('e5ca80883f60624dd2f1a9fcc20201c20380c504c3808080c506c3808080c705c584cd423760'))
  check('spec §6: decoded', [o.pow, o.lightNode, o.confirmations, o.packetRateLimits, o.bytesRateLimits, o.topicInterest.map(hex)], [0.002, true, false, [0n, 0n, 0n], [0n, 0n, 0n], ['cd423760']])
}

// ---------------------------------------------------------------- bloom

for (const c of V.bloom.per_topic) {
  const topic = c.topic_name === null ? unhex(c.topic) : topicFromName(c.topic_name)
  check(`bloom ${c.topic}: topic`, hex(topic), c.topic)
  check(`bloom ${c.topic}: Go-style bloom`, hex(topicBloomGo(topic)), c.bloom)
}
check('bloom: aggregate matches its topics', V.bloom.per_topic.slice(0, 3).every((c) => bloomMatches(unhex(V.bloom.aggregate_3_topics), unhex(c.topic))), true)

// ---------------------------------------------------------------- envelopes

for (const e of V.envelopes) {
  const n = e.name
  const raw = unhex(e.envelope_rlp)
  const env = decodeEnvelope(raw)
  check(`${n}: decode fields`, [env.expiry, env.ttl, hex(env.topic), hex(env.data), env.nonce.toString()], [e.expiry, e.ttl, e.topic, e.data, String(e.nonce)])
  check(`${n}: re-encode envelope rlp`, hex(envelopeRlp(env)), e.envelope_rlp)
  check(`${n}: short rlp`, hex(shortRlp(env)), e.short_rlp)
  check(`${n}: hash`, hex(keccak256(raw)), e.envelope_hash)
  const p = powOf(shortRlp(env), env.ttl, env.nonce)
  check(`${n}: pow hash, bits`, [hex(p.powHash), p.bits], [e.pow_hash, e.pow_leading_zero_bits])
  check(`${n}: pow f64 bits`, bitsHex(p.pow), e.pow_float64_bits)
  check(`${n}: messages packet`, hex(rlpListOfEncoded([raw])), e.messages_packet_msg_data)
  const items = splitRlpList(unhex(e.messages_packet_msg_data))
  check(`${n}: split messages packet`, items.map((i) => hex(i.raw)), [e.envelope_rlp])
  if (e.encryption !== 'symmetric') continue

  const key = unhex(e.sym_key)
  if (e.sym_key_password) check(`${n}: PBKDF2(${e.sym_key_password})`, hex(symKeyFromPassword(e.sym_key_password)), e.sym_key)
  if (e.topic_name) check(`${n}: topic(${e.topic_name})`, hex(topicFromName(e.topic_name)), e.topic)

  // build: payload + padding (+ signature) -> plaintext -> data -> envelope
  const signKey = e.sender_priv ? unhex(e.sender_priv) : undefined
  const pt = buildPlaintext(unhex(e.payload), { padding: unhex(e.padding), signKey })
  check(`${n}: plaintext (incl. signature)`, hex(pt), e.plaintext)
  if (signKey) {
    check(`${n}: signed hash`, hex(keccak256(pt.subarray(0, pt.length - 65))), e.signed_hash)
    check(`${n}: signature`, hex(pt.subarray(pt.length - 65)), e.signature)
    check(`${n}: sender pub`, hex(publicKeyOf(signKey)), e.sender_pub)
  }
  const data = encryptSymmetric(key, pt, unhex(e.salt))
  check(`${n}: data`, hex(data), e.data)
  const built = { expiry: e.now_unix + e.ttl, ttl: e.ttl, topic: unhex(e.topic), data }
  const sealed = sealEnvelope(built, e.pow_target)
  check(`${n}: seal nonce/pow (target ${e.pow_target}, by len(short))`, [sealed.nonce, bitsHex(sealed.pow)], [e.nonce, e.pow_float64_bits])
  check(`${n}: built envelope rlp`, hex(envelopeRlp(sealed)), e.envelope_rlp)

  // open: data -> plaintext -> payload, signer
  const opened = parsePlaintext(decryptSymmetric(key, env.data))
  check(`${n}: open payload/padding/flags`, [hex(opened.payload), hex(opened.padding), opened.flags], [e.payload, e.padding, e.flags])
  check(`${n}: open signer`, opened.signer ? hex(opened.signer) : null, e.recovered_signer_pub ?? null)
  // autopad length rule holds
  check(`${n}: plaintext length`, signKey ? pt.length % 256 : null, signKey ? 0 : null)
  // tampering is detected
  const bad = Uint8Array.from(env.data)
  bad[0] ^= 1
  checkThrows(`${n}: tampered data rejected`, () => decryptSymmetric(key, bad))
}

// random padding + random nonce round trip with the sym_signed_autopad inputs
{
  const e = V.envelopes.find((x) => x.name === 'sym_signed_autopad')
  const key = unhex(e.sym_key)
  const pt = buildPlaintext(unhex(e.payload), { signKey: unhex(e.sender_priv) })
  check('autopad: random padding, length multiple of 256', [pt.length % 256, pt.length - 65 - 2 - unhex(e.payload).length], [0, unhex(e.padding).length])
  const o = parsePlaintext(decryptSymmetric(key, encryptSymmetric(key, pt)))
  check('autopad: round trip', [hex(o.payload), hex(o.signer)], [e.payload, e.sender_pub])
  const o2 = parsePlaintext(buildPlaintext(utf8(''), {}))
  check('empty unsigned payload', [o2.flags, hex(o2.payload), o2.signer ?? null], [1, '', null])
}

// ---------------------------------------------------------------- status options

for (const c of V.status_options.cases) {
  const n = `status ${c.name}`
  const o = decodeStatusOptions(unhex(c.rlp))
  const want = {}
  const got = {}
  if ('pow_requirement_f64' in c) {
    want.pow = c.pow_requirement_f64
    want.powBits = c.pow_requirement_u64
    got.pow = o.pow
    got.powBits = o.powBits?.toString(16).padStart(16, '0')
  }
  if ('bloom_filter' in c) [want.bloom, got.bloom] = [c.bloom_filter, o.bloom && hex(o.bloom)]
  if ('light_node' in c) [want.light, got.light] = [c.light_node, o.lightNode]
  if ('confirmations' in c) [want.conf, got.conf] = [c.confirmations, o.confirmations]
  if ('packet_rate_limits' in c) [want.prl, got.prl] = [c.packet_rate_limits.map(String), o.packetRateLimits?.map(String)]
  if ('bytes_rate_limits' in c) [want.brl, got.brl] = [c.bytes_rate_limits.map(String), o.bytesRateLimits?.map(String)]
  if ('topic_interest' in c) [want.ti, got.ti] = [c.topic_interest, o.topicInterest?.map(hex)]
  check(`${n}: decode`, got, want)
  const enc = encodeStatusOptions({
    pow: o.pow,
    bloom: o.bloom,
    lightNode: o.lightNode,
    confirmations: o.confirmations,
    packetRateLimits: o.packetRateLimits,
    topicInterest: o.topicInterest,
    bytesRateLimits: o.bytesRateLimits,
  })
  check(`${n}: encode`, hex(enc), c.rlp)
}
{
  const d = V.status_options.defaults
  const o = decodeStatusOptions(unhex(d.input_rlp))
  const enc = encodeStatusOptions({
    pow: o.pow ?? 0.001,
    bloom: o.bloom ?? new Uint8Array(64).fill(0xff),
    lightNode: o.lightNode ?? false,
    confirmations: o.confirmations ?? false,
    packetRateLimits: o.packetRateLimits ?? [0, 0, 0],
    bytesRateLimits: o.bytesRateLimits ?? [0, 0, 0],
  })
  check('status defaults: empty list + defaults', hex(enc), d.with_defaults_rlp)
}
for (const c of V.status_options.unknown_key.cases) {
  // We skip exactly the unknown pair and keep decoding (spec §6), so both
  // cases give pow 0.25, light true, confirmations true (status-go loses the
  // pairs after an unknown key in the "unknown_middle" case).
  const o = decodeStatusOptions(unhex(c.input_rlp))
  check(`status unknown key ${c.name}: decode`, [o.pow, o.lightNode, o.confirmations, o.unknownKeys.map(String)], [0.25, true, true, ['99']])
  check(`status unknown key ${c.name}: re-encode`, hex(encodeStatusOptions({ pow: o.pow, lightNode: o.lightNode, confirmations: o.confirmations })), 'd1ca80883fd0000000000000c20201c20301')
}
checkThrows('status: NaN pow rejected', () => decodeStatusOptions(RLP.encode([[new Uint8Array(0), unhex('7ff8000000000000')]])))
checkThrows('status: 63-byte bloom rejected', () => decodeStatusOptions(RLP.encode([[Uint8Array.of(1), new Uint8Array(63)]])))
checkThrows('status: negative pow rejected', () => decodeStatusOptions(RLP.encode([[new Uint8Array(0), unhex('bff0000000000000')]])))
checkThrows('status: non-canonical key rejected', () => decodeStatusOptions(RLP.encode([[Uint8Array.of(0), new Uint8Array(0)]])))
checkThrows('status: bool 0x02 rejected', () => decodeStatusOptions(RLP.encode([[Uint8Array.of(2), Uint8Array.of(2)]])))

// The exact Status peer.mjs sends.
{
  const ours = encodeStatusOptions({
    pow: 0.000002,
    bloom: new Uint8Array(64).fill(0xff),
    lightNode: false,
    confirmations: false,
    packetRateLimits: [0, 0, 0],
    bytesRateLimits: [0, 0, 0],
  })
  const o = decodeStatusOptions(ours)
  check('our Status: pow bits', bitsHex(o.pow), bitsHex(0.000002))
  check('our Status: encoding', hex(ours), `f862ca8088${bitsHex(0.000002)}f84301b840${'ff'.repeat(64)}c20280c20380c504c3808080c506c3808080`)
  check('our Status: pow round trip', bitsToF64(o.powBits), 0.000002)
}

console.log(`selfcheck: ${passes} passed, ${failures} failed`)
process.exit(failures === 0 ? 0 : 1)
