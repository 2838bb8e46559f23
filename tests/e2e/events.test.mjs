// SPEC §3: every server → client event reaches its audience, and does not reach an
// outsider (C, in another workspace) or a non-member of a private channel.
// The whole scenario runs once per transport (websocket, long-polling).
//
// Cast: A (admin of W, two devices A1 and A2), B (member of W, socket B1),
// C (outsider: own workspace X, socket C1).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Api,
  TRANSPORTS,
  startServer,
  stopServerClean,
  connectAuthed,
  closeAllSockets,
  makeWorld,
  allGet,
  resetAll,
  workspaceBarrier,
  pingSocket,
  isUuid,
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

const isTs = (v) => (typeof v === 'number' && v > 0) || (typeof v === 'string' && !Number.isNaN(Date.parse(v)));

for (const transport of TRANSPORTS) {
  describe(`workspace events over ${transport}`, () => {
    let A, B, C, W, X;
    let A1, A2, B1, C1;
    let P; // a public channel of W, for calls
    let Q; // another public channel of W

    // Barriers: the workspace rename reaches everyone connected to that workspace.
    const barrierW = (...extra) => workspaceBarrier(api, A, W.id, [A1, A2, B1, ...extra]);
    const barrierX = () => workspaceBarrier(api, C, X.id, [C1]);
    const all = () => [A1, A2, B1, C1];

    before(async () => {
      ({ A, B, C, W, X } = await makeWorld(api));
      A1 = await connectAuthed(server.base, A, W.id, transport, { label: 'A1' });
      A2 = await connectAuthed(server.base, A, W.id, transport, { label: 'A2' });
      B1 = await connectAuthed(server.base, B, W.id, transport, { label: 'B1' });
      C1 = await connectAuthed(server.base, C, X.id, transport, { label: 'C1' });
      P = await api.createChannel(A, W.id, { name: 'voice' });
      Q = await api.createChannel(A, W.id, { name: 'other' });
    });

    it('auth-success carries {transaction, userId, onlineStatus, reconnected}', () => {
      const s = A1.authSuccess;
      assert.equal(s.transaction, 'auth');
      assert.equal(s.userId, A.id);
      assert.equal(s.onlineStatus, 'online');
      assert.equal(s.reconnected, false);
      assert.equal(B1.authSuccess.userId, B.id);
      assert.ok(A1.id && A2.id && A1.id !== A2.id, 'each device has its own socket id');
    });

    it('workspace-updated reaches every socket of the workspace and no outsider', async () => {
      resetAll(all());
      await api.renameWorkspace(A, W.id, `W renamed over ${transport}`);
      const got = await allGet([A1, A2, B1], 'workspace-updated', {
        where: (d) => d.workspace.id === W.id && d.workspace.name === `W renamed over ${transport}`,
      });
      for (const r of got) assert.equal(typeof r.data.workspace, 'object');
      await barrierX();
      C1.rec.none('workspace-updated', { where: (d) => d.workspace.id === W.id });
    });

    it('user-joined to the workspace, workspace-added to the joining user; user-leaved-workspace on leave', async () => {
      const D = await api.signup('Dan');
      const Y = await api.createWorkspace(D, 'Y');
      const D1 = await connectAuthed(server.base, D, Y.id, transport, { label: 'D1' });
      resetAll(all());

      await api.join(A, W.id, D);
      await allGet([A1, A2, B1], 'user-joined', { where: (d) => d.user.id === D.id });
      const added = await D1.rec.next('workspace-added', { where: (d) => d.workspace.id === W.id });
      assert.equal(added.data.workspace.name !== undefined, true, 'workspace-added carries the workspace');

      // D1 is bound to Y: W's events do not reach it even though D is now a member of W.
      await barrierW();
      await workspaceBarrier(api, D, Y.id, [D1]);
      D1.rec.none('user-joined');
      D1.rec.none('workspace-updated', { where: (d) => d.workspace.id === W.id });
      await barrierX();
      C1.rec.none('user-joined');
      C1.rec.none('workspace-added');
      for (const s of [A1, A2, B1]) s.rec.none('workspace-added', { message: 'workspace-added goes to the joining user only' });

      resetAll(all());
      await api.ok('POST', `/api/workspaces/${W.id}/leave`, { token: D.token }, [200, 204]);
      const left = await allGet([A1, A2, B1], 'user-leaved-workspace', { where: (d) => d.userId === D.id });
      for (const r of left) assert.deepEqual(r.data, { userId: D.id, workspaceId: W.id });
      await barrierX();
      C1.rec.none('user-leaved-workspace');
      D1.disconnect();
    });

    it('channel-created {channelId, workspaceId}: public to the workspace, private only to its members', async () => {
      resetAll(all());
      const pub = await api.createChannel(A, W.id, { name: 'public-news' });
      const got = await allGet([A1, A2, B1], 'channel-created', { where: (d) => d.channelId === pub.id });
      for (const r of got) assert.deepEqual(r.data, { channelId: pub.id, workspaceId: W.id }, 'ids only');

      const secret = await api.createChannel(A, W.id, { name: 'secret', isPrivate: true });
      await allGet([A1, A2], 'channel-created', { where: (d) => d.channelId === secret.id });
      const withB = await api.createChannel(A, W.id, { name: 'secret-with-bob', isPrivate: true, users: [B.id] });
      await allGet([A1, A2, B1], 'channel-created', { where: (d) => d.channelId === withB.id });

      await barrierW();
      B1.rec.none('channel-created', { where: (d) => d.channelId === secret.id, message: 'B is not a member of the private channel' });
      await barrierX();
      C1.rec.none('channel-created');
    });

    it('channel-updated goes to the channel\'s members only', async () => {
      const secret = await api.createChannel(A, W.id, { name: 'secret-upd', isPrivate: true });
      resetAll(all());
      await api.ok('PATCH', `/api/channels/${secret.id}`, { token: A.token, body: { name: 'secret-renamed' } });
      const got = await allGet([A1, A2], 'channel-updated', { where: (d) => d.channel.id === secret.id });
      for (const r of got) assert.equal(r.data.channel.name, 'secret-renamed');

      // A private channel B was made a member of at creation.
      const shared = await api.createChannel(A, W.id, { name: 'shared-upd', isPrivate: true, users: [B.id] });
      await api.ok('PATCH', `/api/channels/${shared.id}`, { token: A.token, body: { name: 'shared-renamed' } });
      await allGet([A1, A2, B1], 'channel-updated', { where: (d) => d.channel.id === shared.id && d.channel.name === 'shared-renamed' });

      await api.ok('PATCH', `/api/channels/${Q.id}`, { token: A.token, body: { name: 'other-renamed' } });
      await allGet([A1, A2, B1], 'channel-updated', { where: (d) => d.channel.id === Q.id && d.channel.name === 'other-renamed' });

      await barrierW();
      B1.rec.none('channel-updated', { where: (d) => d.channel.id === secret.id, message: 'B may not see the private channel' });
      await barrierX();
      C1.rec.none('channel-updated');
    });

    it('channel membership changes while connected: an added member starts, a removed member stops receiving the channel\'s events', async () => {
      const secret = await api.createChannel(A, W.id, { name: 'grows', isPrivate: true });
      await A1.rec.next('channel-created', { where: (d) => d.channelId === secret.id });
      resetAll(all());
      await api.ok('POST', `/api/channels/${secret.id}/members`, { token: A.token, body: { users: [B.id] } }, [200, 201, 204]);
      await api.ok('PATCH', `/api/channels/${secret.id}`, { token: A.token, body: { name: 'grows-1' } });
      await allGet([A1, B1], 'channel-updated', { where: (d) => d.channel.id === secret.id && d.channel.name === 'grows-1' });
      // B, now a member, sees calls in it too.
      await api.selectOk(A, A1, secret.id);
      await B1.rec.next('user-selected-channel', { where: (d) => d.channelId === secret.id && d.userId === A.id });
      assert.equal((await api.unselect(A, A1, secret.id)).status, 204);
      await B1.rec.next('user-unselected-channel', { where: (d) => d.channelId === secret.id && d.userId === A.id });

      // B joins a call there with A, then is removed from the channel: nothing more
      // about the channel reaches B1, the call's broadcasts included (SPEC §7).
      await api.selectOk(A, A1, secret.id);
      const B2 = await connectAuthed(server.base, B, W.id, transport, { label: 'B2' });
      await api.selectOk(B, B2, secret.id);
      await A1.rec.next('user-selected-channel', { where: (d) => d.channelId === secret.id && d.userId === B.id });
      await api.ok('DELETE', `/api/channels/${secret.id}/members/${B.id}`, { token: A.token }, [200, 204]);
      resetAll(all(), B2);
      A1.emit('conversation-broadcast', { action: 'members-only', data: null });
      await A1.rec.next('conversation-broadcast', { where: (d) => d.action === 'members-only' });
      assert.equal((await api.unselect(A, A1, secret.id)).status, 204);
      const au = await api.activeUsers(A, secret.id);
      assert.ok(!au.body.some((u) => u.userId === B.id), `a removed member is not left in the channel's call: ${JSON.stringify(au.body)}`);
      await barrierW(B2);
      B2.rec.none('conversation-broadcast', { message: 'B was removed from the private channel: its call is closed to B' });
      B2.rec.none('user-unselected-channel', { where: (d) => d.channelId === secret.id && d.userId === A.id });
      B2.disconnect();
      resetAll(all());
      await api.ok('PATCH', `/api/channels/${secret.id}`, { token: A.token, body: { name: 'grows-2' } });
      await allGet([A1, A2], 'channel-updated', { where: (d) => d.channel.id === secret.id && d.channel.name === 'grows-2' });
      await api.selectOk(A, A1, secret.id);
      await A2.rec.next('user-selected-channel', { where: (d) => d.channelId === secret.id });
      assert.equal((await api.unselect(A, A1, secret.id)).status, 204);
      await A2.rec.next('user-unselected-channel', { where: (d) => d.channelId === secret.id });
      await barrierW();
      for (const ev of ['channel-updated', 'user-selected-channel', 'user-unselected-channel']) {
        B1.rec.none(ev, { where: (d) => (d.channel?.id ?? d.channelId) === secret.id, message: `B was removed from the private channel (${ev})` });
      }
    });

    it('user events reach each workspace of the user, whichever workspace the user\'s sockets are bound to', async () => {
      // W2: A and E; E is not in W. A's sockets are bound to W only.
      const E = await api.signup('Eli');
      const W2 = await api.createWorkspace(A, 'W2');
      await api.join(A, W2.id, E);
      const E1 = await connectAuthed(server.base, E, W2.id, transport, { label: 'E1' });
      resetAll(all(), E1);

      await api.ok('PATCH', '/api/me', { token: A.token, body: { name: `Ann ${transport}` } });
      await allGet([B1, E1], 'user-updated', { where: (d) => d.user.id === A.id && d.user.name === `Ann ${transport}` });

      // Both of A's devices go idle: the aggregate changes, every workspace of A hears it.
      assert.equal((await api.onlineStatus(A, A1, 'idle')).status, 204);
      assert.equal((await api.onlineStatus(A, A2, 'idle')).status, 204);
      await allGet([B1, E1], 'online-status-updated', { where: (d) => d.userId === A.id && d.onlineStatus === 'idle' });
      assert.equal((await api.onlineStatus(A, A1, 'online')).status, 204);
      await allGet([B1, E1], 'online-status-updated', { where: (d) => d.userId === A.id && d.onlineStatus === 'online' });
      assert.equal((await api.onlineStatus(A, A2, 'online')).status, 204);

      // E is in W2 only: W's own events do not reach E1.
      await barrierW();
      await workspaceBarrier(api, A, W2.id, [E1]);
      E1.rec.none('workspace-updated', { where: (d) => d.workspace.id === W.id });
      await barrierX();
      C1.rec.none('user-updated', { where: (d) => d.user.id === A.id });
      C1.rec.none('online-status-updated', { where: (d) => d.userId === A.id });
      E1.disconnect();
    });

    it('channel-deleted goes to who could see the channel', async () => {
      const secret = await api.createChannel(A, W.id, { name: 'secret-del', isPrivate: true });
      const pub = await api.createChannel(A, W.id, { name: 'pub-del' });
      resetAll(all());
      await api.ok('DELETE', `/api/channels/${secret.id}`, { token: A.token }, [200, 204]);
      const got = await allGet([A1, A2], 'channel-deleted', { where: (d) => d.channelId === secret.id });
      for (const r of got) assert.deepEqual(r.data, { channelId: secret.id, workspaceId: W.id });
      await api.ok('DELETE', `/api/channels/${pub.id}`, { token: A.token }, [200, 204]);
      await allGet([A1, A2, B1], 'channel-deleted', { where: (d) => d.channelId === pub.id && d.workspaceId === W.id });

      await barrierW();
      B1.rec.none('channel-deleted', { where: (d) => d.channelId === secret.id });
      await barrierX();
      C1.rec.none('channel-deleted');
    });

    it('user-updated to each workspace of the user, me-updated only to the user', async () => {
      resetAll(all());
      const newName = `Bobby ${transport}`;
      await api.ok('PATCH', '/api/me', { token: B.token, body: { name: newName } });
      await allGet([A1, A2, B1], 'user-updated', { where: (d) => d.user.id === B.id && d.user.name === newName });
      const me = await B1.rec.next('me-updated', { where: (d) => d.user.id === B.id });
      assert.equal(me.data.user.name, newName);

      await api.ok('POST', '/api/me/app-settings', { token: B.token, body: { theme: 'dark' } }, [200, 204]);
      await B1.rec.next('me-updated', { where: (d) => d.whatWasUpdated === 'app-settings' && d.user.id === B.id });

      await barrierW();
      A1.rec.none('me-updated');
      A2.rec.none('me-updated');
      await barrierX();
      C1.rec.none('user-updated');
      C1.rec.none('me-updated');
    });

    it('online status: my-online-status-updated to the other devices; online-status-updated only when the aggregate changes', async () => {
      resetAll(all());
      // A2 goes idle; A1 is still online, so the aggregate stays online.
      let res = await api.onlineStatus(A, A2, 'idle');
      assert.equal(res.status, 204, JSON.stringify(res.body));
      await A1.rec.next('my-online-status-updated');
      await barrierW();
      A2.rec.none('my-online-status-updated', { message: 'the device that changed its status is not told' });
      B1.rec.none('online-status-updated', { where: (d) => d.userId === A.id, message: 'aggregate is still online' });

      // A1 goes idle too: the aggregate becomes idle.
      resetAll(all());
      res = await api.onlineStatus(A, A1, 'idle');
      assert.equal(res.status, 204, JSON.stringify(res.body));
      const mine = await A2.rec.next('my-online-status-updated');
      assert.deepEqual(mine.data, { onlineStatus: 'idle' });
      const seen = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id });
      assert.deepEqual(seen.data, { userId: A.id, onlineStatus: 'idle' });

      // Back online on A1: aggregate online again.
      resetAll(all());
      res = await api.onlineStatus(A, A1, 'online');
      assert.equal(res.status, 204);
      const back = await B1.rec.next('online-status-updated', { where: (d) => d.userId === A.id });
      assert.equal(back.data.onlineStatus, 'online');
      // A2 online too: no change of the aggregate.
      res = await api.onlineStatus(A, A2, 'online');
      assert.equal(res.status, 204);
      await barrierW();
      assert.equal(B1.rec.all('online-status-updated', { where: (d) => d.userId === A.id }).length, 1, 'exactly one update for the one change');
      await barrierX();
      C1.rec.none('online-status-updated');
      C1.rec.none('my-online-status-updated');

      res = await api.onlineStatus(A, A1, 'busy');
      assert.equal(res.status, 400, 'an unknown status is a validation error');
    });

    it('select: user-selected-channel to the channel, connectionOptions to the caller, active-users lists the device', async () => {
      resetAll(all());
      const media = { microphone: true, speakers: true, screen: false, camera: false, speaking: false };
      const body = await api.selectOk(A, A1, P.id, media);
      assert.equal(typeof body.connectionOptions, 'object');
      const sel = await B1.rec.next('user-selected-channel', { where: (d) => d.userId === A.id });
      assert.equal(sel.data.channelId, P.id);
      assert.equal(sel.data.socketId, A1.id);
      assert.equal(sel.data.userMediaState.microphone, true);
      assert.equal(sel.data.userMediaState.speakers, true);
      assert.equal(sel.data.userMediaState.camera, false);

      const au = await api.activeUsers(B, P.id);
      assert.equal(au.status, 200, JSON.stringify(au.body));
      assert.ok(Array.isArray(au.body), `active-users is a bare array: ${JSON.stringify(au.body)}`);
      assert.equal(au.body.length, 1);
      assert.equal(au.body[0].userId, A.id);
      assert.equal(au.body[0].socketId, A1.id);
      for (const k of ['microphone', 'speakers', 'screen', 'camera', 'speaking']) {
        assert.equal(typeof au.body[0][k], 'boolean', `active user has ${k}`);
      }
      assert.equal(au.body[0].microphone, true);

      await barrierX();
      C1.rec.none('user-selected-channel');
    });

    it('media-state-updated: server sets/removes start*Ts, microphone off forces speaking:false', async () => {
      resetAll(all());
      let res = await api.mediaState(A, A1, { microphone: true, speakers: true, screen: false, camera: true, speaking: true });
      assert.equal(res.status, 204, JSON.stringify(res.body));
      let ev = await B1.rec.next('media-state-updated', { where: (d) => d.userId === A.id });
      assert.equal(ev.data.channelId, P.id);
      let ms = ev.data.userMediaState;
      assert.equal(ms.camera, true);
      assert.equal(ms.speaking, true);
      assert.ok(isTs(ms.startCameraTs), `startCameraTs set: ${JSON.stringify(ms)}`);
      assert.ok(isTs(ms.startSpeakingTs), `startSpeakingTs set: ${JSON.stringify(ms)}`);
      assert.equal(ms.startScreenTs, undefined, 'screen is off: no startScreenTs');
      const cameraTs = ms.startCameraTs;

      let au = await api.activeUsers(B, P.id);
      assert.equal(au.body[0].camera, true);
      assert.deepEqual(au.body[0].startCameraTs, cameraTs);

      // microphone off while "speaking": speaking is forced off; screen turns on; camera stays on.
      res = await api.mediaState(A, A1, { microphone: false, speakers: true, screen: true, camera: true, speaking: true });
      assert.equal(res.status, 204);
      ev = await B1.rec.next('media-state-updated', { where: (d) => d.userId === A.id });
      ms = ev.data.userMediaState;
      assert.equal(ms.microphone, false);
      assert.equal(ms.speaking, false, 'microphone off forces speaking:false');
      assert.equal(ms.startSpeakingTs, undefined, 'speaking off removes startSpeakingTs');
      assert.ok(isTs(ms.startScreenTs), 'screen on sets startScreenTs');
      if (ms.startCameraTs !== undefined) assert.deepEqual(ms.startCameraTs, cameraTs, 'camera still on: its start time is kept');
      au = await api.activeUsers(B, P.id);
      assert.equal(au.body[0].speaking, false);
      assert.deepEqual(au.body[0].startCameraTs, cameraTs, 'camera still on: startCameraTs unchanged');
      assert.ok(isTs(au.body[0].startScreenTs));
      assert.equal(au.body[0].startSpeakingTs, undefined);

      // camera off removes startCameraTs
      res = await api.mediaState(A, A1, { microphone: false, speakers: true, screen: true, camera: false, speaking: false });
      assert.equal(res.status, 204);
      ev = await B1.rec.next('media-state-updated', { where: (d) => d.userId === A.id });
      assert.equal(ev.data.userMediaState.camera, false);
      assert.equal(ev.data.userMediaState.startCameraTs, undefined, 'camera off removes startCameraTs');
      au = await api.activeUsers(B, P.id);
      assert.equal(au.body[0].startCameraTs, undefined);

      // Not in a channel: A2 has not selected anything.
      res = await api.mediaState(A, A2, { microphone: true, speakers: true, screen: false, camera: false, speaking: false });
      assert.equal(res.status, 400, `media-state of a device that is not in a channel: ${JSON.stringify(res.body)}`);
      // Another user's socket.
      res = await api.mediaState(B, A1, { microphone: true, speakers: true, screen: false, camera: false, speaking: false });
      assert.ok([400, 403, 404].includes(res.status), `media-state with another user's socket: ${res.status}`);
      // Wrong types.
      res = await api.mediaState(A, A1, { microphone: 'yes', speakers: true, screen: false, camera: false, speaking: false });
      assert.equal(res.status, 400);

      await barrierX();
      C1.rec.none('media-state-updated');
    });

    it('conversation-broadcast relays {action, userId, data} to the sockets in the call only, sender included', async () => {
      await api.selectOk(B, B1, P.id);
      await A1.rec.next('user-selected-channel', { where: (d) => d.userId === B.id });
      resetAll(all());

      A1.emit('conversation-broadcast', { action: 'hand-up', userId: 'spoofed', data: { state: true } });
      const got = await allGet([A1, B1], 'conversation-broadcast', { where: (d) => d.action === 'hand-up' });
      for (const r of got) assert.deepEqual(r.data, { action: 'hand-up', userId: A.id, data: { state: true } });

      B1.emit('conversation-broadcast', { action: 'mini-chat', data: { text: 'hi' } });
      const fromB = await A1.rec.next('conversation-broadcast', { where: (d) => d.action === 'mini-chat' });
      assert.deepEqual(fromB.data, { action: 'mini-chat', userId: B.id, data: { text: 'hi' } });

      // A2 is not in the call: its broadcast goes nowhere.
      A2.emit('conversation-broadcast', { action: 'from-a2', data: 1 });
      await barrierW();
      // B1 round-trips once more to be sure the A2 broadcast was processed before checking
      B1.emit('conversation-broadcast', { action: 'after-a2', data: 2 });
      await allGet([A1, B1], 'conversation-broadcast', { where: (d) => d.action === 'after-a2' });
      for (const s of [A1, A2, B1]) s.rec.none('conversation-broadcast', { where: (d) => d.action === 'from-a2' });
      A2.rec.none('conversation-broadcast', { message: 'A2 is not in the call' });
      await barrierX();
      C1.rec.none('conversation-broadcast');
    });

    it('mute-for-all: muted-for-all {fromUserId, socketId} to the target only', async () => {
      resetAll(all());
      let res = await api.muteForAll(A, A1, B.id);
      assert.equal(res.status, 204, JSON.stringify(res.body));
      const m = await B1.rec.next('muted-for-all');
      assert.deepEqual(m.data, { fromUserId: A.id, socketId: B1.id });

      // A2 is not in a call: cannot mute anyone.
      res = await api.muteForAll(A, A2, B.id);
      assert.equal(res.status, 400, `mute-for-all from a device outside the call: ${JSON.stringify(res.body)}`);
      // C is not in A's call.
      res = await api.muteForAll(A, A1, C.id);
      assert.equal(res.status, 400, `mute-for-all of a user outside the call: ${JSON.stringify(res.body)}`);

      await barrierW();
      A1.rec.none('muted-for-all');
      A2.rec.none('muted-for-all');
      await barrierX();
      C1.rec.none('muted-for-all');
    });

    it('select on a second device: user-changed-device (null) to the user, no leave for peers in the same channel', async () => {
      resetAll(all());
      await api.selectOk(A, A2, P.id);
      const changed = await allGet([A1, A2], 'user-changed-device');
      for (const r of changed) {
        assert.equal(r.data, null, 'user-changed-device carries exactly null');
        assert.deepEqual(r.args, [null]);
      }
      await barrierW();
      B1.rec.none('user-unselected-channel', { where: (d) => d.userId === A.id, message: 'peers see no leave when the user stays in the channel' });
      B1.rec.none('user-changed-device', { message: 'user-changed-device goes to the user only' });
      await barrierX();
      C1.rec.none('user-changed-device');

      const au = await api.activeUsers(B, P.id);
      const mine = au.body.filter((u) => u.userId === A.id);
      assert.equal(mine.length, 1, `one entry per user: ${JSON.stringify(au.body)}`);
      assert.equal(mine[0].socketId, A2.id, 'the call moved to A2');
      const stale = await api.unselect(A, A1, P.id);
      assert.equal(stale.status, 400, `unselect from the device that lost the call: ${stale.status} ${JSON.stringify(stale.body)}`);

      // A1 has left the call: its broadcasts no longer reach it.
      resetAll(all());
      A1.emit('conversation-broadcast', { action: 'stale-device', data: null });
      B1.emit('conversation-broadcast', { action: 'after-stale', data: null });
      await allGet([A2, B1], 'conversation-broadcast', { where: (d) => d.action === 'after-stale' });
      await barrierW();
      for (const s of [A1, A2, B1]) s.rec.none('conversation-broadcast', { where: (d) => d.action === 'stale-device' });
      A1.rec.none('conversation-broadcast', { where: (d) => d.action === 'after-stale', message: 'A1 left the conversation' });
    });

    it('switching channel: user-unselected-channel from the old one; unselect; errors', async () => {
      resetAll(all());
      await api.selectOk(A, A2, Q.id);
      const left = await B1.rec.next('user-unselected-channel', { where: (d) => d.userId === A.id });
      assert.deepEqual(left.data, { userId: A.id, channelId: P.id, socketId: A2.id });
      const sel = await B1.rec.next('user-selected-channel', { where: (d) => d.userId === A.id });
      assert.equal(sel.data.channelId, Q.id);
      assert.equal(sel.data.socketId, A2.id);
      let au = await api.activeUsers(B, P.id);
      assert.deepEqual(au.body.map((u) => u.userId), [B.id]);

      resetAll(all());
      let res = await api.unselect(A, A2, Q.id);
      assert.equal(res.status, 204, JSON.stringify(res.body));
      const un = await B1.rec.next('user-unselected-channel', { where: (d) => d.userId === A.id });
      assert.deepEqual(un.data, { userId: A.id, channelId: Q.id, socketId: A2.id });
      au = await api.activeUsers(B, Q.id);
      assert.deepEqual(au.body, []);
      res = await api.unselect(A, A2, Q.id);
      assert.equal(res.status, 400, `unselecting a channel that is not selected: ${JSON.stringify(res.body)}`);

      // errors
      res = await api.req('POST', `/api/channels/${P.id}/select`, { token: A.token, body: { microphone: false, speakers: true, screen: false, camera: false, speaking: false } });
      assert.equal(res.status, 400, `select without socketId: ${JSON.stringify(res.body)}`);
      res = await api.select(B, A1, P.id);
      assert.ok([400, 403, 404].includes(res.status), `select with another user's socket: ${res.status} ${JSON.stringify(res.body)}`);
      res = await api.select(C, C1, P.id);
      assert.equal(res.status, 404, 'an outsider cannot see the channel');
      res = await api.req('POST', `/api/channels/${P.id}/select`, { token: A.token, query: { socketId: 'no-such-socket' }, body: { microphone: false, speakers: true, screen: false, camera: false, speaking: false } });
      assert.ok([400, 404].includes(res.status), `select with an unknown socket: ${res.status}`);
      res = await api.req('POST', `/api/channels/${P.id}/select`, { token: A.token, query: { socketId: A1.id }, body: { microphone: 1 } });
      assert.equal(res.status, 400, 'select with a bad media state');
      res = await api.activeUsers(C, P.id);
      assert.equal(res.status, 404, 'an outsider cannot list active users');
      assert.ok(res.body?.error?.code, 'error envelope');
    });

    it('a call in a private channel is seen by its members only', async () => {
      const secret = await api.createChannel(A, W.id, { name: 'private-call', isPrivate: true });
      resetAll(all());
      await api.selectOk(A, A1, secret.id);
      await A2.rec.next('user-selected-channel', { where: (d) => d.channelId === secret.id });
      let res = await api.select(B, B1, secret.id);
      assert.equal(res.status, 404, 'a non-member cannot select a private channel');
      res = await api.activeUsers(B, secret.id);
      assert.equal(res.status, 404);
      res = await api.mediaState(A, A1, { microphone: true, speakers: true, screen: false, camera: false, speaking: false });
      assert.equal(res.status, 204);
      await A2.rec.next('media-state-updated', { where: (d) => d.channelId === secret.id });
      res = await api.unselect(A, A1, secret.id);
      assert.equal(res.status, 204);
      await A2.rec.next('user-unselected-channel', { where: (d) => d.channelId === secret.id });

      await barrierW();
      for (const ev of ['user-selected-channel', 'media-state-updated', 'user-unselected-channel']) {
        B1.rec.none(ev, { where: (d) => d.channelId === secret.id, message: `B is not a member of the private channel (${ev})` });
      }
      await barrierX();
      C1.rec.none('user-selected-channel');
      C1.rec.none('user-unselected-channel');
    });

    it('password-changed carries exactly null, to the user only', async () => {
      resetAll(all());
      const res = await api.req('POST', '/api/me/password', { token: B.token, body: { oldPassword: B.password, newPassword: 'a brand new passphrase' } });
      assert.ok([200, 204].includes(res.status), JSON.stringify(res.body));
      B.password = 'a brand new passphrase';
      const ev = await B1.rec.next('password-changed');
      assert.equal(ev.data, null);
      assert.deepEqual(ev.args, [null], 'the payload is exactly null');
      await barrierW();
      A1.rec.none('password-changed');
      A2.rec.none('password-changed');
      await barrierX();
      C1.rec.none('password-changed');
    });

    it('kicked-from-workspace to the kicked user, user-leaved-workspace to the rest, then nothing more', async () => {
      const K = await api.signup('Kim');
      await api.join(A, W.id, K);
      const K1 = await connectAuthed(server.base, K, W.id, transport, { label: 'K1' });
      // K is in a call with B (B1 has been in P since the conversation test).
      await api.selectOk(K, K1, P.id);
      await B1.rec.next('user-selected-channel', { where: (d) => d.userId === K.id });
      resetAll(all(), K1);

      await api.ok('DELETE', `/api/workspaces/${W.id}/members/${K.id}`, { token: A.token }, [200, 204]);
      const kicked = await K1.rec.next('kicked-from-workspace');
      assert.deepEqual(kicked.data, { workspaceId: W.id });
      const left = await allGet([A1, A2, B1], 'user-leaved-workspace', { where: (d) => d.userId === K.id });
      for (const r of left) assert.deepEqual(r.data, { userId: K.id, workspaceId: W.id });
      const kickedAt = K1.rec.all('kicked-from-workspace')[0].seq;

      // Workspace activity after the kick must not reach K1, nor the call's broadcasts.
      B1.emit('conversation-broadcast', { action: 'after-kick', data: null });
      await B1.rec.next('conversation-broadcast', { where: (d) => d.action === 'after-kick' });
      const au = await api.activeUsers(B, P.id);
      assert.ok(!au.body.some((u) => u.userId === K.id), `a kicked user is no longer in the workspace's calls: ${JSON.stringify(au.body)}`);
      const ch = await api.createChannel(A, W.id, { name: 'after-kick' });
      await allGet([A1, A2, B1], 'channel-created', { where: (d) => d.channelId === ch.id });
      await api.ok('PATCH', '/api/me', { token: B.token, body: { name: 'Bob after kick' } });
      await allGet([A1, A2, B1], 'user-updated', { where: (d) => d.user.name === 'Bob after kick' });
      await barrierW();
      if (K1.connected) {
        // round trip: anything queued to K1 before the answer has arrived (a detached
        // socket may also stay silent, which is fine: the barrier above already passed)
        await pingSocket(K1, 2000).catch(() => {});
      }
      const after = K1.rec.events.filter((r) => r.seq > kickedAt && !r.event.startsWith('socket-api-error'));
      assert.deepEqual(after.map((r) => r.event), [], `K1 got events after kicked-from-workspace: ${K1.rec.describe()}`);
      K1.disconnect();
    });

    it('after leaving the workspace, its socket bound to it gets nothing more from it', async () => {
      const L = await api.signup('Leo');
      await api.join(A, W.id, L);
      const L1 = await connectAuthed(server.base, L, W.id, transport, { label: 'L1' });
      await barrierW(L1); // everything about L1's connection has been delivered
      resetAll(L1);
      await api.ok('POST', `/api/workspaces/${W.id}/leave`, { token: L.token }, [200, 204]);
      await allGet([A1, B1], 'user-leaved-workspace', { where: (d) => d.userId === L.id });
      const ch = await api.createChannel(A, W.id, { name: 'after-leave' });
      await allGet([A1, B1], 'channel-created', { where: (d) => d.channelId === ch.id });
      await api.ok('PATCH', '/api/me', { token: B.token, body: { name: `Bob after leave ${transport}` } });
      await allGet([A1, B1], 'user-updated', { where: (d) => d.user.id === B.id && d.user.name === `Bob after leave ${transport}` });
      await barrierW();
      if (L1.connected) await pingSocket(L1, 2000).catch(() => {});
      // (its own user-leaved-workspace, the answer to the leave, is fine either way)
      const got = L1.rec.events.filter(
        (r) => r.seq >= L1.rec.floor && !r.event.startsWith('socket-api-error') && !(r.event === 'user-leaved-workspace' && r.data?.userId === L.id),
      );
      assert.deepEqual(got.map((r) => r.event), [], `L1 got events of a workspace L left: ${L1.rec.describe()}`);
      L1.disconnect();
    });

    it('guests do not see public channels: no channel-created, no calls in them — also when demoted while connected', async () => {
      const G = await api.signup('Gus');
      await api.join(A, W.id, G);
      await api.ok('PATCH', `/api/workspaces/${W.id}/members/${G.id}`, { token: A.token, body: { role: 'guest' } });
      const G1 = await connectAuthed(server.base, G, W.id, transport, { label: 'G1 (guest)' });
      const H = await api.signup('Hal');
      await api.join(A, W.id, H);
      const H1 = await connectAuthed(server.base, H, W.id, transport, { label: 'H1 (demoted later)' });
      await api.ok('PATCH', `/api/workspaces/${W.id}/members/${H.id}`, { token: A.token, body: { role: 'guest' } });
      resetAll(all(), G1, H1);

      const pub = await api.createChannel(A, W.id, { name: 'no-guests' });
      await allGet([A1, B1], 'channel-created', { where: (d) => d.channelId === pub.id });
      await api.ok('PATCH', `/api/channels/${pub.id}`, { token: A.token, body: { name: 'no-guests-2' } });
      await B1.rec.next('channel-updated', { where: (d) => d.channel.id === pub.id });
      await api.selectOk(A, A1, pub.id);
      await B1.rec.next('user-selected-channel', { where: (d) => d.channelId === pub.id });
      assert.equal((await api.unselect(A, A1, pub.id)).status, 204);
      await B1.rec.next('user-unselected-channel', { where: (d) => d.channelId === pub.id });
      const res = await api.select(G, G1, pub.id);
      assert.equal(res.status, 404, 'a guest cannot select a public channel');
      await barrierW(G1, H1);
      for (const g of [G1, H1]) {
        for (const ev of ['channel-created', 'channel-updated', 'user-selected-channel', 'user-unselected-channel']) {
          g.rec.none(ev, { where: (d) => (d.channel?.id ?? d.channelId) === pub.id, message: `${g.rec.label} is a guest (${ev})` });
        }
      }
      G1.disconnect();
      H1.disconnect();
    });

    it('ids are UUIDs', () => {
      for (const id of [A.id, B.id, C.id, W.id, X.id, P.id]) assert.ok(isUuid(id), id);
    });
  });
}

describe('shutdown', () => {
  it('SIGTERM tells connected clients with a Socket.IO disconnect and exits 0', async () => {
    const { A, B, W } = await makeWorld(api);
    const ws = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'shutdown-ws' });
    const poll = await connectAuthed(server.base, B, W.id, 'polling', { label: 'shutdown-polling' });
    const gone = Promise.all([ws, poll].map((s) => new Promise((resolve) => s.on('disconnect', resolve))));
    await stopServerClean(server);
    server = null;
    const reasons = await gone;
    // SPEC §1: graceful shutdown tells clients (socket.io disconnect): the client then
    // reports "io server disconnect", not a broken transport.
    assert.deepEqual(reasons, ['io server disconnect', 'io server disconnect']);
  });
});
