// SPEC §3 invites: invite → invite-response, the no-response timeout (1 s in the
// tests), cancel, cancel-on-select, and the audiences (target / sender only).
//
// "No no-response after the timeout" is checked against a probe invite sent later
// with the same timeout: once the probe's no-response has arrived, the earlier
// invite's timeout has passed too.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  Api,
  TIMINGS,
  startServer,
  stopServerClean,
  connectAuthed,
  closeAllSockets,
  makeWorld,
  resetAll,
  workspaceBarrier,
} from './harness.mjs';

let server;
let api;
let A, B, C, W, X, P, Q, R;
let A1, A2, B1, C1;

before(async () => {
  server = await startServer();
  api = new Api(server.base);
  ({ A, B, C, W, X } = await makeWorld(api));
  P = await api.createChannel(A, W.id, { name: 'invites' });
  Q = await api.createChannel(A, W.id, { name: 'elsewhere' });
  R = await api.createChannel(A, W.id, { name: 'probes' }); // only probe invites go here
  A1 = await connectAuthed(server.base, A, W.id, 'websocket', { label: 'A1' });
  A2 = await connectAuthed(server.base, A, W.id, 'polling', { label: 'A2' });
  B1 = await connectAuthed(server.base, B, W.id, 'websocket', { label: 'B1' });
  C1 = await connectAuthed(server.base, C, X.id, 'websocket', { label: 'C1' });
});

after(async () => {
  closeAllSockets();
  if (server) await server.stop();
});

async function invite(opts) {
  const res = await api.sendInvite(A, A1, { userId: B.id, channelId: P.id, workspaceId: W.id, ...opts });
  assert.equal(res.status, 200, `POST /api/invites → ${res.status} ${JSON.stringify(res.body)}`);
  assert.equal(typeof res.body.inviteId, 'string', JSON.stringify(res.body));
  return res.body.inviteId;
}

/** Sends a probe invite to R and waits for its no-response: every earlier timeout has fired by then. */
async function afterTimeouts() {
  const probe = await invite({ channelId: R.id, isResponseNeeded: true, message: { probe: true } });
  await A1.rec.next('invite-response', { where: (d) => d.inviteId === probe && d.response === 'no-response', timeoutMs: TIMINGS.inviteTimeoutMs + 5000 });
  return probe;
}

const barrierW = () => workspaceBarrier(api, A, W.id, [A1, A2, B1]);
const barrierX = () => workspaceBarrier(api, C, X.id, [C1]);

describe('invites', () => {
  it('invite reaches the target only; the response reaches the sender; no no-response after an answer', async () => {
    resetAll(A1, A2, B1, C1);
    const message = { text: 'join us', nested: { n: 1 } };
    const inviteId = await invite({ isResponseNeeded: true, message });
    const got = await B1.rec.next('invite');
    assert.deepEqual(got.data, { inviteId, isResponseNeeded: true, userId: A.id, workspaceId: W.id, channelId: P.id, message });

    const res = await api.respondInvite(B, B1, inviteId, { accepted: true, text: 'coming' });
    assert.equal(res.status, 204, JSON.stringify(res.body));
    const answer = await A1.rec.next('invite-response', { where: (d) => d.inviteId === inviteId });
    assert.deepEqual(answer.data, { inviteId, userId: B.id, response: { accepted: true, text: 'coming' } });

    await afterTimeouts();
    A1.rec.none('invite-response', { where: (d) => d.inviteId === inviteId && d.response === 'no-response', message: 'answered: no no-response' });
    await barrierW();
    A1.rec.none('invite', { message: 'the sender does not get the invite' });
    A2.rec.none('invite');
    B1.rec.none('invite-response', { message: 'the responder does not get the response' });
    await barrierX();
    C1.rec.none('invite');
    C1.rec.none('invite-response');
  });

  it('an unanswered invite yields invite-response {response:"no-response"} after the timeout, once', async () => {
    resetAll(A1, B1);
    const t0 = Date.now();
    const inviteId = await invite({ isResponseNeeded: true, message: { text: 'ping' } });
    await B1.rec.next('invite', { where: (d) => d.inviteId === inviteId });
    const nr = await A1.rec.next('invite-response', { where: (d) => d.inviteId === inviteId, timeoutMs: TIMINGS.inviteTimeoutMs + 5000 });
    assert.deepEqual(nr.data, { inviteId, userId: B.id, response: 'no-response' });
    assert.ok(nr.at - t0 >= TIMINGS.inviteTimeoutMs * 0.8, `no-response after ${nr.at - t0} ms; the timeout is ${TIMINGS.inviteTimeoutMs} ms`);
    await afterTimeouts();
    assert.equal(A1.rec.all('invite-response', { where: (d) => d.inviteId === inviteId }).length, 1, 'exactly one no-response');
    await barrierW();
    B1.rec.none('invite-response');
  });

  it('an invite that needs no response never times out', async () => {
    resetAll(A1, B1);
    const inviteId = await invite({ isResponseNeeded: false, message: { text: 'fyi' } });
    const got = await B1.rec.next('invite', { where: (d) => d.inviteId === inviteId });
    assert.equal(got.data.isResponseNeeded, false);
    await afterTimeouts();
    A1.rec.none('invite-response', { where: (d) => d.inviteId === inviteId });
  });

  it('a response-needed invite after an informational one to the same channel still times out with no-response', async () => {
    const S = await api.createChannel(A, W.id, { name: 'fyi-then-ask' });
    resetAll(A1, B1);
    const fyi = await invite({ channelId: S.id, isResponseNeeded: false, message: { text: 'fyi' } });
    await B1.rec.next('invite', { where: (d) => d.inviteId === fyi });
    const ask = await invite({ channelId: S.id, isResponseNeeded: true, message: { text: 'please answer' } });
    const nr = await A1.rec.next('invite-response', {
      where: (d) => d.inviteId === ask,
      timeoutMs: TIMINGS.inviteTimeoutMs + 5000,
      label: `A1 (the second invite ${ask === fyi ? 'got the informational invite\'s id back and never times out' : 'got its own id'})`,
    });
    assert.equal(nr.data.response, 'no-response', 'an unanswered invite that needs a response yields no-response to the sender');
  });

  it('cancel: invite-cancelled {inviteId} to the target, and no no-response afterwards', async () => {
    resetAll(A1, A2, B1, C1);
    const inviteId = await invite({ isResponseNeeded: true, message: {} });
    await B1.rec.next('invite', { where: (d) => d.inviteId === inviteId });
    let res = await api.cancelInvite(B, B1, inviteId);
    assert.ok([403, 404].includes(res.status), `only the sender may cancel: ${res.status} ${JSON.stringify(res.body)}`);
    res = await api.cancelInvite(A, A1, inviteId);
    assert.equal(res.status, 204, JSON.stringify(res.body));
    const c = await B1.rec.next('invite-cancelled');
    assert.deepEqual(c.data, { inviteId });
    await afterTimeouts();
    A1.rec.none('invite-response', { where: (d) => d.inviteId === inviteId, message: 'a cancelled invite does not time out' });
    res = await api.cancelInvite(A, A1, randomUUID());
    assert.equal(res.status, 404, 'cancelling an unknown invite');
    await barrierW();
    A1.rec.none('invite-cancelled');
    A2.rec.none('invite-cancelled');
    await barrierX();
    C1.rec.none('invite-cancelled');
  });

  it('selecting the channel cancels pending invites to it (invite-cancelled), not those to other channels', async (t) => {
    resetAll(A1, B1);
    const toP = await invite({ isResponseNeeded: true, message: { to: 'P' } });
    const toQ = await invite({ channelId: Q.id, isResponseNeeded: false, message: { to: 'Q' } });
    await B1.rec.next('invite', { where: (d) => d.inviteId === toP });
    await B1.rec.next('invite', { where: (d) => d.inviteId === toQ });
    await api.selectOk(B, B1, P.id);
    t.after(() => api.unselect(B, B1, P.id));
    const c = await B1.rec.next('invite-cancelled');
    assert.deepEqual(c.data, { inviteId: toP });
    await afterTimeouts();
    A1.rec.none('invite-response', { where: (d) => d.inviteId === toP, message: 'the invitee came: no no-response' });
    B1.rec.none('invite-cancelled', { where: (d) => d.inviteId === toQ, message: 'an invite to another channel stays' });
  });

  it('bad invites are refused and deliver nothing', async () => {
    resetAll(A1, B1, C1);
    // An outsider: C is not a member of W.
    let res = await api.sendInvite(A, A1, { userId: C.id, channelId: P.id, workspaceId: W.id, isResponseNeeded: true, message: {} });
    assert.ok([400, 403, 404].includes(res.status), `inviting an outsider: ${res.status} ${JSON.stringify(res.body)}`);
    // A channel of another workspace.
    const xChannel = await api.createChannel(C, X.id, { name: 'x-room' });
    res = await api.sendInvite(A, A1, { userId: B.id, channelId: xChannel.id, workspaceId: W.id, isResponseNeeded: true, message: {} });
    assert.ok([400, 403, 404].includes(res.status), `a channel A cannot see: ${res.status}`);
    // Missing / wrong fields.
    res = await api.req('POST', '/api/invites', { token: A.token, query: { socketId: A1.id }, body: { channelId: P.id, workspaceId: W.id } });
    assert.equal(res.status, 400, 'missing userId');
    res = await api.req('POST', '/api/invites', { token: A.token, query: { socketId: A1.id }, body: { userId: B.id, channelId: P.id, workspaceId: W.id, isResponseNeeded: 'yes', message: {} } });
    assert.equal(res.status, 400, 'isResponseNeeded of wrong type');
    res = await api.req('POST', '/api/invites', { token: A.token, body: { userId: B.id, channelId: P.id, workspaceId: W.id, isResponseNeeded: true, message: {} } });
    assert.equal(res.status, 400, 'no socketId');
    // C's socket is not A's.
    res = await api.sendInvite(A, C1, { userId: B.id, channelId: P.id, workspaceId: W.id });
    assert.ok([400, 403, 404].includes(res.status), `someone else's socket: ${res.status}`);

    // Responding to an invite that is not yours / does not exist.
    const inviteId = await invite({ isResponseNeeded: true, message: {} });
    await B1.rec.next('invite', { where: (d) => d.inviteId === inviteId });
    res = await api.respondInvite(A, A1, inviteId, 'self-answer');
    assert.ok([403, 404].includes(res.status), `the sender cannot answer its own invite: ${res.status}`);
    res = await api.respondInvite(B, B1, randomUUID(), 'x');
    assert.equal(res.status, 404, 'unknown invite');
    res = await api.req('POST', `/api/invites/${inviteId}/response`, { token: B.token, query: { socketId: B1.id }, body: {} });
    assert.equal(res.status, 400, 'missing response');
    res = await api.respondInvite(B, B1, inviteId, 'ok');
    assert.equal(res.status, 204);

    await barrierX();
    C1.rec.none('invite');
    await barrierW();
    A1.rec.none('invite-response', { where: (d) => d.response === 'self-answer' });
  });
});

describe('shutdown', () => {
  it('exits 0 on SIGTERM', async () => {
    await stopServerClean(server);
    server = null;
  });
});
