// Issue 14, the Socket.IO front door's domain-facing limits, with the official
// socket.io-client against the real binary:
// - no zombie sockets: deleting an account, or kicking a member (who then signs
//   out), disconnects their sockets at once, on namespace `/` and the community
//   namespaces, and they are no longer counted (`huddle_connections`);
// - a community `join` is one query, capped (`limits.max_join_channels`, 100),
//   deduplicated; a flood of the largest joins leaves the server idle right
//   after the flooder leaves;
// - `limits.max_connections_per_user` bounds the community sockets of a user
//   (all community namespaces together, counted apart from namespace `/`).
//
// No fixed sleeps: absence after a chat barrier, disconnects and counters
// awaited with timeouts. The idle check measures the server's CPU time over
// a window (that window is a measurement, not a synchronisation).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import {
  Api,
  TRANSPORTS,
  startServer,
  stopServerClean,
  makeWorld,
  connectAuthed,
  closeAllSockets,
  disconnected,
  DEFAULT_TIMEOUT_MS,
} from './harness.mjs';
import {
  connectCommunity,
  openCommunity,
  closeAllCommunitySockets,
  emitAck,
  join,
  chatBarrier,
  postChatOk,
} from './community-harness.mjs';

const MAX_JOIN = 100;
const MAX_PER_USER = 16;
const NOWHERE = '00000000-0000-4000-8000-000000000000';

let server;
let api;

before(async () => {
  server = await startServer();
  api = new Api(server.base);
});

after(async () => {
  closeAllSockets();
  closeAllCommunitySockets();
  if (server) await stopServerClean(server);
});

/** The value of one sample of /metrics (`name{labels}` exactly), as a number. */
async function metric(sample) {
  const res = await api.req('GET', '/metrics');
  assert.equal(res.status, 200);
  const line = String(res.body)
    .split('\n')
    .find((l) => l.startsWith(`${sample} `));
  assert.ok(line, `/metrics has ${sample}`);
  return Number(line.slice(sample.length + 1));
}

/** Polls `sample` until `pred(value)` holds; fails with the last value after timeoutMs. */
async function metricUntil(sample, pred, what, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  let v;
  for (;;) {
    v = await metric(sample);
    if (pred(v)) return v;
    if (Date.now() > deadline) assert.fail(`${sample} is ${v}, expected ${what} within ${timeoutMs} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

const WS_CONNS = 'huddle_connections{protocol="socketio"}';
const COMMU_CONNS = 'huddle_connections{protocol="socketio_community"}';
const refused = (reason) => `huddle_refused_total{reason="${reason}"}`;

/** Asserts the server closed the socket ('io server disconnect'). */
async function closedByServer(socket, why) {
  const { reason } = await disconnected(socket).catch((e) => assert.fail(`${why}: ${e.message}`));
  assert.equal(reason, 'io server disconnect', `${socket.rec.label}: ${why}`);
}

// ---------------------------------------------------------------------------
// Defect 5: zombie sockets

describe('no zombie sockets', () => {
  for (const transport of TRANSPORTS) {
    it(`deleting an account disconnects its sockets at once, on / and the community namespaces (${transport})`, async () => {
      const { A, W } = await makeWorld(api);
      const D = await api.signup('Dora');
      await api.join(A, W.id, D);
      const Y = await api.createWorkspace(D, 'only Dora'); // goes with the account
      const before = await metric(WS_CONNS);
      const beforeCommu = await metric(COMMU_CONNS);
      const D1 = await connectAuthed(server.base, D, W.id, transport, { label: 'D1@W' });
      const D2 = await connectAuthed(server.base, D, Y.id, transport, { label: 'D2@Y' });
      const DC = await connectCommunity(server.base, D, W.id, transport, { label: 'DC@W' });
      const DY = await connectCommunity(server.base, D, Y.id, transport, { label: 'DC@Y' });
      assert.equal(await metric(WS_CONNS), before + 2);

      await api.ok('DELETE', '/api/me', { token: D.token }, [200, 204]);
      for (const s of [D1, D2, DC, DY]) await closedByServer(s, 'a deleted account keeps no socket');
      // Closed after being forgotten: no longer counted.
      await metricUntil(WS_CONNS, (v) => v === before, `${before} (no deleted user's socket counted)`);
      await metricUntil(COMMU_CONNS, (v) => v === beforeCommu, `${beforeCommu}`);
    });

    it(`a kicked member's sockets are disconnected, so signing out leaves none behind (${transport})`, async () => {
      const { A, W } = await makeWorld(api);
      const K = await api.signup('Kim');
      await api.join(A, W.id, K);
      const P = await api.createChannel(A, W.id, { name: 'p' });
      const before = await metric(WS_CONNS);
      const K1 = await connectAuthed(server.base, K, W.id, transport, { label: 'K1' });
      const KC = await connectCommunity(server.base, K, W.id, transport, { label: 'KC' });
      await emitAck(KC, 'join', { channels: [P.id] });

      await api.ok('DELETE', `/api/workspaces/${W.id}/members/${K.id}`, { token: A.token }, [200, 204]);
      const kicked = await K1.rec.next('kicked-from-workspace');
      assert.deepEqual(kicked.data, { workspaceId: W.id }, 'the notice arrives before the disconnect');
      await closedByServer(K1, 'a kicked member keeps no workspace socket');
      await closedByServer(KC, 'a kicked member keeps no community socket');
      await api.ok('POST', '/api/auth/signout', { token: K.token }, [200, 204]);
      await metricUntil(WS_CONNS, (v) => v === before, `${before} (the kicked member's socket is not counted)`);
    });
  }

  it('a departed member signing out from another workspace\'s socket leaves nothing behind', async () => {
    const { A, W } = await makeWorld(api);
    const L = await api.signup('Leo');
    await api.join(A, W.id, L);
    const Z = await api.createWorkspace(L, 'Leo\'s');
    const before = await metric(WS_CONNS);
    const LW = await connectAuthed(server.base, L, W.id, 'websocket', { label: 'L@W' });
    const LZ = await connectAuthed(server.base, L, Z.id, 'websocket', { label: 'L@Z' });
    await api.ok('POST', `/api/workspaces/${W.id}/leave`, { token: L.token }, [200, 204]);
    await closedByServer(LW, 'a socket bound to a workspace its user left is closed');
    assert.ok(LZ.connected, 'the socket bound to a workspace still joined stays');
    await api.ok('POST', '/api/auth/signout', { token: L.token }, [200, 204]);
    await closedByServer(LZ, 'signing out disconnects the session\'s sockets');
    await metricUntil(WS_CONNS, (v) => v === before, `${before}`);
  });
});

// ---------------------------------------------------------------------------
// Defect 6: community `join`

describe('community join: one query, capped', () => {
  let A, B, C, W, X, P, S, SB, XC;
  before(async () => {
    ({ A, B, C, W, X } = await makeWorld(api));
    P = await api.createChannel(A, W.id, { name: 'public' });
    S = await api.createChannel(A, W.id, { name: 'secret', isPrivate: true });
    SB = await api.createChannel(A, W.id, { name: 'with-bob', isPrivate: true, users: [B.id] });
    XC = await api.createChannel(C, X.id, { name: 'elsewhere' });
  });

  it(`a join of ${MAX_JOIN} ids answers each once: readable joined, the rest refused`, async () => {
    const BC = await connectCommunity(server.base, B, W.id, 'websocket', { label: 'BC' });
    const filler = Array.from({ length: MAX_JOIN }, () => randomUUID());
    const named = [P.id, SB.id, S.id, XC.id, 'not-a-uuid', 42, NOWHERE, P.id.toUpperCase(), P.id, SB.id];
    const ids = [...named, ...filler].slice(0, MAX_JOIN);
    assert.equal(ids.length, MAX_JOIN);
    const ack = await join(BC, ids);
    assert.equal(ack.error, undefined, `no error: ${JSON.stringify(ack).slice(0, 300)}`);
    assert.deepEqual(ack.joined, [P.id, SB.id], 'the public channel and the private one Bob is in');
    const expectRefused = [S.id, XC.id, 'not-a-uuid', '42', NOWHERE, ...ids.slice(named.length)];
    assert.deepEqual([...ack.refused].sort(), [...expectRefused].sort(), 'a private channel of others, another workspace\'s, junk and unknown ids');

    // It did join those two, and only those.
    await chatBarrier(api, A, P.id, [BC]);
    await chatBarrier(api, A, SB.id, [BC]);
    await postChatOk(api, A, S.id, 'secret');
    await chatBarrier(api, A, P.id, [BC]);
    BC.rec.none('new-chat', { where: (d) => d.channelId === S.id });
    BC.disconnect();
  });

  it(`a join of more than ${MAX_JOIN} ids is refused whole, with an error, and counted`, async () => {
    const BC = await connectCommunity(server.base, B, W.id, 'websocket', { label: 'BC big' });
    const before = await metric(refused('join_too_large'));
    const ack = await join(BC, [P.id, ...Array.from({ length: MAX_JOIN }, () => randomUUID())]);
    assert.deepEqual(ack.joined, []);
    assert.deepEqual(ack.refused, []);
    assert.match(ack.error ?? '', new RegExp(`at most ${MAX_JOIN}`), `the error says why: ${JSON.stringify(ack)}`);
    assert.equal(await metric(refused('join_too_large')), before + 1);
    BC.disconnect();
  });

  it('a flood of the largest joins from one socket leaves the server idle right after it leaves', async () => {
    const pid = server.child.pid;
    const cpuTicks = async () => {
      // /proc/PID/stat: fields after the ")" of the command; utime and stime are 14 and 15.
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    const F = await connectCommunity(server.base, B, W.id, 'websocket', { label: 'flooder' });
    const atCap = () => Array.from({ length: MAX_JOIN }, () => randomUUID());
    const oversize = () => Array.from({ length: 1000 }, () => randomUUID());
    const floodUntil = Date.now() + 3000;
    let sent = 0;
    while (Date.now() < floodUntil) {
      F.emit('join', { channels: atCap() });
      F.emit('join', { channels: oversize() });
      sent += 2;
      await new Promise((r) => setTimeout(r, 10));
    }
    // Everything sent has reached the server once an ack comes back (in order).
    await emitAck(F, 'join', { channels: [P.id] }, 30000);
    F.disconnect();
    const left = Date.now();

    // Within a few seconds the server is idle: a 1 s window with under 0.2 s of CPU.
    const HZ = 100; // USER_HZ on Linux
    let idle = null;
    let last = null;
    while (Date.now() - left < 5000) {
      const t0 = Date.now();
      const c0 = await cpuTicks();
      const h = await api.req('GET', '/healthz');
      assert.equal(h.status, 200);
      const healthMs = Date.now() - t0;
      await new Promise((r) => setTimeout(r, 1000));
      const used = (await cpuTicks()) - c0;
      last = { used, healthMs };
      if (used < 0.2 * HZ && healthMs < 500) {
        idle = Date.now() - left;
        break;
      }
    }
    assert.ok(idle !== null, `the server is still busy after the flooder left (${sent} joins sent): last 1 s window used ${last?.used} ticks, /healthz took ${last?.healthMs} ms`);
  });
});

// ---------------------------------------------------------------------------
// limits.max_connections_per_user on the community namespaces

describe('community sockets per user', () => {
  it(`at most ${MAX_PER_USER} per user over every community namespace, apart from /; a leaving socket frees its slot`, async () => {
    const { A, B, W } = await makeWorld(api);
    const V = await api.createWorkspace(B, 'V');
    // A workspace socket of B does not count against the community sockets.
    await connectAuthed(server.base, B, W.id, 'websocket', { label: 'B@/' });
    const sockets = [];
    for (let i = 0; i < MAX_PER_USER; i++) {
      const ws = i % 2 === 0 ? W.id : V.id;
      sockets.push(await connectCommunity(server.base, B, ws, i % 4 < 2 ? 'websocket' : 'polling', { label: `B#${i}` }));
    }
    const before = await metric(refused('connections_per_user'));
    const { error } = await openCommunity(server.base, W.id, 'websocket', { who: B, label: 'B#17' });
    assert.ok(error, 'the 17th community socket is refused');
    assert.match(error.message, /Too many connections/, `a clear connect_error: ${error.message}`);
    assert.equal(await metric(refused('connections_per_user')), before + 1);
    // Another user is not affected.
    const other = await connectCommunity(server.base, A, W.id, 'websocket', { label: 'A' });

    const commu = await metric(COMMU_CONNS);
    sockets.pop().disconnect();
    await metricUntil(COMMU_CONNS, (v) => v < commu, 'one fewer after a socket left');
    const again = await connectCommunity(server.base, B, V.id, 'websocket', { label: 'B again' });
    assert.ok(again.connected, 'the freed slot is usable');
    again.disconnect();
    other.disconnect();
    for (const s of sockets) s.disconnect();
  });
});
