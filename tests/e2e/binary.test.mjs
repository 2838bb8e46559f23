// Socket.IO v5 binary attachments (issue 14) with the official socket.io-client,
// over both transports: the `ping` echo returns binary arguments byte for byte
// (a binary ack `6<n>-<id>`), `conversation-broadcast` relays binary inside
// `data` to the other devices of the call as binary, an acknowledged binary
// emit of an event that takes no binary gets its ack with an error, and the
// bounds hold (a packet past `limits.max_message_bytes`, with its attachments,
// closes the connection; too many attachments, placeholders that do not match,
// or a stray attachment are protocol errors). Waits are bounded by timeouts.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  Api,
  TRANSPORTS,
  startServer,
  stopServerClean,
  connect,
  connectAuthed,
  closeAllSockets,
  makeWorld,
  resetAll,
  disconnected,
} from './harness.mjs';
import { connectCommunity } from './community-harness.mjs';

let server;
let api;
let world;

before(async () => {
  server = await startServer();
  api = new Api(server.base);
  world = await makeWorld(api);
});

after(async () => {
  closeAllSockets();
  if (server) await stopServerClean(server);
});

/** The bytes of a binary value as socket.io-client hands it over (Buffer or ArrayBuffer). */
function bytesOf(v) {
  assert.ok(Buffer.isBuffer(v) || v instanceof ArrayBuffer || ArrayBuffer.isView(v), `binary expected, got ${JSON.stringify(v)}`);
  return [...(ArrayBuffer.isView(v) ? new Uint8Array(v.buffer, v.byteOffset, v.byteLength) : new Uint8Array(v))];
}

/** `socket.emit(event, ...args, ack)` → every argument of the ack; fails past `ms`. */
function emitAckAll(socket, event, args, ms = 5000) {
  return new Promise((resolve, reject) => {
    socket.timeout(ms).emit(event, ...args, (err, ...res) => (err ? reject(err) : resolve(res)));
  });
}

async function metric(name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const esc = name.replace(/[{}"]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${esc} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `/metrics has ${name}`);
  return Number(m[1]);
}
const protocolErrors = () => metric('huddle_refused_total{reason="protocol_error"}');

describe('binary attachments', () => {
  for (const transport of TRANSPORTS) {
    it(`the ping echo returns binary arguments byte for byte (${transport})`, async () => {
      const s = await connect(server.base, transport, { label: `bin-ping-${transport}` });
      const big = Buffer.alloc(30 * 1024, 7);
      const res = await emitAckAll(s, 'ping', [
        Buffer.from([1, 2, 3]),
        { a: new Uint8Array([4]), text: 'x', nested: [Buffer.alloc(0), 5] },
        big,
      ]);
      assert.equal(res.length, 3, `three arguments back: ${JSON.stringify(res)}`);
      assert.deepEqual(bytesOf(res[0]), [1, 2, 3]);
      assert.deepEqual(bytesOf(res[1].a), [4]);
      assert.equal(res[1].text, 'x');
      assert.deepEqual(bytesOf(res[1].nested[0]), [], 'an empty buffer stays an empty buffer');
      assert.equal(res[1].nested[1], 5);
      assert.ok(Buffer.from(bytesOf(res[2])).equals(big), 'a 30 KiB buffer comes back whole');
      // emitWithAck resolves with the first argument.
      const one = await s.timeout(5000).emitWithAck('ping', Buffer.from([1, 2, 3]), { a: new Uint8Array([4]) });
      assert.deepEqual(bytesOf(one), [1, 2, 3]);
      // Plain and binary emits interleave on one connection.
      assert.equal(await s.timeout(5000).emitWithAck('ping', 'plain'), 'plain');
      s.disconnect();
    });

    it(`an acknowledged binary emit of an event that takes no binary gets its ack with an error (${transport})`, async () => {
      const s = await connect(server.base, transport, { label: `bin-unknown-${transport}` });
      const unknown = await s.timeout(5000).emitWithAck('no-such-event', Buffer.from([1]));
      assert.equal(typeof unknown?.error, 'string', JSON.stringify(unknown));
      const authBin = await s.timeout(5000).emitWithAck('auth', { token: Buffer.from('x') });
      assert.match(authBin?.error ?? '', /binary/i, JSON.stringify(authBin));
      assert.ok(s.connected, 'the socket stays connected');
      assert.equal(await s.timeout(5000).emitWithAck('ping', 1), 1);
      s.disconnect();
    });

    it(`a packet past the message bound with its attachments closes the connection (${transport})`, async () => {
      for (const args of [[Buffer.alloc(1 << 20, 1)], [Buffer.alloc(40 * 1024, 1), Buffer.alloc(40 * 1024, 2)]]) {
        const s = await connect(server.base, transport, { label: `bin-big-${transport}` });
        let echoed = false;
        // The pending ack fails when the socket disconnects.
        emitAckAll(s, 'ping', args, 10000).then(() => { echoed = true; }, () => {});
        await disconnected(s, 10000);
        assert.equal(echoed, false, `${args.length} attachment(s) of ${args[0].length} bytes: no echo`);
      }
      // The server keeps serving.
      const s = await connect(server.base, transport);
      assert.deepEqual(bytesOf(await s.timeout(5000).emitWithAck('ping', Buffer.from([9]))), [9]);
      s.disconnect();
    });

    it(`conversation-broadcast relays binary in data to the call as binary (${transport})`, async () => {
      const { A, B, W } = world;
      const P = await api.createChannel(A, W.id, { name: `bin-call-${transport}` });
      const other = transport === 'websocket' ? 'polling' : 'websocket';
      const a = await connectAuthed(server.base, A, W.id, transport, { label: `A-${transport}` });
      const b = await connectAuthed(server.base, B, W.id, other, { label: `B-${other}` });
      await api.selectOk(A, a, P.id);
      await api.selectOk(B, b, P.id);
      resetAll(a, b);
      const blob = Buffer.from([0, 255, 1, 254, 0]);
      a.emit('conversation-broadcast', {
        transaction: 'bin',
        action: 'signal',
        data: { blob, list: [Buffer.alloc(0), 'x'], n: 1 },
      });
      for (const s of [b, a]) {
        const got = await s.rec.next('conversation-broadcast', { where: (d) => d.action === 'signal' });
        assert.equal(got.data.userId, A.id);
        assert.deepEqual(bytesOf(got.data.data.blob), [...blob], `${s.rec.label} gets the bytes`);
        assert.deepEqual(bytesOf(got.data.data.list[0]), []);
        assert.equal(got.data.data.list[1], 'x');
        assert.equal(got.data.data.n, 1);
      }
      a.disconnect();
      b.disconnect();
    });
  }

  it('community chat refuses binary with an error in its ack, and keeps the socket', async () => {
    const { A, W } = world;
    const P = await api.createChannel(A, W.id, { name: 'bin-commu' });
    for (const transport of TRANSPORTS) {
      const c = await connectCommunity(server.base, A, W.id, transport, { label: `commu-bin-${transport}` });
      const refused = await c.timeout(5000).emitWithAck('chat', { chatType: 'new', channelId: P.id, content: Buffer.from('hi') });
      assert.equal(refused?.written, false, JSON.stringify(refused));
      assert.match(refused?.error ?? '', /binary/i);
      const unknown = await c.timeout(5000).emitWithAck('no-such-event', Buffer.from([1]));
      assert.equal(typeof unknown?.error, 'string', JSON.stringify(unknown));
      const ok = await c.timeout(5000).emitWithAck('chat', { chatType: 'new', channelId: P.id, content: 'plain' });
      assert.equal(ok?.written, true, JSON.stringify(ok));
      c.disconnect();
    }
  });

  it('too many attachments, placeholders that do not match, and stray attachments close the connection', async () => {
    const cases = [
      ['11 attachments announced', ['40', '4511-["ping",{}]']],
      ['fewer placeholders than announced', ['40', '452-0["ping",{"_placeholder":true,"num":0}]', Buffer.from([1]), Buffer.from([2])]],
      ['a placeholder out of range', ['40', '451-0["ping",{"_placeholder":true,"num":1}]', Buffer.from([1])]],
      ['an attachment without a packet', ['40', Buffer.from([1])]],
      ['a packet before the attachments', ['40', '451-0["ping",{"_placeholder":true,"num":0}]', '42["ping"]']],
    ];
    for (const [what, sends] of cases) {
      const before = await protocolErrors();
      const ws = new WebSocket(`${server.base.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
      ws.on('error', () => {});
      const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what}: no open packet`)), 5000);
        ws.once('message', () => {
          clearTimeout(timer);
          resolve();
        });
      });
      for (const m of sends) ws.send(m, { binary: Buffer.isBuffer(m) });
      let timer;
      const code = await Promise.race([
        closed,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${what}: still open after 5 s`)), 5000);
        }),
      ]).finally(() => clearTimeout(timer));
      // 1002; or 1006 where the client's later frames, unread when the
      // server closed, made its kernel reset the connection over the close frame.
      assert.ok([1002, 1006].includes(code), `${what}: closed as a protocol error (${code})`);
      assert.ok((await protocolErrors()) > before, `${what}: counted as protocol_error`);
    }
  });
});
