// Waku v1 (waku/1) building blocks for the interop peer, written from
// docs/protocol/waku.md and docs/protocol/status-transport-usage.md §2:
// envelopes (§2), PoW (§3), Status options (§6), plaintext format (§9),
// symmetric encryption (§10), public-chat topic and key.
//
// Primitives: Keccak-256 and secp256k1 from ethereum-cryptography (noble),
// AES-256-GCM and PBKDF2 from node:crypto, RLP from @ethereumjs/rlp.
// Used by peer.mjs (--proto waku) and waku-selfcheck.mjs (test vectors).

import { createCipheriv, createDecipheriv, pbkdf2Sync, randomBytes } from 'node:crypto'

import { RLP } from '@ethereumjs/rlp'
import { keccak256 } from 'ethereum-cryptography/keccak.js'
import { secp256k1 } from 'ethereum-cryptography/secp256k1.js'

export const WAKU_CAP = { name: 'waku', version: 1, length: 128 }
export const CODE_STATUS = 0
export const CODE_MESSAGES = 1
export const CODE_STATUS_UPDATE = 22

export const FLAG_SIGNED = 0x04
export const SIGNATURE_LENGTH = 65
export const PADDING_UNIT = 256
export const AES_NONCE_LENGTH = 12
export const AES_TAG_LENGTH = 16
export const PBKDF2_ITERATIONS = 65356 // not 65536: what geth/status-go use

export const hex = (bytes) => Buffer.from(bytes).toString('hex')
export const unhex = (s) => Uint8Array.from(Buffer.from(s.replace(/^0x/, ''), 'hex'))
export const utf8 = (s) => new TextEncoder().encode(s)
export const concat = (...parts) => Uint8Array.from(Buffer.concat(parts.map((p) => Buffer.from(p))))
export { keccak256 }

// ---------------------------------------------------------------- keys, topics

/** keccak256(utf8(name))[0:4] */
export function topicFromName(name) {
  return keccak256(utf8(name)).slice(0, 4)
}

/** PBKDF2-HMAC-SHA256(password = utf8(name), salt = empty, 65356, 32 bytes) */
export function symKeyFromPassword(password) {
  return Uint8Array.from(pbkdf2Sync(Buffer.from(utf8(password)), Buffer.alloc(0), PBKDF2_ITERATIONS, 32, 'sha256'))
}

/** 65-byte uncompressed public key 04‖X‖Y of a 32-byte secret */
export function publicKeyOf(priv) {
  return secp256k1.getPublicKey(priv, false)
}

// ---------------------------------------------------------------- integers

/** Minimal big-endian bytes of a non-negative integer (0 -> empty), as RLP wants. */
export function uintToBytes(v) {
  let n = BigInt(v)
  if (n < 0n) throw new Error('negative integer')
  const out = []
  while (n > 0n) {
    out.unshift(Number(n & 0xffn))
    n >>= 8n
  }
  return Uint8Array.from(out)
}

/** Strict decoding of an RLP integer (byte string, no leading zero, at most maxBytes). */
export function bytesToUint(b, what, maxBytes = 8) {
  if (!(b instanceof Uint8Array)) throw new Error(`${what}: expected an integer, got a list`)
  if (b.length > maxBytes) throw new Error(`${what}: integer longer than ${maxBytes} bytes`)
  if (b.length > 0 && b[0] === 0) throw new Error(`${what}: non-canonical integer (leading zero)`)
  let n = 0n
  for (const x of b) n = (n << 8n) | BigInt(x)
  return n
}

export function f64ToBits(f) {
  const dv = new DataView(new ArrayBuffer(8))
  dv.setFloat64(0, f)
  return dv.getBigUint64(0)
}
export function bitsToF64(bits) {
  const dv = new DataView(new ArrayBuffer(8))
  dv.setBigUint64(0, BigInt.asUintN(64, bits))
  return dv.getFloat64(0)
}

// ---------------------------------------------------------------- RLP helpers

/**
 * Split the RLP list `bytes` into its items, keeping each item's exact bytes
 * (so that hashes are taken over what was received). Strict: one list, no
 * trailing bytes, canonical encodings (as enforced by @ethereumjs/rlp).
 */
export function splitRlpList(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new Error('empty input, expected an RLP list')
  const p = bytes[0]
  if (p < 0xc0) throw new Error('expected an RLP list, got a byte string')
  // Let @ethereumjs/rlp validate the whole thing first (canonical, no remainder).
  RLP.decode(bytes)
  let off
  if (p <= 0xf7) off = 1
  else off = 1 + (p - 0xf7)
  let rest = bytes.subarray(off)
  const items = []
  while (rest.length > 0) {
    const { data, remainder } = RLP.decode(rest, true)
    const raw = rest.subarray(0, rest.length - remainder.length)
    items.push({ raw: Uint8Array.from(raw), value: data })
    rest = rest.subarray(raw.length)
  }
  return items
}

/** RLP list whose items are already RLP-encoded (e.g. a Messages packet from envelope RLPs). */
export function rlpListOfEncoded(items) {
  const payload = concat(...items)
  const n = payload.length
  if (n < 56) return concat([0xc0 + n], payload)
  const len = uintToBytes(n)
  return concat([0xf7 + len.length], len, payload)
}

// ---------------------------------------------------------------- Status options (§6)

export const STATUS_DEFAULT_POW = 0.001
const BOOL_TRUE = Uint8Array.of(0x01)
const BOOL_FALSE = new Uint8Array(0) // encodes as 0x80

/**
 * Encode options as the waku/1 association list, keys in ascending order.
 * opts: { pow?: number, bloom?: Uint8Array, lightNode?: bool, confirmations?: bool,
 *         packetRateLimits?: [a,b,c], topicInterest?: Uint8Array[], bytesRateLimits?: [a,b,c] }
 */
export function encodeStatusOptions(opts) {
  const pairs = []
  const k = (n) => uintToBytes(n)
  if (opts.pow !== undefined) pairs.push([k(0), uintToBytes(f64ToBits(opts.pow))])
  if (opts.bloom !== undefined) pairs.push([k(1), opts.bloom])
  if (opts.lightNode !== undefined) pairs.push([k(2), opts.lightNode ? BOOL_TRUE : BOOL_FALSE])
  if (opts.confirmations !== undefined) pairs.push([k(3), opts.confirmations ? BOOL_TRUE : BOOL_FALSE])
  if (opts.packetRateLimits !== undefined) pairs.push([k(4), opts.packetRateLimits.map(uintToBytes)])
  if (opts.topicInterest !== undefined) pairs.push([k(5), opts.topicInterest])
  if (opts.bytesRateLimits !== undefined) pairs.push([k(6), opts.bytesRateLimits.map(uintToBytes)])
  return RLP.encode(pairs)
}

function decodeBool(v, what) {
  if (!(v instanceof Uint8Array)) throw new Error(`${what}: expected a bool, got a list`)
  if (v.length === 0) return false
  if (v.length === 1 && v[0] === 1) return true
  throw new Error(`${what}: invalid bool encoding ${hex(v)}`)
}
function decodeLimits(v, what) {
  if (!Array.isArray(v) || v.length !== 3) throw new Error(`${what}: expected a list of 3 integers`)
  return v.map((x, i) => bytesToUint(x, `${what}[${i}]`))
}

/**
 * Decode a Status / Status Update msg-data. Any key order; unknown keys are
 * skipped as a whole pair (unlike status-go, which loses pairs after one).
 * Returns { pow?, powBits?, bloom?, lightNode?, confirmations?, packetRateLimits?,
 * topicInterest?, bytesRateLimits?, unknownKeys: bigint[] } with only the keys present.
 */
export function decodeStatusOptions(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new Error('empty Status msg-data')
  const list = RLP.decode(bytes)
  if (!Array.isArray(list)) throw new Error('Status is not an RLP list')
  const o = { unknownKeys: [] }
  const seen = new Set()
  list.forEach((pair, i) => {
    if (!Array.isArray(pair) || pair.length !== 2) throw new Error(`option #${i} is not a [key, value] pair`)
    const key = bytesToUint(pair[0], `option #${i} key`)
    const v = pair[1]
    if (key <= 6n) {
      if (seen.has(key)) throw new Error(`option key ${key} given twice`)
      seen.add(key)
    }
    switch (key) {
      case 0n: {
        const bits = bytesToUint(v, 'pow-requirement')
        const f = bitsToF64(bits)
        if (!Number.isFinite(f) || f < 0) throw new Error(`pow-requirement ${f} is NaN, infinite or negative`)
        o.powBits = bits
        o.pow = f
        break
      }
      case 1n:
        if (!(v instanceof Uint8Array) || (v.length !== 0 && v.length !== 64))
          throw new Error('bloom-filter must be a 0- or 64-byte string')
        o.bloom = v
        break
      case 2n:
        o.lightNode = decodeBool(v, 'light-node')
        break
      case 3n:
        o.confirmations = decodeBool(v, 'confirmations-enabled')
        break
      case 4n:
        o.packetRateLimits = decodeLimits(v, 'packet rate limits')
        break
      case 5n:
        if (!Array.isArray(v)) throw new Error('topic-interest must be a list')
        if (v.length > 10000) throw new Error('topic-interest has more than 10000 topics')
        v.forEach((t, j) => {
          if (!(t instanceof Uint8Array) || t.length !== 4) throw new Error(`topic-interest[${j}] is not 4 bytes`)
        })
        o.topicInterest = v
        break
      case 6n:
        o.bytesRateLimits = decodeLimits(v, 'bytes rate limits')
        break
      default:
        o.unknownKeys.push(key)
    }
  })
  return o
}

// ---------------------------------------------------------------- bloom (§4)

/** Go-style (assigning) bloom of one topic: a subset of the OR-style bits. */
export function topicBloomGo(topic) {
  const b = new Uint8Array(64)
  for (let j = 0; j < 3; j++) {
    const n = topic[j] + (topic[3] & (1 << j) ? 256 : 0)
    b[n >> 3] = 1 << (n % 8)
  }
  return b
}
/** Does `filter` (64 bytes, or empty = full node) accept `topic`? */
export function bloomMatches(filter, topic) {
  if (filter === undefined || filter.length === 0) return true
  const s = topicBloomGo(topic)
  for (let i = 0; i < 64; i++) if ((filter[i] | s[i]) !== filter[i]) return false
  return true
}

// ---------------------------------------------------------------- plaintext (§9)

function sizeField(n) {
  if (n >= 1 << 24) throw new Error('payload too large (needs a 4-byte size field)')
  const len = n < 256 ? 1 : n < 65536 ? 2 : 3
  const b = new Uint8Array(len)
  for (let i = 0; i < len; i++) b[i] = (n >> (8 * i)) & 0xff
  return b
}

/** status-go's automatic padding length: 1..256 so that the plaintext incl. signature is a multiple of 256. */
export function autoPaddingLength(payloadLength, signed) {
  const raw = 1 + sizeField(payloadLength).length + payloadLength + (signed ? SIGNATURE_LENGTH : 0)
  return PADDING_UNIT - (raw % PADDING_UNIT)
}

export function randomPadding(len) {
  for (;;) {
    const p = Uint8Array.from(randomBytes(len))
    if (len === 0 || p.some((x) => x !== 0)) return p
  }
}

/**
 * flags ‖ size (LE, minimal, ≥1 byte) ‖ payload ‖ padding ‖ [sig r‖s‖v, v ∈ {0,1}].
 * padding: bytes to use verbatim, or undefined for random automatic padding.
 * signKey: 32-byte secp256k1 secret or undefined (unsigned).
 */
export function buildPlaintext(payload, { padding, signKey } = {}) {
  const size = sizeField(payload.length)
  let flags = size.length
  if (signKey !== undefined) flags |= FLAG_SIGNED
  const pad = padding ?? randomPadding(autoPaddingLength(payload.length, signKey !== undefined))
  const body = concat([flags], size, payload, pad)
  if (signKey === undefined) return body
  const h = keccak256(body)
  const sig = secp256k1.sign(h, signKey) // RFC 6979, low-s
  const rs = sig.toCompactRawBytes()
  return concat(body, rs, [sig.recovery])
}

/**
 * Parse a plaintext. Returns { flags, payload, padding, signature?, signer? (65-byte
 * uncompressed pubkey) }. Throws on malformed input or a failed recovery.
 */
export function parsePlaintext(pt) {
  if (pt.length < 1) throw new Error('empty plaintext')
  const flags = pt[0]
  let end = pt.length
  let signature, signer
  if (flags & FLAG_SIGNED) {
    if (pt.length < 1 + SIGNATURE_LENGTH) throw new Error('signed flag set but plaintext shorter than a signature')
    end = pt.length - SIGNATURE_LENGTH
    signature = pt.slice(end)
    let v = signature[64]
    if (v >= 27) v -= 27
    if (v > 1) throw new Error(`bad signature recovery id ${signature[64]}`)
    const h = keccak256(pt.subarray(0, end))
    try {
      const s = secp256k1.Signature.fromCompact(signature.subarray(0, 64)).addRecoveryBit(v)
      signer = s.recoverPublicKey(h).toRawBytes(false)
    } catch (e) {
      throw new Error(`signature recovery failed: ${e?.message ?? e}`)
    }
  }
  const sizeLen = flags & 3
  let payload = new Uint8Array(0)
  let pos = 1
  if (sizeLen > 0) {
    if (1 + sizeLen > end) throw new Error('plaintext too short for its size field')
    let n = 0
    for (let i = 0; i < sizeLen; i++) n |= pt[1 + i] << (8 * i)
    pos = 1 + sizeLen
    if (pos + n > end) throw new Error(`payload size ${n} exceeds the plaintext`)
    payload = pt.slice(pos, pos + n)
    pos += n
  }
  return { flags, payload, padding: pt.slice(pos, end), signature, signer }
}

// ---------------------------------------------------------------- symmetric encryption (§10)

/** AES-256-GCM(key, nonce, plaintext, no AAD) = ciphertext ‖ tag16, then ‖ nonce12 */
export function encryptSymmetric(key, plaintext, nonce = randomBytes(AES_NONCE_LENGTH)) {
  if (key.length !== 32) throw new Error('symmetric key must be 32 bytes')
  if (nonce.length !== AES_NONCE_LENGTH) throw new Error('AES-GCM nonce must be 12 bytes')
  const c = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: AES_TAG_LENGTH })
  const ct = Buffer.concat([c.update(plaintext), c.final()])
  return concat(ct, c.getAuthTag(), nonce)
}

export function decryptSymmetric(key, data) {
  if (data.length < AES_NONCE_LENGTH + AES_TAG_LENGTH) throw new Error(`data too short (${data.length} bytes)`)
  const nonce = data.subarray(data.length - AES_NONCE_LENGTH)
  const tag = data.subarray(data.length - AES_NONCE_LENGTH - AES_TAG_LENGTH, data.length - AES_NONCE_LENGTH)
  const ct = data.subarray(0, data.length - AES_NONCE_LENGTH - AES_TAG_LENGTH)
  const d = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: AES_TAG_LENGTH })
  d.setAuthTag(tag)
  try {
    return Uint8Array.from(Buffer.concat([d.update(ct), d.final()]))
  } catch {
    throw new Error('AES-GCM authentication failed')
  }
}

// ---------------------------------------------------------------- envelope (§2) and PoW (§3)

/** RLP([expiry, ttl, topic, data]) */
export function shortRlp({ expiry, ttl, topic, data }) {
  return RLP.encode([uintToBytes(expiry), uintToBytes(ttl), topic, data])
}
export function envelopeRlp({ expiry, ttl, topic, data, nonce }) {
  return RLP.encode([uintToBytes(expiry), uintToBytes(ttl), topic, data, uintToBytes(nonce)])
}

function nonceBE8(nonce) {
  const b = new Uint8Array(8)
  new DataView(b.buffer).setBigUint64(0, BigInt(nonce))
  return b
}
function leadingZeroBits(h) {
  let bits = 0
  for (const x of h) {
    if (x === 0) {
      bits += 8
      continue
    }
    return bits + Math.clz32(x) - 24
  }
  return bits
}

/** { bits, pow, powHash } with pow = 2^bits / len(short) / (ttl + diff) */
export function powOf(short, ttl, nonce, diff = 0) {
  const powHash = keccak256(concat(short, nonceBE8(nonce)))
  const bits = leadingZeroBits(powHash)
  return { bits, powHash, pow: 2 ** bits / short.length / (Number(ttl) + diff) }
}

/**
 * Try nonces 0, 1, 2, … until pow ≥ target (computed with len(short)); keeps the
 * best. Gives up (throws) after maxIterations nonces or maxMillis ms (status-go's
 * WorkTime is 5 s). Noble's Keccak does ~20k hashes/s of ~300 bytes here.
 */
export function sealEnvelope(env, target, maxIterations = 1 << 20, maxMillis = 5000) {
  const deadline = Date.now() + maxMillis
  const short = shortRlp(env)
  const buf = new Uint8Array(short.length + 8)
  buf.set(short)
  const dv = new DataView(buf.buffer, short.length, 8)
  const scale = short.length * Number(env.ttl)
  let best = { nonce: 0, pow: -1 }
  for (let n = 0; n < maxIterations; n++) {
    dv.setBigUint64(0, BigInt(n))
    const pow = 2 ** leadingZeroBits(keccak256(buf)) / scale
    if (pow > best.pow) best = { nonce: n, pow: powOf(short, env.ttl, n).pow }
    if (best.pow >= target) break
    if ((n & 1023) === 1023 && Date.now() > deadline) {
      maxIterations = n + 1
      break
    }
  }
  if (best.pow < target) throw new Error(`PoW ${best.pow} below target ${target} after ${maxIterations} nonces`)
  return { ...env, nonce: best.nonce, pow: best.pow }
}

/**
 * Decode one envelope from its exact RLP bytes. Strict: a 5-item list,
 * canonical integers (expiry/ttl uint32, nonce uint64), a 4-byte topic.
 */
export function decodeEnvelope(raw) {
  const v = RLP.decode(raw)
  if (!Array.isArray(v) || v.length !== 5) throw new Error('envelope is not a 5-item list')
  const [e, t, topic, data, n] = v
  const expiry = bytesToUint(e, 'expiry', 4)
  const ttl = bytesToUint(t, 'ttl', 4)
  const nonce = bytesToUint(n, 'nonce', 8)
  if (!(topic instanceof Uint8Array) || topic.length !== 4) throw new Error('topic is not a 4-byte string')
  if (!(data instanceof Uint8Array)) throw new Error('data is not a byte string')
  return { expiry: Number(expiry), ttl: Number(ttl), topic, data, nonce }
}
