#!/usr/bin/env node
// RLPx v5 interop peer for status-sansio, built on @ethereumjs/devp2p.
//
//   node peer.mjs listen --key <64 hex> [--port 0] [--timeout-ms 15000]
//   node peer.mjs dial   --key <64 hex> --enode enode://<128 hex>@127.0.0.1:<port> [--timeout-ms 15000]
//
// stdout carries ONLY these lines (see README.md):
//   ENODE enode://<pubkey>@127.0.0.1:<port>     (listen mode, once, first)
//   HELLO <remote client id> <remote p2p version>
//   RECEIVED <code> <hex msg-data after snappy decompression>
//   OK
//   ERROR <description>
// Everything else goes to stderr.

import { readFileSync } from 'node:fs'
import { EventEmitter } from 'node:events'

import { DISCONNECT_REASON, DisconnectReasonNames, Peer, RLPx } from '@ethereumjs/devp2p'
import { RLP } from '@ethereumjs/rlp'
import snappy from 'snappyjs'

const TEST_CAP = { name: 'test', version: 1, length: 8 }
const TEST_MSG_CODE = 1
const TEST_MSG_TEXT = 'hello from ethereumjs'
const DEFAULT_TIMEOUT_MS = 15000

// ---------------------------------------------------------------- output

const t0 = Date.now()
function log(...args) {
  process.stderr.write(`[peer.mjs ${mode ?? '?'} +${Date.now() - t0}ms] ${args.join(' ')}\n`)
}
function out(line) {
  // stdout is synchronous for files and pipes on Linux, so every line is
  // flushed as soon as it is written.
  process.stdout.write(`${line}\n`)
}
const hex = (bytes) => Buffer.from(bytes).toString('hex')
const short = (s, n = 200) => (s.length > n ? `${s.slice(0, n)}...(${s.length / 2} bytes)` : s)
const reasonName = (r) =>
  `${DisconnectReasonNames[r] ?? 'UNKNOWN'}(0x${Number(r ?? 0).toString(16).padStart(2, '0')})`
// Keep each stdout record on one line whatever the remote sends.
const oneLine = (s) => String(s).replace(/[\x00-\x1f\x7f]/g, '?')

let exiting = false
function exitWith(code, delayMs = 0) {
  if (exiting) return
  exiting = true
  setTimeout(() => {
    process.stdout.write('', () => process.exit(code))
  }, delayMs)
}
function fail(description) {
  if (finished || exiting) return
  out(`ERROR ${oneLine(description)}`)
  log(`failing: ${description}`)
  exitWith(1, 200)
}

// ---------------------------------------------------------------- args

const argv = process.argv.slice(2)
const mode = argv[0]
const opts = {}
for (let i = 1; i < argv.length; i++) {
  const a = argv[i]
  if (!a.startsWith('--') || i + 1 >= argv.length) usage(`bad argument ${a}`)
  opts[a.slice(2)] = argv[++i]
}
function usage(msg) {
  out(`ERROR usage: ${oneLine(msg)}`)
  process.stderr.write(
    'usage: node peer.mjs listen --key <hex> [--port 0] [--timeout-ms 15000]\n' +
      '       node peer.mjs dial --key <hex> --enode <enode url> [--timeout-ms 15000]\n',
  )
  process.exit(2)
}
if (mode !== 'listen' && mode !== 'dial') usage('mode must be listen or dial')
if (typeof opts.key !== 'string' || !/^(0x)?[0-9a-fA-F]{64}$/.test(opts.key))
  usage('--key must be 64 hex chars')
const privateKey = Uint8Array.from(Buffer.from(opts.key.replace(/^0x/, ''), 'hex'))
const timeoutMs = opts['timeout-ms'] !== undefined ? Number(opts['timeout-ms']) : DEFAULT_TIMEOUT_MS
if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) usage('--timeout-ms must be a positive integer')

function isLoopback(host) {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

function parseEnode(url) {
  const m = /^enode:\/\/([0-9a-fA-F]{128})@(\[[^\]]+\]|[^:/?]+):(\d{1,5})(\?.*)?$/.exec(url ?? '')
  if (!m) usage(`--enode must look like enode://<128 hex>@127.0.0.1:<port>, got ${url}`)
  const host = m[2].replace(/^\[|\]$/g, '')
  if (!isLoopback(host)) usage(`refusing to dial non-loopback address ${host}`)
  return {
    id: Uint8Array.from(Buffer.from(m[1], 'hex')),
    address: host === 'localhost' ? '127.0.0.1' : host,
    tcpPort: Number(m[3]),
  }
}

// ---------------------------------------------------------------- library version

let libVersion = 'unknown'
try {
  libVersion = JSON.parse(
    readFileSync(new URL('./node_modules/@ethereumjs/devp2p/package.json', import.meta.url)),
  ).version
} catch {}
const CLIENT_ID = `ethereumjs-devp2p/${libVersion}`

// ---------------------------------------------------------------- diagnostics hooks
// Thin wrappers around Peer methods, only to log to stderr what goes over the
// wire and to learn the reason of a disconnect that happens before the Hello
// exchange completed (the library emits no event for that case).

const PEER_MSG = { 0: 'HELLO', 1: 'DISCONNECT', 2: 'PING', 3: 'PONG' }
const origSendMessage = Peer.prototype._sendMessage
Peer.prototype._sendMessage = function (code, data) {
  const res = origSendMessage.call(this, code, data)
  log(
    `send frame code=0x${code.toString(16)}${code < 16 ? ` (${PEER_MSG[code] ?? 'p2p?'})` : ''}` +
      ` payload=${short(hex(data))}${res === true ? '' : ' [NOT SENT: connection closed or handshake incomplete]'}`,
  )
  return res
}
const origHandleMessage = Peer.prototype._handleMessage
Peer.prototype._handleMessage = function (code, payload) {
  if (code === 0) {
    log(`recv HELLO ${short(hex(RLP.encode(payload)), 400)}`)
  } else if (code === 1) {
    const r = payload instanceof Uint8Array ? payload : payload[0]
    const reason = r instanceof Uint8Array && r.length > 0 ? r[r.length - 1] : 0
    this._interopRemoteDisconnect = reason
    log(`recv DISCONNECT ${reasonName(reason)} (decoded ${payload instanceof Uint8Array ? 'bare' : 'list'})`)
  } else {
    log(`recv p2p ${PEER_MSG[code] ?? `code ${code}`}`)
  }
  return origHandleMessage.call(this, code, payload)
}
const origSendDisconnect = Peer.prototype._sendDisconnect
Peer.prototype._sendDisconnect = function (reason) {
  const wasClosed = this._closed
  const res = origSendDisconnect.call(this, reason)
  // _sendDisconnect marks the peer closed only if the frame was written.
  const written = !wasClosed && this._closed && this._disconnectReason === reason
  log(`local disconnect ${reasonName(reason)}${written ? '' : ' (frame not written)'}`)
  if (written && this._interopLocalDisconnect === undefined) this._interopLocalDisconnect = reason
  // The library itself disconnects e.g. with USELESS_PEER (no shared
  // capability) or INVALID_IDENTITY before any event fires; report that now
  // instead of when the socket closes 2 s later. Deferred so that a
  // 'peer:error' raised in the same tick reports its message first.
  if (activePeer === null || activePeer === this) {
    setImmediate(() => fail(`we disconnected: ${reasonName(reason)}`))
  }
  return res
}

// ---------------------------------------------------------------- the `test` capability
// Mirrors how SNAP/ETH are defined: a static capability descriptor whose
// `constructor` the Peer instantiates as `new C(version, peer, send)` after the
// Hello exchange, then calls `_handleMessage(relativeCode, decompressedData)`.

class TestProtocol {
  static test = { ...TEST_CAP, constructor: TestProtocol }

  constructor(version, peer, send) {
    this.events = new EventEmitter()
    this._version = version
    this._peer = peer
    this._send = send
    peer._interopTest = this
  }

  getVersion() {
    return this._version
  }

  // Peer already snappy-decompressed `data` (remote Hello said version >= 5);
  // it is the raw msg-data, not RLP-decoded.
  _handleMessage(code, data) {
    onTestMessage(this._peer, code, data)
  }

  // `rlpData` must already be RLP. The library leaves compression to the
  // sub-protocol (like SNAP/ETH do), so compress here if the remote is v5+.
  sendRaw(code, rlpData) {
    let payload = rlpData
    const v = this._peer.getHelloMessage()?.protocolVersion
    if (v !== undefined && v >= 5) payload = snappy.compress(payload)
    this._send(code, payload)
  }
}

// ---------------------------------------------------------------- session

let activePeer = null
let helloDone = false
let sent = false
let receivedCode1 = false
let finished = false
const pending = []

function onTestMessage(peer, code, data) {
  if (activePeer !== null && peer !== activePeer) return
  if (!helloDone) {
    // Can happen when the remote's Hello and first message arrive in the same
    // read as our own Hello is still being queued; print them after HELLO.
    pending.push([code, data])
    return
  }
  out(`RECEIVED ${code} ${hex(data)}`)
  if (code === TEST_MSG_CODE) receivedCode1 = true
  maybeFinish(peer)
}

function onPeerAdded(peer) {
  if (activePeer !== null) {
    log('second peer connected, rejecting it')
    peer.disconnect(DISCONNECT_REASON.TOO_MANY_PEERS)
    return
  }
  activePeer = peer
  const hello = peer.getHelloMessage()
  helloDone = true
  out(`HELLO ${oneLine(hello.clientId)} ${hello.protocolVersion}`)
  log(
    `remote caps=${hello.capabilities.map((c) => `${c.name}/${c.version}`).join(',')} port=${hello.port} id=${hex(hello.id)}`,
  )
  const proto = peer._interopTest ?? peer.getProtocols().find((p) => p instanceof TestProtocol)
  if (!proto) return fail('no shared test/1 capability after Hello')
  try {
    proto.sendRaw(TEST_MSG_CODE, RLP.encode([Buffer.from(TEST_MSG_TEXT, 'utf8')]))
  } catch (e) {
    return fail(`sending test message failed: ${e?.message ?? e}`)
  }
  sent = true
  for (const [code, data] of pending.splice(0)) onTestMessage(peer, code, data)
  maybeFinish(peer)
}

function maybeFinish(peer) {
  if (finished || exiting || !sent || !receivedCode1) return
  finished = true
  out('OK')
  peer.disconnect(DISCONNECT_REASON.DISCONNECT_REQUESTED)
  // Give the Disconnect frame time to reach the socket; leave as soon as the
  // remote closes the connection, at most after 1 s.
  const sock = peer._socket
  const started = Date.now()
  const tick = setInterval(() => {
    const flushed = sock.destroyed || sock.writableLength === 0
    if (sock.destroyed || (flushed && Date.now() - started >= 300) || Date.now() - started >= 1000) {
      clearInterval(tick)
      exitWith(0)
    }
  }, 20)
}

// Subclass only to observe sockets that close before the Hello exchange
// completed: the library reports nothing in that case.
class InteropRLPx extends RLPx {
  _onConnect(socket, peerId) {
    super._onConnect(socket, peerId)
    socket.once('close', () => {
      if (finished || exiting) return
      if (activePeer !== null && activePeer._socket !== socket) return
      setImmediate(() => {
        fail(
          (helloDone
            ? 'connection closed before test exchange completed'
            : 'connection closed before Hello exchange completed') + closeDetail(socket),
        )
      })
    })
  }
}
function closeDetail(socket) {
  const p = socketPeers.get(socket)
  if (!p) return ''
  if (p._interopRemoteDisconnect !== undefined)
    return ` (remote sent Disconnect ${reasonName(p._interopRemoteDisconnect)})`
  if (p._interopLocalDisconnect !== undefined)
    return ` (we sent Disconnect ${reasonName(p._interopLocalDisconnect)})`
  return ''
}
// Map sockets to their Peer objects (Peer registers its own socket listeners).
const socketPeers = new WeakMap()
const origOnSocketData = Peer.prototype._onSocketData
Peer.prototype._onSocketData = function (data) {
  socketPeers.set(this._socket, this)
  return origOnSocketData.call(this, data)
}

// ---------------------------------------------------------------- main

const rlpx = new InteropRLPx(privateKey, {
  clientId: new TextEncoder().encode(CLIENT_ID),
  capabilities: [TestProtocol.test],
  maxPeers: 10,
  // no dpt, no common, no listenPort (=> Hello listenPort field is empty)
})
const ourId = hex(rlpx.id)
log(`devp2p ${libVersion}, id ${ourId}, client id ${CLIENT_ID}`)

rlpx.events.on('peer:added', onPeerAdded)
rlpx.events.on('peer:error', (peer, err) => {
  if (finished || exiting) return
  if (activePeer !== null && peer !== activePeer) return
  const ld = peer?._interopLocalDisconnect
  fail(
    `peer error: ${err?.message ?? err}` +
      (ld !== undefined ? ` (we had sent Disconnect ${reasonName(ld)})` : ''),
  )
})
rlpx.events.on('peer:removed', (peer, reason, disconnectWe) => {
  if (finished || exiting) return
  if (activePeer !== null && peer !== activePeer) return
  fail(
    `${disconnectWe === true ? 'we disconnected' : 'remote disconnected'}: ${reasonName(reason)}`,
  )
})
rlpx.events.on('error', (err) => fail(`rlpx error: ${err?.message ?? err}`))

const overall = setTimeout(() => fail(`timeout after ${timeoutMs} ms`), timeoutMs)
overall.unref?.()

if (mode === 'listen') {
  const port = opts.port !== undefined ? Number(opts.port) : 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) usage('--port must be 0..65535')
  rlpx.events.once('listening', () => {
    const addr = rlpx._server.address()
    out(`ENODE enode://${ourId}@127.0.0.1:${addr.port}`)
    log(`listening on 127.0.0.1:${addr.port}`)
  })
  rlpx.listen(port, '127.0.0.1')
} else {
  const target = parseEnode(opts.enode)
  log(`dialing ${target.address}:${target.tcpPort}`)
  rlpx.connect(target).catch((err) => fail(`dial failed: ${err?.message ?? err}`))
}
