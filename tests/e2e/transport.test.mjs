// The Socket.IO transport itself (huddle-sio), through the official
// socket.io-client and a raw websocket: the default polling → websocket
// upgrade, several namespaces over one connection, heartbeats, the `ping`
// echo, and what the server answers to what it cannot read.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { io, Manager } from 'socket.io-client';
import WebSocket from 'ws';
import {
  startServer,
  Api,
  Recorder,
  makeWorld,
  connect,
  connectAuthed,
  auth,
  closeAllSockets,
  disconnected,
  TRANSPORTS,
} from './harness.mjs';

const PING_INTERVAL_MS = 300;
const PING_TIMEOUT_MS = 300;

let server;
let api;
let world;

before(async () => {
  server = await startServer({
    env: {
      HUDDLE_REALTIME__PING_INTERVAL: `${PING_INTERVAL_MS / 1000}s`,
      HUDDLE_REALTIME__PING_TIMEOUT: `${PING_TIMEOUT_MS / 1000}s`,
    },
  });
  api = new Api(server.base);
  world = await makeWorld(api);
});

after(async () => {
  closeAllSockets();
  if (server) await server.stop();
});

/** Resolves with the first message of `ws` that satisfies `pred`. */
function nextMessage(ws, pred = () => true, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.off('message', on);
      reject(new Error(`no matching websocket message within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (data) => {
      const text = data.toString();
      if (pred(text)) {
        clearTimeout(timer);
        ws.off('message', on);
        resolve(text);
      }
    };
    ws.on('message', on);
  });
}

/** A raw Engine.IO websocket; resolves after the open packet. */
async function rawSocket() {
  const url = `${server.base.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`;
  const ws = new WebSocket(url);
  const open = nextMessage(ws, (t) => t.startsWith('0'));
  ws.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  const packet = JSON.parse((await open).slice(1));
  ws.sid = packet.sid;
  return ws;
}

describe('transport', { timeout: 20000 }, () => {
  it('a default client starts on polling, upgrades to websocket, and keeps working', async () => {
    const { A, W } = world;
    const socket = io(server.base, { forceNew: true, reconnection: false });
    socket.rec = new Recorder(socket);
    const upgraded = new Promise((resolve) => socket.io.on('open', () => socket.io.engine.once('upgrade', resolve)));
    await new Promise((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('connect_error', reject);
    });
    await upgraded;
    assert.equal(socket.io.engine.transport.name, 'websocket');
    const ok = await auth(socket, A, W.id);
    assert.equal(ok.userId, A.id);
    const echo = await socket.timeout(5000).emitWithAck('ping', { n: 1 });
    assert.deepEqual(echo, { n: 1 });
    socket.disconnect();
  });

  for (const transport of TRANSPORTS) {
    it(`ping echoes every argument through the acknowledgement (${transport})`, async () => {
      const s = await connect(server.base, transport);
      const args = await new Promise((resolve) => s.emit('ping', { a: [1, 'x'] }, 2, 'three', (...got) => resolve(got)));
      assert.deepEqual(args, [{ a: [1, 'x'] }, 2, 'three']);
      s.emit('ping', { no: 'ack' });
      const err = await s.rec.next('socket-api-error');
      assert.equal(err.data.event, 'ping');
      assert.match(err.data.message, /acknowledgement/);
      s.disconnect();
    });

    it(`stays connected across many heartbeats (${transport})`, { timeout: 10000 }, async () => {
      const { B, W } = world;
      const s = await connectAuthed(server.base, B, W.id, transport);
      const pings = [];
      s.io.engine.on('ping', () => pings.push(Date.now()));
      while (pings.length < 4) await new Promise((r) => s.io.engine.once('ping', r));
      assert.ok(s.connected, 'still connected after four pings');
      const echo = await s.timeout(5000).emitWithAck('ping', 'still here');
      assert.equal(echo, 'still here');
      s.disconnect();
    });

    it(`a binary payload gets a clear error, and the socket keeps working (${transport})`, async () => {
      const s = await connect(server.base, transport);
      s.emit('auth', Buffer.from('not json'));
      const err = await s.rec.next('socket-api-error');
      assert.match(err.data.message, /binary/i);
      assert.equal(await s.timeout(5000).emitWithAck('ping', 1), 1);
      s.disconnect();
    });
  }

  it('several namespaces share one connection and leave independently', async () => {
    const { A, W } = world;
    const manager = new Manager(server.base, { reconnection: false, transports: ['websocket'] });
    const root = manager.socket('/');
    const commu = manager.socket(`/socket/commu-${W.id}`, { auth: { token: `Bearer ${A.token}` } });
    root.rec = new Recorder(root);
    await Promise.all([root, commu].map((s) => new Promise((resolve, reject) => {
      s.once('connect', resolve);
      s.once('connect_error', reject);
    })));
    assert.equal(manager.engine.transport.name, 'websocket');
    const engineId = manager.engine.id;
    await auth(root, A, W.id);
    const joined = await commu.timeout(5000).emitWithAck('join', { channels: [] });
    assert.deepEqual(joined, { joined: [], refused: [] });
    root.disconnect();
    // The community socket is untouched by the root socket leaving.
    const again = await commu.timeout(5000).emitWithAck('join', { channels: [] });
    assert.deepEqual(again, { joined: [], refused: [] });
    assert.equal(manager.engine.id, engineId, 'still the same Engine.IO session');
    commu.disconnect();
  });

  it('an unknown namespace is refused with connect_error "Invalid namespace"', async () => {
    const s = io(`${server.base}/nope`, { forceNew: true, reconnection: false, transports: ['websocket'] });
    const err = await new Promise((resolve) => s.once('connect_error', resolve));
    assert.equal(err.message, 'Invalid namespace');
    s.close();
  });

  it('a client that stops answering pings is disconnected after the ping timeout', async () => {
    const ws = await rawSocket();
    ws.send('40');
    await nextMessage(ws, (t) => t.startsWith('40'));
    // Never answer "2".
    const t0 = Date.now();
    const code = await ws.closed;
    const took = Date.now() - t0;
    assert.ok(took < (PING_INTERVAL_MS + PING_TIMEOUT_MS) * 4, `closed after ${took} ms (code ${code})`);
  });

  it('an unreadable event gets an error event, an unreadable Engine.IO packet closes the connection', async () => {
    const ws = await rawSocket();
    ws.send('40');
    await nextMessage(ws, (t) => t.startsWith('40'));
    const err = nextMessage(ws, (t) => t.startsWith('42["socket-api-error"'));
    ws.send('42{"not":"an array"}');
    const reply = JSON.parse((await err).slice(2));
    assert.match(reply[1].message, /Malformed packet/);
    ws.send('9garbage');
    await ws.closed;
  });

  it('polling requests the server cannot serve get Engine.IO error codes', async () => {
    const get = async (q) => {
      const res = await fetch(`${server.base}/socket.io/?${q}`);
      return { status: res.status, body: await res.json() };
    };
    assert.deepEqual(await get('EIO=3&transport=polling'), { status: 400, body: { code: 5, message: 'Unsupported protocol version' } });
    assert.deepEqual(await get('EIO=4&transport=carrier-pigeon'), { status: 400, body: { code: 0, message: 'Transport unknown' } });
    assert.deepEqual(await get('EIO=4&transport=polling&sid=nope'), { status: 400, body: { code: 1, message: 'Session ID unknown' } });
  });

  it('a polling body over the payload limit is refused with 413 and ends the session', async () => {
    const open = await (await fetch(`${server.base}/socket.io/?EIO=4&transport=polling`)).text();
    const { sid, maxPayload } = JSON.parse(open.slice(1));
    const url = `${server.base}/socket.io/?EIO=4&transport=polling&sid=${sid}`;
    const res = await fetch(url, { method: 'POST', body: `42["x","${'a'.repeat(maxPayload + 1)}"]` });
    assert.equal(res.status, 413);
    const after = await fetch(url);
    assert.equal(after.status, 400, 'the session is gone');
  });

  it('the server disconnects a socket with a Socket.IO disconnect after a logout', async () => {
    const { A, W } = world;
    const s = await connectAuthed(server.base, A, W.id, 'polling');
    s.emit('logout');
    assert.equal((await disconnected(s)).reason, 'io server disconnect');
  });
});

describe('slow consumers', { timeout: 60000 }, () => {
  // limits.outbound_queue_bytes: a socket whose client stops reading is closed
  // as a slow consumer once its queue passes the bound, and counted in
  // /metrics; the sockets that read lose nothing.
  it('a socket that stops reading is disconnected as a slow consumer and counted; the others lose nothing', async () => {
    const small = await startServer({
      env: {
        HUDDLE_LIMITS__OUTBOUND_QUEUE_BYTES: '65536',
        HUDDLE_LIMITS__SOCKET_EVENTS_PER_SEC: '100000',
        HUDDLE_LIMITS__SOCKET_EVENTS_BURST: '100000',
      },
    });
    const sockets = [];
    try {
      const api2 = new Api(small.base);
      const { A, B, W } = await makeWorld(api2);
      const P = await api2.createChannel(A, W.id, { name: 'call' });
      const A1 = await connectAuthed(small.base, A, W.id, 'websocket', { label: 'A1' });
      const B1 = await connectAuthed(small.base, B, W.id, 'websocket', { label: 'B1' });
      sockets.push(A1, B1);
      await api2.selectOk(A, A1, P.id);
      await api2.selectOk(B, B1, P.id);
      await A1.rec.next('user-selected-channel', { where: (d) => d.userId === B.id });
      const slow = async () => {
        const res = await api2.req('GET', '/metrics');
        const m = /^huddle_slow_consumer_disconnects_total (\d+)$/m.exec(String(res.body));
        assert.ok(m, '/metrics has huddle_slow_consumer_disconnects_total');
        return Number(m[1]);
      };
      assert.equal(await slow(), 0);
      // B1 stops reading: its TCP socket is paused, so the kernel's buffers
      // fill, then its queue on the server.
      const tcp = B1.io.engine.transport.ws._socket;
      tcp.pause();
      const blob = 'x'.repeat(32 * 1024);
      let sent = 0;
      for (; sent < 2000; sent++) {
        A1.emit('conversation-broadcast', { action: 'flood', data: { seq: sent, blob } });
        const got = await A1.rec.next('conversation-broadcast', { where: (d) => d.action === 'flood' && d.data.seq === sent });
        assert.equal(got.data.data.blob.length, blob.length);
        if (sent % 16 === 15 && (await slow()) > 0) break;
      }
      assert.ok(sent < 2000, '64 MB broadcast and the socket that reads nothing was never dropped');
      assert.equal(await slow(), 1, 'exactly one slow consumer');
      tcp.resume();
      await disconnected(B1, 10000);
      // A1 read everything and stays in the call.
      assert.ok(A1.connected);
      A1.emit('conversation-broadcast', { action: 'after', data: null });
      await A1.rec.next('conversation-broadcast', { where: (d) => d.action === 'after' });
    } finally {
      for (const s of sockets) s.disconnect();
      await small.stop();
    }
  });
});
