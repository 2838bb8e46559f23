// SPEC §3 auth and errors, §7 limits: auth-success on both transports, errors on both
// error channels, nothing for unauthenticated sockets, the auth timeout, unknown
// events, oversized payloads; the server keeps serving everyone else throughout.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  Api,
  TRANSPORTS,
  TIMINGS,
  startServer,
  stopServerClean,
  connect,
  connectAuthed,
  auth,
  closeAllSockets,
  makeWorld,
  resetAll,
  workspaceBarrier,
  disconnected,
  DEFAULT_TIMEOUT_MS,
} from './harness.mjs';

let server;
let api;
let A, B, C, W, X;

before(async () => {
  server = await startServer();
  api = new Api(server.base);
  ({ A, B, C, W, X } = await makeWorld(api));
});

after(async () => {
  closeAllSockets();
  if (server) await server.stop();
});

/** Waits for both error events of a failed client event; returns {general, specific}. */
async function expectErrors(socket, event, transaction, { since } = {}) {
  const general = await socket.rec.next('socket-api-error', { where: (d) => d.event === event, since });
  assert.equal(typeof general.data.message, 'string', `socket-api-error has a message: ${JSON.stringify(general.data)}`);
  assert.ok(general.data.message.length > 0);
  let specific = null;
  if (transaction !== undefined) {
    specific = await socket.rec.next(`socket-api-error-${transaction}`, { since });
    assert.equal(typeof specific.data.message, 'string', `socket-api-error-${transaction} has a message: ${JSON.stringify(specific.data)}`);
  }
  return { general, specific };
}

describe('auth', () => {
  for (const transport of TRANSPORTS) {
    it(`auth-success over ${transport} echoes the transaction and the requested status`, async () => {
      const s = await connect(server.base, transport, { label: `auth-${transport}` });
      const ok = await auth(s, A, W.id, { transaction: `tx-${transport}`, onlineStatus: 'idle' });
      assert.deepEqual(
        { transaction: ok.transaction, userId: ok.userId, onlineStatus: ok.onlineStatus, reconnected: ok.reconnected },
        { transaction: `tx-${transport}`, userId: A.id, onlineStatus: 'idle', reconnected: false },
      );
      s.disconnect();
    });
  }

  it('auth without transaction or onlineStatus defaults to online', async () => {
    const s = await connect(server.base, 'websocket', { label: 'no-tx' });
    s.emit('auth', { token: B.token, workspaceId: W.id });
    const r = await s.rec.next('auth-success');
    assert.equal(r.data.userId, B.id);
    assert.equal(r.data.onlineStatus, 'online');
    assert.equal(r.data.reconnected, false);
    s.disconnect();
  });

  it('a second session of the same user authenticates too; a signed-out token does not', async () => {
    const token2 = await api.signin(A);
    const s = await connect(server.base, 'websocket', { label: 'session2' });
    const ok = await auth(s, { ...A, token: token2 }, W.id);
    assert.equal(ok.userId, A.id);
    s.disconnect();

    const token3 = await api.signin(A);
    await api.ok('POST', '/api/auth/signout', { token: token3 }, [200, 204]);
    const s3 = await connect(server.base, 'websocket', { label: 'signed-out' });
    s3.emit('auth', { transaction: 'revoked', token: token3, workspaceId: W.id });
    await expectErrors(s3, 'auth', 'revoked');
    s3.rec.none('auth-success');
    s3.disconnect();
  });
});

describe('one socket, one workspace', () => {
  it('a second auth on an authenticated socket is refused and does not rebind it', async () => {
    const W2 = await api.createWorkspace(A, 'second');
    const s = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'bound-to-W' });
    const m = s.rec.mark();
    s.emit('auth', { transaction: 'rebind', token: A.token, workspaceId: W2.id });
    await expectErrors(s, 'auth', 'rebind');
    s.rec.none('auth-success', { since: m });
    await api.renameWorkspace(A, W2.id, 'second renamed');
    await workspaceBarrier(api, A, W.id, [s]);
    s.rec.none('workspace-updated', { where: (d) => d.workspace.id === W2.id, message: 'the socket stays bound to W' });
    s.disconnect();
  });
});

describe('bad input on the socket', () => {
  let A1, C1;
  before(async () => {
    A1 = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'A1' });
    C1 = await connectAuthed(server.base, C, X.id, 'websocket', { label: 'C1' });
  });

  it('events before auth get socket-api-error (both channels) and no workspace events', async () => {
    for (const transport of TRANSPORTS) {
      const s = await connect(server.base, transport, { label: `pre-auth-${transport}` });
      s.emit('conversation-broadcast', { transaction: 'pre', action: 'x', data: 1 });
      await expectErrors(s, 'conversation-broadcast', 'pre');
      await workspaceBarrier(api, A, W.id, [A1]);
      const ch = await api.createChannel(A, W.id, { name: 'while-unauthed' });
      await A1.rec.next('channel-created', { where: (d) => d.channelId === ch.id });
      await workspaceBarrier(api, A, W.id, [A1]);
      const other = s.rec.events.filter((r) => !r.event.startsWith('socket-api-error'));
      assert.deepEqual(other.map((r) => r.event), [], 'an unauthenticated socket receives no events');
      s.disconnect();
    }
  });

  const badAuth = () => [
    ['missing token', { workspaceId: W.id }],
    ['garbage token', { token: 'not-a-jwt', workspaceId: W.id }],
    ['forged token', { token: A.token.slice(0, -4) + (A.token.endsWith('AAAA') ? 'BBBB' : 'AAAA'), workspaceId: W.id }],
    ['token of wrong type', { token: 12345, workspaceId: W.id }],
    ['unknown workspace', { token: A.token, workspaceId: randomUUID() }],
    ['workspace the user is not a member of', { token: A.token, workspaceId: X.id }],
    ['workspaceId not a uuid', { token: A.token, workspaceId: 'not-a-uuid' }],
    ['workspaceId of wrong type', { token: A.token, workspaceId: 42 }],
    ['missing workspaceId', { token: A.token }],
    ['unknown onlineStatus', { token: A.token, workspaceId: W.id, onlineStatus: 'busy' }],
    ['onlineStatus of wrong type', { token: A.token, workspaceId: W.id, onlineStatus: true }],
    ['prevSocketId of wrong type', { token: A.token, workspaceId: W.id, prevSocketId: { x: 1 } }],
  ];

  it('auth errors arrive on socket-api-error and socket-api-error-${transaction}; the socket stays unauthenticated', async () => {
    let i = 0;
    for (const [what, payload] of badAuth()) {
      const transaction = `bad-${++i}`;
      const s = await connect(server.base, i % 2 ? 'websocket' : 'polling', { label: `bad auth: ${what}` });
      s.emit('auth', { transaction, ...payload });
      const { general, specific } = await expectErrors(s, 'auth', transaction);
      assert.equal(general.data.event, 'auth', what);
      assert.ok(specific.data.message.length > 0, what);
      // Still unauthenticated: no workspace events reach it.
      await workspaceBarrier(api, A, W.id, [A1]);
      s.rec.none('auth-success', { message: `${what}: no auth-success` });
      s.rec.none('workspace-updated', { message: `${what}: no events after a failed auth` });
      s.disconnect();
    }
  });

  it('auth payloads that are not objects get socket-api-error {event:"auth"}', async () => {
    for (const payload of ['a string', 42, null, [1, 2, 3]]) {
      const s = await connect(server.base, 'websocket', { label: `auth(${JSON.stringify(payload)})` });
      s.emit('auth', payload);
      await expectErrors(s, 'auth', undefined);
      s.rec.none('auth-success');
      s.disconnect();
    }
    const s = await connect(server.base, 'websocket', { label: 'auth()' });
    s.emit('auth');
    await expectErrors(s, 'auth', undefined);
    s.disconnect();
  });

  it('unknown events are ignored or answered with socket-api-error; the server keeps serving', async () => {
    resetAll(A1);
    A1.emit('no-such-event', { transaction: 'unknown-1', x: 1 });
    A1.emit('auth-success', { userId: B.id });
    A1.emit('workspace-updated', { workspace: { id: W.id, name: 'spoofed' } });
    A1.emit('conversation-broadcast', 'not an object');
    A1.emit('conversation-broadcast', null);
    A1.emit('conversation-broadcast', { transaction: 'not-in-call', action: 'x', data: 1 });
    A1.emit('x'.repeat(1000), {});
    A1.emit('logout-typo');
    await workspaceBarrier(api, A, W.id, [A1]);
    assert.ok(A1.connected, 'A1 is still connected');
    const errs = A1.rec.all('socket-api-error');
    for (const e of errs) {
      assert.equal(typeof e.data.event, 'string', JSON.stringify(e.data));
      assert.equal(typeof e.data.message, 'string', JSON.stringify(e.data));
    }
    A1.rec.none('workspace-updated', { where: (d) => d.workspace.name === 'spoofed', message: 'client-sent server events are not relayed' });
    // Still fully working afterwards.
    const ch = await api.createChannel(A, W.id, { name: 'after-unknown' });
    await A1.rec.next('channel-created', { where: (d) => d.channelId === ch.id });
    const h = await api.req('GET', '/healthz');
    assert.equal(h.status, 200);
  });

  for (const transport of TRANSPORTS) {
    it(`a payload over 64 KiB over ${transport} is refused without hurting the server or other clients`, async (t) => {
      const P = await api.createChannel(A, W.id, { name: `big-${transport}` });
      const big = await connectAuthed(server.base, A, W.id, transport, { label: `big-${transport}` });
      const peer = await connectAuthed(server.base, B, W.id, 'websocket', { label: `peer-${transport}` });
      await api.selectOk(A, big, P.id);
      await api.selectOk(B, peer, P.id);
      resetAll(big, peer);

      big.emit('conversation-broadcast', { transaction: 'huge', action: 'huge', data: 'x'.repeat(100 * 1024) });
      // Either the server answers with an error or it closes that connection; both are fine.
      const outcome = await Promise.race([
        big.rec.next('socket-api-error-huge', { timeoutMs: 10000 }).then(() => 'error'),
        disconnected(big, 10000).then(() => 'disconnected'),
        big.rec.next('conversation-broadcast', { where: (d) => d.action === 'huge', timeoutMs: 10000 }).then(() => 'relayed'),
      ]);
      big.rec.cancelWaiters();
      t.diagnostic(`oversized message: ${outcome}`);
      assert.notEqual(outcome, 'relayed', 'a message over 64 KiB must not be relayed');

      // The server is alive and serves the others.
      assert.equal((await api.req('GET', '/healthz')).status, 200);
      peer.emit('conversation-broadcast', { action: 'still-there', data: 1 });
      await peer.rec.next('conversation-broadcast', { where: (d) => d.action === 'still-there' });
      await workspaceBarrier(api, A, W.id, [A1, peer]);
      peer.rec.none('conversation-broadcast', { where: (d) => d.action === 'huge', message: 'the oversized message was not relayed' });
      const fresh = await connectAuthed(server.base, C, X.id, transport, { label: 'fresh' });
      assert.equal(fresh.authSuccess.userId, C.id);
      fresh.disconnect();
      big.disconnect();
      peer.disconnect();
    });
  }
});

describe('limits (SPEC §7)', () => {
  it('at most 16 live connections per user: the 17th is refused, the others keep working', async () => {
    const U = await api.signup('Many');
    await api.join(A, W.id, U);
    const sockets = [];
    for (let i = 0; i < 16; i++) {
      sockets.push(await connectAuthed(server.base, U, W.id, 'websocket', { label: `U${i + 1}` }));
    }
    const extra = await connect(server.base, 'websocket', { label: 'U17' });
    extra.emit('auth', { transaction: 'seventeenth', token: U.token, workspaceId: W.id });
    const r = await Promise.race([
      extra.rec.next(['auth-success', 'socket-api-error-seventeenth']),
      disconnected(extra, DEFAULT_TIMEOUT_MS).then(() => ({ event: 'disconnect' })),
    ]);
    extra.rec.cancelWaiters();
    assert.notEqual(r.event, 'auth-success', 'a 17th connection of one user is refused');
    await workspaceBarrier(api, A, W.id, sockets);
    // Once one closes (logout: no grace period), a new one is accepted.
    sockets[0].emit('logout');
    await disconnected(sockets[0]);
    const again = await connectAuthed(server.base, U, W.id, 'websocket', { label: 'U-again' });
    assert.equal(again.authSuccess.userId, U.id);
    for (const s of [...sockets, extra, again]) s.disconnect();
  });

  it('a flood of client events is rate limited (50/s, burst 100) without hurting other clients', async (t) => {
    const P = await api.createChannel(A, W.id, { name: 'flood' });
    const flooder = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'flooder' });
    const peer = await connectAuthed(server.base, B, W.id, 'websocket', { label: 'flood-peer' });
    await api.selectOk(A, flooder, P.id);
    await api.selectOk(B, peer, P.id);
    resetAll(flooder, peer);
    const N = 500;
    for (let i = 0; i < N; i++) flooder.emit('conversation-broadcast', { action: 'flood', data: i });
    // B's own broadcast after the flood is a barrier for the flood's relays to B.
    peer.emit('conversation-broadcast', { action: 'after-flood', data: null });
    await peer.rec.next('conversation-broadcast', { where: (d) => d.action === 'after-flood', timeoutMs: 15000 });
    await workspaceBarrier(api, A, W.id, [peer]);
    const relayed = peer.rec.all('conversation-broadcast', { where: (d) => d.action === 'flood' }).length;
    t.diagnostic(`relayed ${relayed} of ${N} flooded events; flooder connected: ${flooder.connected}; errors: ${flooder.rec.all('socket-api-error').length}`);
    assert.ok(relayed < N, `a burst of ${N} events in a few ms must be limited (relayed ${relayed})`);
    assert.ok(relayed <= 200, `burst 100 (+50/s) allows about 100, relayed ${relayed}`);
    assert.equal((await api.req('GET', '/healthz')).status, 200);
    flooder.disconnect();
    peer.disconnect();
  });
});

describe('sessions', () => {
  it('signing out a session disconnects the sockets authenticated with it, not the others', async () => {
    const U = await api.signup('Sess');
    await api.join(A, W.id, U);
    const token2 = await api.signin(U);
    const s1 = await connectAuthed(server.base, U, W.id, 'websocket', { label: 'session-1' });
    const s2 = await connectAuthed(server.base, { ...U, token: token2 }, W.id, 'polling', { label: 'session-2' });
    await api.ok('POST', '/api/auth/signout', { token: token2 }, [200, 204]);
    await disconnected(s2);
    await workspaceBarrier(api, A, W.id, [s1]);
    assert.ok(s1.connected, 'the other session\'s socket stays');
    s1.disconnect();
  });

  it('a password change sends password-changed (null) to all the user\'s sockets, then disconnects the other sessions\' sockets', async () => {
    const U = await api.signup('Pwd');
    await api.join(A, W.id, U);
    const token2 = await api.signin(U);
    const mine = await connectAuthed(server.base, U, W.id, 'websocket', { label: 'changer' });
    const other = await connectAuthed(server.base, { ...U, token: token2 }, W.id, 'websocket', { label: 'other-session' });
    const res = await api.req('POST', '/api/me/password', { token: U.token, body: { oldPassword: U.password, newPassword: 'another long passphrase' } });
    assert.ok([200, 204].includes(res.status), JSON.stringify(res.body));
    const ev = await mine.rec.next('password-changed');
    assert.deepEqual(ev.args, [null]);
    await disconnected(other);
    assert.deepEqual(other.rec.all('password-changed').map((r) => r.args), [[null]], 'the other session\'s socket is told before it is disconnected');
    await workspaceBarrier(api, A, W.id, [mine]);
    assert.ok(mine.connected);
    mine.disconnect();
  });
});

describe('auth timeout', () => {
  for (const transport of TRANSPORTS) {
    it(`an unauthenticated ${transport} socket is disconnected after the auth timeout and got no events`, async () => {
      const authed = await connectAuthed(server.base, A, W.id, transport, { label: `authed-${transport}` });
      const t0 = Date.now();
      const lazy = await connect(server.base, transport, { label: `lazy-${transport}` });
      const { reason, at } = await disconnected(lazy, TIMINGS.authTimeoutMs + 5000);
      const elapsed = at - t0;
      assert.ok(elapsed >= TIMINGS.authTimeoutMs * 0.8, `disconnected after ${elapsed} ms, the auth timeout is ${TIMINGS.authTimeoutMs} ms`);
      assert.ok(['io server disconnect', 'transport close', 'transport error'].includes(reason), reason);
      assert.deepEqual(lazy.rec.events.map((r) => r.event), [], 'no events before auth');
      // The authenticated socket, connected just as long, is still served.
      assert.ok(authed.connected, 'an authenticated socket is not subject to the auth timeout');
      await workspaceBarrier(api, A, W.id, [authed]);
      authed.disconnect();
    });
  }
});

describe('logout', () => {
  for (const transport of TRANSPORTS) {
    it(`logout over ${transport} disconnects the socket and it gets nothing more`, async () => {
      const s = await connectAuthed(server.base, A, W.id, transport, { label: `logout-${transport}` });
      const watcher = await connectAuthed(server.base, B, W.id, 'websocket', { label: 'watcher' });
      s.emit('logout');
      const { reason } = await disconnected(s, 5000);
      assert.equal(reason, 'io server disconnect', 'the server disconnects the socket');
      await workspaceBarrier(api, A, W.id, [watcher]);
      watcher.disconnect();
    });
  }
});

describe('shutdown', () => {
  it('exits 0 on SIGTERM after all of the above', async () => {
    await stopServerClean(server);
    server = null;
  });
});
