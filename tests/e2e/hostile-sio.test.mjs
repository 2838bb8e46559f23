// Hostile clients of the Socket.IO transport (issue 14), with raw `ws`
// websockets and fetch against the real binary: a client that sends but never
// reads cannot grow the server's memory (it is closed); every close the server
// chooses has a websocket close frame with its code; the connect timeout;
// protocol garbage closes; polling answers as the reference does; the event
// rate limit survives leaving and re-joining; the auth timeout ends the
// connection. Waits are bounded by timeouts; the only fixed waits let a
// server-side timeout elapse.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { startServer, TIMINGS } from './harness.mjs';

/** The server's resident memory, bytes. */
function rss(server) {
  const status = readFileSync(`/proc/${server.child.pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)[1]) * 1024;
}

async function metric(server, name) {
  const text = await (await fetch(`${server.base}/metrics`)).text();
  const esc = name.replace(/[{}"]/g, (c) => `\\${c}`);
  const m = new RegExp(`^${esc} (\\d+)$`, 'm').exec(text);
  assert.ok(m, `/metrics has ${name}`);
  return Number(m[1]);
}
const refused = (server, reason) => metric(server, `huddle_refused_total{reason="${reason}"}`);

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

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A raw Engine.IO websocket (optionally of a polling session); resolves once open. */
async function rawSocket(server, sid) {
  const q = sid ? `&sid=${sid}` : '';
  const ws = new WebSocket(`${server.base.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket${q}`);
  ws.on('error', () => {});
  ws.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  if (sid) {
    await withTimeout(new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`refused ${res.statusCode}`)));
    }), 5000, 'websocket open');
  } else {
    const open = await nextMessage(ws, (t) => t.startsWith('0'));
    ws.sid = JSON.parse(open.slice(1)).sid;
  }
  return ws;
}

/**
 * Sends with `send` until the socket is closed; fails past `ms`. Never reads.
 * Returns how long it took and the bytes that left the client.
 */
async function floodUntilClosed(ws, send, ms) {
  const t0 = Date.now();
  const tcp = ws._socket;
  let done = false;
  ws.closed.then(() => { done = true; });
  ws.on('error', () => { done = true; });
  const deadline = Date.now() + ms;
  while (!done && ws.readyState === WebSocket.OPEN) {
    assert.ok(Date.now() < deadline, `the server did not close a client that never reads within ${ms} ms`);
    // Keep the client's own buffer small: wait for the kernel to take it.
    if (ws.bufferedAmount > 1 << 20) {
      await sleep(5);
      continue;
    }
    for (let i = 0; i < 64; i++) send();
    await new Promise((r) => setImmediate(r));
  }
  return { ms: Date.now() - t0, sent: tcp.bytesWritten - tcp.writableLength };
}

const polling = (server, sid) => `${server.base}/socket.io/?EIO=4&transport=polling${sid ? `&sid=${sid}` : ''}`;
async function openPolling(server) {
  const open = await (await fetch(polling(server))).text();
  return JSON.parse(open.slice(1)).sid;
}

const MB = 1024 * 1024;
const GROWTH = 150 * MB;

describe('a client that sends but never reads', { timeout: 120000 }, () => {
  let server;
  before(async () => {
    server = await startServer({
      env: {
        HUDDLE_REALTIME__PING_INTERVAL: '4s',
        HUDDLE_REALTIME__PING_TIMEOUT: '4s',
        HUDDLE_REALTIME__AUTH_TIMEOUT: '60s',
        HUDDLE_REALTIME__CONNECT_TIMEOUT: '60s',
        HUDDLE_LIMITS__SOCKET_EVENTS_PER_SEC: '100000',
        HUDDLE_LIMITS__SOCKET_EVENTS_BURST: '100000',
      },
    });
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('websocket PING frames: reading stops, the heartbeat closes it, memory stays bounded', async () => {
    const before = rss(server);
    const ws = await rawSocket(server);
    ws.send('40');
    ws._socket.pause();
    const ping = Buffer.alloc(125, 1);
    const { sent } = await floodUntilClosed(ws, () => ws.ping(ping), 20000);
    assert.ok(rss(server) - before < GROWTH, `RSS grew by ${(rss(server) - before) / MB} MB`);
    // Past its small backlog of answers the server stops reading: the rest
    // waits in the kernel's buffers.
    assert.ok(sent < 32 * MB, `the server read ${sent / MB} MB of PINGs from a client that reads nothing`);
  });

  it('Engine.IO pings from the client: closed at once as a protocol error (v4: only the server pings)', async () => {
    const errors0 = await refused(server, 'protocol_error');
    const before = rss(server);
    const ws = await rawSocket(server);
    ws._socket.pause();
    const ping = `2${'p'.repeat(60000)}`;
    const { ms } = await floodUntilClosed(ws, () => ws.send(ping), 10000);
    assert.ok(ms < 3000, `closed after ${ms} ms, not at the first ping`);
    assert.ok(rss(server) - before < GROWTH, `RSS grew by ${(rss(server) - before) / MB} MB`);
    assert.ok((await refused(server, 'protocol_error')) > errors0, 'counted as a protocol error');
  });

  it('polling: acknowledged events whose answers are never fetched end as a slow consumer, counted', async () => {
    const slow0 = await metric(server, 'huddle_slow_consumer_disconnects_total');
    const before = rss(server);
    const sid = await openPolling(server);
    assert.equal((await fetch(polling(server, sid), { method: 'POST', body: '40' })).status, 200);
    // Each `ping` event is echoed through its acknowledgement: 60 KB queued a
    // time for a client that never GETs them.
    let status = 200;
    let posts = 0;
    for (; posts < 200 && status === 200; posts++) {
      const body = `42${posts}["ping","${'p'.repeat(60000)}"]`;
      status = (await fetch(polling(server, sid), { method: 'POST', body })).status;
    }
    assert.equal(status, 400, `the session outlived ${posts} acknowledged events`);
    assert.ok(posts < 60, `${posts} answers of 60 KB were queued: more than the 1 MiB bound`);
    assert.ok(rss(server) - before < GROWTH, `RSS grew by ${(rss(server) - before) / MB} MB`);
    assert.ok((await metric(server, 'huddle_slow_consumer_disconnects_total')) > slow0, 'counted as a slow consumer');
  });

  it('CONNECTs to unknown namespaces with long names: closed as a slow consumer', async () => {
    const before = rss(server);
    const ws = await rawSocket(server);
    ws._socket.pause();
    const connect = `40/${'n'.repeat(60000)},`;
    const { ms } = await floodUntilClosed(ws, () => ws.send(connect), 10000);
    assert.ok(ms < 3000, `closed after ${ms} ms, not as soon as its queue was full`);
    assert.ok(rss(server) - before < GROWTH, `RSS grew by ${(rss(server) - before) / MB} MB`);
  });

  it('polling: POSTed pings end the session at once', async () => {
    const before = rss(server);
    const sid = await openPolling(server);
    const body = Array.from({ length: 15 }, () => `2${'p'.repeat(4000)}`).join('\x1e');
    let status = 200;
    let posts = 0;
    for (; posts < 2000 && status === 200; posts++) {
      status = (await fetch(polling(server, sid), { method: 'POST', body })).status;
    }
    assert.equal(status, 400, `the session outlived ${posts} POSTs of pings`);
    assert.ok(rss(server) - before < GROWTH, `RSS grew by ${(rss(server) - before) / MB} MB`);
  });
});

describe('close frames, timeouts and protocol errors', { timeout: 60000 }, () => {
  let server;
  const PING_MS = 300;
  const PONG_MS = 1500;
  const CONNECT_MS = 2000;
  before(async () => {
    server = await startServer({
      env: {
        HUDDLE_REALTIME__PING_INTERVAL: `${PING_MS / 1000}s`,
        HUDDLE_REALTIME__PING_TIMEOUT: `${PONG_MS / 1000}s`,
        HUDDLE_REALTIME__AUTH_TIMEOUT: '60s',
        HUDDLE_REALTIME__CONNECT_TIMEOUT: `${CONNECT_MS / 1000}s`,
      },
    });
  });
  after(async () => {
    if (server) await server.stop();
  });

  /** A websocket that joined `/` and answers pings. */
  async function joined() {
    const ws = await rawSocket(server);
    ws.on('message', (d) => {
      if (d.toString() === '2') ws.send('3');
    });
    ws.send('40');
    await nextMessage(ws, (t) => t.startsWith('40'));
    return ws;
  }

  it('the client\'s close packet: 1000', async () => {
    const ws = await joined();
    ws.send('1');
    assert.equal(await withTimeout(ws.closed, 5000, 'close'), 1000);
  });

  it('a ping timeout: 1011', async () => {
    const ws = await rawSocket(server);
    ws.send('40');
    await nextMessage(ws, (t) => t.startsWith('40'));
    assert.equal(await withTimeout(ws.closed, 5000, 'close'), 1011);
  });

  it('a pong sent blindly does not keep a client that never reads', async () => {
    const ws = await rawSocket(server);
    ws.send('40');
    await nextMessage(ws, (t) => t.startsWith('40'));
    ws._socket.pause();
    // Fill the client's receive window, so no ping can be written to it.
    const blind = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('3'), 20);
    const flood = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send(`2${'p'.repeat(30000)}`), 5);
    try {
      await withTimeout(ws.closed, 10000, 'close');
    } finally {
      clearInterval(blind);
      clearInterval(flood);
    }
  });

  for (const [what, packet] of [
    ['a Socket.IO packet type that does not exist', '49'],
    ['an ack id out of range', '42/x,99999999999999999999999["a"]'],
    ['a CONNECT payload that is not an object', '40[1]'],
    ['an empty Socket.IO packet', '4'],
  ]) {
    it(`protocol garbage closes with 1002 and is counted: ${what}`, async () => {
      const before = await refused(server, 'protocol_error');
      const ws = await joined();
      ws.send(packet);
      assert.equal(await withTimeout(ws.closed, 5000, 'close'), 1002);
      assert.ok((await refused(server, 'protocol_error')) > before);
    });
  }

  it('an event that is not an array is an application error: answered, the connection stays', async () => {
    const ws = await joined();
    const err = nextMessage(ws, (t) => t.startsWith('42["socket-api-error"'));
    ws.send('42{"not":"an array"}');
    assert.match(JSON.parse((await err).slice(2))[1].message, /Malformed packet/);
    ws.send('420["ping","still here"]');
    assert.equal(await nextMessage(ws, (t) => t.startsWith('430')), '430["still here"]');
    ws.close();
  });

  it('the connect timeout closes a websocket that joins nothing (1008), counted', async () => {
    const before = await refused(server, 'connect_timeout');
    const ws = await rawSocket(server);
    ws.on('message', (d) => d.toString() === '2' && ws.send('3'));
    const t0 = Date.now();
    assert.equal(await withTimeout(ws.closed, 2 * CONNECT_MS, 'close'), 1008);
    const took = Date.now() - t0;
    assert.ok(took > CONNECT_MS - 300 && took < CONNECT_MS + 1000, `closed after ${took} ms`);
    assert.ok((await refused(server, 'connect_timeout')) > before);
  });

  it('the connect timeout ends a polling session that joins nothing', async () => {
    const t0 = Date.now();
    const sid = await openPolling(server);
    const deadline = Date.now() + 2 * CONNECT_MS;
    for (;;) {
      assert.ok(Date.now() < deadline, 'the session outlived the connect timeout');
      const res = await fetch(polling(server, sid));
      const body = await res.text();
      if (res.status === 400) break;
      for (const p of body.split('\x1e')) {
        if (p === '2') await fetch(polling(server, sid), { method: 'POST', body: '3' });
      }
      if (body.split('\x1e').includes('1')) break;
    }
    // Not after three ping intervals: after the connect timeout.
    const took = Date.now() - t0;
    assert.ok(took > CONNECT_MS - 300 && took < CONNECT_MS + 1000, `ended after ${took} ms`);
  });

  it('polling: after a ping timeout a GET is answered 400 at once', async () => {
    const sid = await openPolling(server);
    await fetch(polling(server, sid), { method: 'POST', body: '40' });
    assert.match(await (await fetch(polling(server, sid))).text(), /^40/);
    // Nobody polls: the ping is never delivered, its timeout passes (and a
    // stale session would still be findable for another ping timeout).
    await sleep(PING_MS + PONG_MS + 700);
    const res = await fetch(polling(server, sid));
    assert.equal(res.status, 400, `answered ${res.status} ${await res.text()}`);
  });

  it('polling: a pending poll returns a noop when the client closes', async () => {
    const sid = await openPolling(server);
    await fetch(polling(server, sid), { method: 'POST', body: '40' });
    assert.match(await (await fetch(polling(server, sid))).text(), /^40/);
    const pending = fetch(polling(server, sid)).then((r) => r.text());
    // No server signal says a poll is pending: give the GET a generous head start.
    await sleep(250);
    await fetch(polling(server, sid), { method: 'POST', body: '1' });
    assert.equal(await withTimeout(pending, 5000, 'the pending poll'), '6');
  });

  it('polling: an invalid POST body is answered 400', async () => {
    for (const body of ['', 'x', '9']) {
      const sid = await openPolling(server);
      const res = await fetch(polling(server, sid), { method: 'POST', body });
      assert.equal(res.status, 400, `POST ${JSON.stringify(body)}`);
    }
  });

  it('upgrade: no stray noop reaches the websocket; a second websocket is refused 400', async () => {
    const sid = await openPolling(server);
    await fetch(polling(server, sid), { method: 'POST', body: '40' });
    assert.match(await (await fetch(polling(server, sid))).text(), /^40/);
    // No poll pending while the websocket probes.
    const ws = await rawSocket(server, sid);
    const probe = nextMessage(ws);
    ws.send('2probe');
    assert.equal(await probe, '3probe');
    const first = nextMessage(ws);
    ws.send('5');
    assert.equal(await first, '2', 'the first packet after the upgrade is the heartbeat, not a noop');
    const status = await withTimeout(new Promise((resolve) => {
      const ws2 = new WebSocket(`${server.base.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket&sid=${sid}`);
      ws2.on('error', () => {});
      ws2.on('unexpected-response', (_req, res) => resolve(res.statusCode));
      ws2.on('open', () => resolve('accepted'));
    }), 5000, 'second websocket');
    assert.equal(status, 400);
    ws.close();
  });

  it('shutdown closes with 1001', async () => {
    const own = await startServer();
    try {
      const ws = await rawSocket(own);
      ws.send('40');
      await nextMessage(ws, (t) => t.startsWith('40'));
      const code = ws.closed;
      own.child.kill('SIGTERM');
      assert.equal(await withTimeout(code, 10000, 'close'), 1001);
    } finally {
      await own.stop();
    }
  });
});

describe('limits that survive re-joining', { timeout: 60000 }, () => {
  let server;
  before(async () => {
    server = await startServer();
  });
  after(async () => {
    if (server) await server.stop();
  });

  it('leaving and re-joining `/` does not refill the event bucket; CONNECTs count', async () => {
    const before = await refused(server, 'socket_events');
    const ws = await rawSocket(server);
    ws.on('message', (d) => d.toString() === '2' && ws.send('3'));
    let acks = 0;
    ws.on('message', (d) => {
      if (d.toString().startsWith('43')) acks++;
    });
    const t0 = Date.now();
    for (let i = 0; i < 300; i++) {
      ws.send('40');
      // Joined, or the CONNECT refused by the rate limit.
      const got = await nextMessage(ws, (t) => t.startsWith('40') || t.startsWith('44'));
      if (got.startsWith('40')) {
        ws.send(`42${i}["ping",${i}]`);
        ws.send('41');
      }
    }
    ws.send('40');
    await nextMessage(ws, (t) => t.startsWith('40') || t.startsWith('44'), 10000);
    const secs = (Date.now() - t0) / 1000;
    const bound = 100 + 50 * secs + 5;
    assert.ok(acks <= bound, `${acks} events admitted in ${secs} s (at most ${bound})`);
    assert.ok((await refused(server, 'socket_events')) > before, 'counted');
    ws.close();
  });

  it('re-sending CONNECT does not keep an unauthenticated connection past the auth timeout', async () => {
    const before = await refused(server, 'auth_timeout');
    const ws = await rawSocket(server);
    ws.on('message', (d) => d.toString() === '2' && ws.send('3'));
    const t0 = Date.now();
    ws.send('40');
    const again = setInterval(() => ws.readyState === WebSocket.OPEN && ws.send('40'), 300);
    try {
      const code = await withTimeout(ws.closed, 2 * TIMINGS.authTimeoutMs + 1500, 'close');
      assert.equal(code, 1000);
    } finally {
      clearInterval(again);
    }
    assert.ok(Date.now() - t0 < 2 * TIMINGS.authTimeoutMs + 1000, `closed after ${Date.now() - t0} ms`);
    assert.ok((await refused(server, 'auth_timeout')) > before, 'counted');
  });
});
