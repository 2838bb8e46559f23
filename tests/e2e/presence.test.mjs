// SPEC §3 presence: the aggregate online status over a user's sockets, the grace
// period after a disconnect (shortened to 1 s / 2 s in a call for the tests), the
// reconnect with prevSocketId, and logout (no grace).
//
// Timing checks use lower bounds only (an event must not come before the grace
// period) and orderings against a "probe" user who drops at the same time and never
// comes back: when the probe's leave is seen, the grace deadline of every earlier
// drop has passed too. No fixed sleeps.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Api,
  TRANSPORTS,
  TIMINGS,
  MEDIA_OFF,
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
} from './harness.mjs';

let server;
let api;

before(async () => {
  server = await startServer();
  api = new Api(server.base);
});

after(async () => {
  closeAllSockets();
  if (server) await server.stop();
});

/** Simulates a network drop (not a logout): closes the engine.io connection. */
async function drop(socket) {
  const gone = disconnected(socket, 5000);
  socket.io.engine.close();
  await gone;
  return Date.now();
}

/** A fresh world per test: A, B in W (B1 watching), C outsider (C1), a public channel P. */
async function setup(transport = 'websocket') {
  const w = await makeWorld(api);
  w.B1 = await connectAuthed(server.base, w.B, w.W.id, 'websocket', { label: 'B1' });
  w.C1 = await connectAuthed(server.base, w.C, w.X.id, 'websocket', { label: 'C1' });
  w.P = await api.createChannel(w.A, w.W.id, { name: 'call' });
  w.transport = transport;
  w.barrier = (...sockets) => workspaceBarrier(api, w.A, w.W.id, [w.B1, ...sockets]);
  return w;
}

describe('online status aggregation', () => {
  it('connects and disconnects change the aggregate online > idle > offline, each change seen once', async () => {
    const { A, B1, C1, W, barrier, C, X } = await setup();
    resetAll(B1, C1);
    const A1 = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'A1' });
    let ev = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id });
    assert.deepEqual(ev.data, { userId: A.id, onlineStatus: 'online' });

    resetAll(B1);
    const A2 = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'A2', onlineStatus: 'idle' });
    assert.equal(A2.authSuccess.onlineStatus, 'idle');
    await barrier(A1, A2);
    B1.rec.none('online-status-updated', { where: (d) => d.userId === A.id, message: 'online + idle is still online' });
    A1.rec.none('my-online-status-updated', { message: 'my-online-status-updated is for manual changes only, not for a new connection' });

    // A1 (online) drops: after the grace period the aggregate is idle (A2).
    resetAll(B1);
    const t1 = await drop(A1);
    ev = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id, timeoutMs: TIMINGS.gracePeriodMs + 5000 });
    assert.equal(ev.data.onlineStatus, 'idle');
    assert.ok(ev.at - t1 >= TIMINGS.gracePeriodMs * 0.8, `status changed ${ev.at - t1} ms after the drop; grace is ${TIMINGS.gracePeriodMs} ms`);

    // A2 drops too: offline after the grace period.
    resetAll(B1);
    const t2 = await drop(A2);
    ev = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id, timeoutMs: TIMINGS.gracePeriodMs + 5000 });
    assert.deepEqual(ev.data, { userId: A.id, onlineStatus: 'offline' });
    assert.ok(ev.at - t2 >= TIMINGS.gracePeriodMs * 0.8, `offline ${ev.at - t2} ms after the drop`);

    // The full workspace state agrees.
    const state = await api.ok('GET', `/api/workspaces/${W.id}`, { token: B1.user.token });
    const a = state.users.find((u) => u.id === A.id);
    assert.equal(a.onlineStatus, 'offline');

    await barrier();
    assert.equal(B1.rec.all('online-status-updated', { where: (d) => d.userId === A.id }).length, 1);
    await workspaceBarrier(api, C, X.id, [C1]);
    C1.rec.none('online-status-updated', { where: (d) => d.userId === A.id, message: 'the outsider shares no workspace with A' });
  });

  it('auth with onlineStatus idle is announced as idle; the full state shows it', async () => {
    const { A, B, B1, W } = await setup();
    resetAll(B1);
    await connectAuthed(server.base, A, W.id, 'websocket', { label: 'A-idle', onlineStatus: 'idle' });
    const ev = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id });
    assert.equal(ev.data.onlineStatus, 'idle');
    const state = await api.ok('GET', `/api/workspaces/${W.id}`, { token: B.token });
    assert.equal(state.users.find((u) => u.id === A.id).onlineStatus, 'idle');
    assert.equal(state.users.find((u) => u.id === B.id).onlineStatus, 'online');
  });
});

describe('grace period and reconnect', () => {
  for (const transport of TRANSPORTS) {
    it(`over ${transport}: auth with prevSocketId inside the grace period answers reconnected:true and keeps the call; peers see no leave`, async () => {
      const { A, B, B1, W, P, barrier } = await setup(transport);
      const A1 = await connectAuthed(server.base, A, W.id, transport, { label: 'A1' });
      await api.selectOk(A, A1, P.id, { ...MEDIA_OFF, microphone: true });
      await api.selectOk(B, B1, P.id);
      // The probe: another member in the call who drops right after A1 and never returns.
      const E = await api.signup('Eve');
      await api.join(A, W.id, E);
      const E1 = await connectAuthed(server.base, E, W.id, 'websocket', { label: 'E1' });
      await api.selectOk(E, E1, P.id);
      await B1.rec.next('user-selected-channel', { where: (d) => d.userId === E.id });
      resetAll(B1);

      const oldId = A1.id;
      const probeId = E1.id; // socket.io-client forgets the id on disconnect
      await drop(A1);
      await drop(E1);
      const A1b = await connect(server.base, transport, { label: 'A1b' });
      const ok = await auth(A1b, A, W.id, { prevSocketId: oldId });
      assert.equal(ok.reconnected, true, `auth-success after a reconnect: ${JSON.stringify(ok)}`);
      assert.equal(ok.userId, A.id);

      // Wait until the probe's grace period is over (so A1's would be over too).
      const probeLeft = await B1.rec.next('user-unselected-channel', { where: (d) => d.userId === E.id, timeoutMs: TIMINGS.gracePeriodInCallMs + 5000 });
      assert.equal(probeLeft.data.socketId, probeId);
      await barrier(A1b);
      B1.rec.none('user-unselected-channel', { where: (d) => d.userId === A.id, message: 'a reconnect within the grace period is no leave' });
      B1.rec.none('online-status-updated', { where: (d) => d.userId === A.id, message: 'a reconnect within the grace period is not offline' });

      // The call is restored on the new socket.
      const au = await api.activeUsers(B, P.id);
      assert.equal(au.status, 200);
      const mine = au.body.filter((u) => u.userId === A.id);
      assert.equal(mine.length, 1, JSON.stringify(au.body));
      assert.equal(mine[0].socketId, A1b.id, 'the restored selection belongs to the new socket');
      assert.equal(mine[0].microphone, true, 'the media state is kept');
      resetAll(A1b, B1);
      A1b.emit('conversation-broadcast', { action: 'back', data: true });
      const got = await B1.rec.next('conversation-broadcast', { where: (d) => d.action === 'back' });
      assert.equal(got.data.userId, A.id);
      await A1b.rec.next('conversation-broadcast', { where: (d) => d.action === 'back' });
      const res = await api.mediaState(A, A1b, { ...MEDIA_OFF, microphone: true, speaking: true });
      assert.equal(res.status, 204, 'media-state on the restored socket');
      await B1.rec.next('media-state-updated', { where: (d) => d.userId === A.id && d.userMediaState.speaking === true });
      const un = await api.unselect(A, A1b, P.id);
      assert.equal(un.status, 204, 'the restored selection can be unselected');
      const left = await B1.rec.next('user-unselected-channel', { where: (d) => d.userId === A.id });
      assert.equal(left.data.socketId, A1b.id);
      A1b.disconnect();
    });
  }

  it('after the grace period in a call: user-unselected-channel, then offline; a late prevSocketId is no reconnect', async () => {
    const { A, B, B1, C1, W, P, barrier, C, X } = await setup();
    const A1 = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'A1' });
    await api.selectOk(A, A1, P.id);
    await B1.rec.next('user-selected-channel', { where: (d) => d.userId === A.id });
    resetAll(B1, C1);
    const oldId = A1.id;
    const t = await drop(A1);
    const left = await B1.rec.next('user-unselected-channel', { where: (d) => d.userId === A.id, timeoutMs: TIMINGS.gracePeriodInCallMs + 5000 });
    assert.deepEqual(left.data, { userId: A.id, channelId: P.id, socketId: oldId });
    assert.ok(left.at - t >= TIMINGS.gracePeriodInCallMs * 0.8, `left ${left.at - t} ms after the drop; the in-call grace is ${TIMINGS.gracePeriodInCallMs} ms`);
    const off = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id });
    assert.deepEqual(off.data, { userId: A.id, onlineStatus: 'offline' });
    const au = await api.activeUsers(B, P.id);
    assert.deepEqual(au.body, []);

    const late = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'late', prevSocketId: oldId });
    assert.equal(late.authSuccess.reconnected, false, 'prevSocketId after the grace period');
    const on = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id });
    assert.equal(on.data.onlineStatus, 'online');
    assert.deepEqual((await api.activeUsers(B, P.id)).body, [], 'the call is not restored after the grace period');
    await barrier(late);
    B1.rec.none('user-selected-channel', { where: (d) => d.userId === A.id });
    await workspaceBarrier(api, C, X.id, [C1]);
    C1.rec.none('user-unselected-channel');
    C1.rec.none('online-status-updated', { where: (d) => d.userId === A.id });
    late.disconnect();
  });

  it('prevSocketId of another user\'s socket does not take over its place', async () => {
    const { A, B, B1, W, P } = await setup();
    const A1 = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'A1' });
    await api.selectOk(A, A1, P.id);
    await B1.rec.next('user-selected-channel', { where: (d) => d.userId === A.id });
    resetAll(B1);
    const oldId = A1.id;
    await drop(A1);
    const thief = await connectAuthed(server.base, B, W.id, 'websocket', { label: 'thief', prevSocketId: oldId });
    assert.equal(thief.authSuccess.reconnected, false, 'another user cannot resume A\'s socket');
    assert.equal(thief.authSuccess.userId, B.id);
    const left = await B1.rec.next('user-unselected-channel', { where: (d) => d.userId === A.id, timeoutMs: TIMINGS.gracePeriodInCallMs + 5000 });
    assert.equal(left.data.socketId, oldId);
    const au = await api.activeUsers(B, P.id);
    assert.deepEqual(au.body, [], `nobody is left in the call: ${JSON.stringify(au.body)}`);
    thief.disconnect();
  });

  it('logout has no grace period: the call ends and prevSocketId is no reconnect', async () => {
    const { A, B, B1, W, P } = await setup();
    const A1 = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'A1' });
    await api.selectOk(A, A1, P.id);
    await B1.rec.next('user-selected-channel', { where: (d) => d.userId === A.id });
    // Probe dropped just before the logout: A's leave must come before the probe's.
    const E = await api.signup('Eve');
    await api.join(A, W.id, E);
    const E1 = await connectAuthed(server.base, E, W.id, 'websocket', { label: 'E1' });
    await api.selectOk(E, E1, P.id);
    await B1.rec.next('user-selected-channel', { where: (d) => d.userId === E.id });
    resetAll(B1);

    const oldId = A1.id;
    await drop(E1);
    A1.emit('logout');
    const { reason } = await disconnected(A1);
    assert.equal(reason, 'io server disconnect');
    const again = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'again', prevSocketId: oldId });
    assert.equal(again.authSuccess.reconnected, false, 'a logged-out socket cannot be resumed');

    const aLeft = await B1.rec.next('user-unselected-channel', { where: (d) => d.userId === A.id });
    assert.deepEqual(aLeft.data, { userId: A.id, channelId: P.id, socketId: oldId });
    const aOff = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id });
    assert.equal(aOff.data.onlineStatus, 'offline', 'A\'s only socket logged out: offline at once');
    const eLeft = await B1.rec.next('user-unselected-channel', { where: (d) => d.userId === E.id, timeoutMs: TIMINGS.gracePeriodInCallMs + 5000 });
    assert.ok(aLeft.seq < eLeft.seq, 'the logout ended the call at once, before the probe\'s grace period ran out');
    assert.ok(aOff.seq < eLeft.seq, 'the logout made A offline at once, before the probe\'s grace period ran out');
    const au = await api.activeUsers(B, P.id);
    assert.deepEqual(au.body, [], 'nobody is left in the call');
    again.disconnect();
  });
});

describe('a burst of state changes', () => {
  // A whole workspace coming online at once publishes faster than the delivery
  // task drains. With a bus of capacity 2 every burst outruns it: publishers
  // must wait for room (bus.publish_wait) instead of making the delivery lag,
  // which would disconnect every socket (each would then have to resync).
  it('40 devices coming online at once through a bus of capacity 2: every change seen, nothing lost, nobody disconnected', async () => {
    const small = await startServer({ env: { HUDDLE_BUS__CAPACITY: '2' } });
    const sockets = [];
    try {
      const api2 = new Api(small.base);
      const { A, B, W } = await makeWorld(api2);
      const users = [];
      for (let i = 0; i < 40; i++) {
        const u = await api2.signup(`burst${i}`);
        await api2.join(A, W.id, u);
        users.push(u);
      }
      const B1 = await connectAuthed(small.base, B, W.id, 'websocket', { label: 'B1' });
      sockets.push(B1);
      sockets.push(...(await Promise.all(
        users.map((u, i) => connectAuthed(small.base, u, W.id, 'websocket', { label: `U${i}` })),
      )));
      for (const u of users) {
        await B1.rec.next('online-status-updated', { where: (d) => d.userId === u.id && d.onlineStatus === 'online' });
      }
      await workspaceBarrier(api2, A, W.id, sockets);
      for (const s of sockets) {
        assert.ok(s.connected, `${s.rec.label} is still connected (${s.rec.disconnectReason})`);
      }
      const res = await api2.req('GET', '/metrics');
      const metric = (name) => {
        const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(String(res.body));
        assert.ok(m, `/metrics has ${name}`);
        return Number(m[1]);
      };
      assert.equal(metric('huddle_bus_lost_total'), 0, 'no bus subscriber lagged');
      assert.ok(metric('huddle_bus_publish_waits_total') > 0, 'the burst did outrun the delivery: publishers waited for room');
      assert.equal(metric('huddle_slow_consumer_disconnects_total'), 0);
    } finally {
      for (const s of sockets) s.disconnect();
      await small.stop();
    }
  });
});

describe('shutdown', () => {
  it('exits 0 on SIGTERM', async () => {
    await stopServerClean(server);
    server = null;
  });
});
