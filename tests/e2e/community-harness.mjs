// Helpers for the community chat API (SPEC §4, seed 002): Socket.IO namespaces
// `/socket/commu-{workspaceId}` and the chat REST routes under /api/channels.
// Built on harness.mjs (imported, not modified): the same Recorder and Api.
//
// Absence is checked without sleeps, as in harness.mjs: `chatBarrier()` posts a
// uniquely-worded chat over REST into a channel whose room the sockets joined, and
// waits until every one of them received it. The server broadcasts in the order it
// stores, and Socket.IO delivers in order per socket, so once the barrier arrived,
// anything the server emitted to those sockets before it has been recorded.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';
import { Recorder, DEFAULT_TIMEOUT_MS } from './harness.mjs';

const openSockets = new Set();

export function nsPath(workspaceId) {
  return `/socket/commu-${workspaceId}`;
}

/**
 * Opens a socket on the community namespace of `workspaceId`. `who` is a user
 * ({token, name}) or null; `token` overrides the handshake token verbatim
 * (`undefined` sends no auth at all). Resolves {socket} on connect or
 * {error} (the connect_error) — never both.
 */
export function openCommunity(base, workspaceId, transport = 'websocket', { who, token, label, timeoutMs = DEFAULT_TIMEOUT_MS, bare = false, extra = {} } = {}) {
  let auth;
  if (token !== undefined) auth = token === null ? undefined : { token };
  else if (who) auth = { token: bare ? who.token : `Bearer ${who.token}` };
  const socket = io(`${base}${nsPath(workspaceId)}`, {
    transports: [transport],
    forceNew: true,
    reconnection: false,
    timeout: timeoutMs,
    ...(auth ? { auth } : {}),
    ...extra,
  });
  socket.rec = new Recorder(socket);
  socket.rec.label = label ?? `${who?.name ?? 'anon'}@commu(${transport})`;
  socket.user = who;
  openSockets.add(socket);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.disconnect();
      reject(new Error(`${socket.rec.label}: neither connect nor connect_error within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve({ socket });
    });
    socket.once('connect_error', (error) => {
      clearTimeout(timer);
      socket.disconnect();
      resolve({ error, socket });
    });
  });
}

/** A connected community socket of `who` (throws on connect_error). */
export async function connectCommunity(base, who, workspaceId, transport = 'websocket', opts = {}) {
  const { socket, error } = await openCommunity(base, workspaceId, transport, { who, ...opts });
  if (error) throw new Error(`${socket.rec.label}: connect_error: ${error.message}`);
  return socket;
}

/** The connect_error message the handshake ends with (fails if it connects). */
export async function connectErrorMessage(base, workspaceId, transport, opts = {}) {
  const { socket, error } = await openCommunity(base, workspaceId, transport, opts);
  if (!error) {
    socket.disconnect();
    assert.fail(`${socket.rec.label}: connected to ${nsPath(workspaceId)} but a connect_error was expected`);
  }
  return error.message;
}

export function closeAllCommunitySockets() {
  for (const s of openSockets) s.disconnect();
  openSockets.clear();
}

/** Emits with an acknowledgement; rejects when no ack arrives within timeoutMs. */
export async function emitAck(socket, event, payload, timeoutMs = DEFAULT_TIMEOUT_MS) {
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, payload);
  } catch (e) {
    throw new Error(`${socket.rec.label}: no ack for "${event}" ${JSON.stringify(payload)?.slice(0, 200)} within ${timeoutMs} ms (${e.message})`);
  }
}

/** `join {channels}` with ack → {joined, refused}. */
export function join(socket, channels) {
  return emitAck(socket, 'join', { channels });
}

/** Joins and asserts every channel was joined. */
export async function joinOk(socket, channels) {
  const ack = await join(socket, channels);
  assert.ok(ack && Array.isArray(ack.joined) && Array.isArray(ack.refused), `join ack is {joined, refused}: ${JSON.stringify(ack)}`);
  assert.deepEqual([...ack.joined].sort(), [...channels].sort(), `${socket.rec.label} joins ${JSON.stringify(channels)}: ${JSON.stringify(ack)}`);
  assert.deepEqual(ack.refused, []);
  return ack;
}

/** `chat` with ack → the raw ack. */
export function chat(socket, payload) {
  return emitAck(socket, 'chat', payload);
}

/** `chat` that must be written; returns chatInfo. */
export async function chatOk(socket, payload) {
  const ack = await chat(socket, payload);
  assert.equal(ack?.written, true, `${socket.rec.label} chat ${JSON.stringify(payload).slice(0, 200)} must be written: ${JSON.stringify(ack)}`);
  assert.ok(ack.chatInfo && typeof ack.chatInfo === 'object', `written ack carries chatInfo: ${JSON.stringify(ack)}`);
  return ack.chatInfo;
}

/** `chat` that must be refused with {written:false, error:"text"}; returns the error. */
export async function chatRefused(socket, payload, why = '') {
  const ack = await chat(socket, payload);
  assert.equal(ack?.written, false, `${socket.rec.label} chat ${JSON.stringify(payload)?.slice(0, 200)} must be refused${why ? ` (${why})` : ''}: ${JSON.stringify(ack)?.slice(0, 300)}`);
  assert.equal(typeof ack.error, 'string', `a refused chat says why (error: string): ${JSON.stringify(ack)}`);
  assert.ok(ack.error.length > 0, 'the error text is not empty');
  return ack.error;
}

// --- REST

export function postChat(api, user, channelId, content, extra = {}) {
  return api.req('POST', `/api/channels/${channelId}/chat`, { token: user.token, body: { content, ...extra } });
}

export async function postChatOk(api, user, channelId, content, extra = {}) {
  return api.ok('POST', `/api/channels/${channelId}/chat`, { token: user.token, body: { content, ...extra } }, 201);
}

export function history(api, user, channelId, query = {}) {
  return api.req('GET', `/api/channels/${channelId}/chat`, { token: user.token, query });
}

export function patchChat(api, user, channelId, chatId, content) {
  return api.req('PATCH', `/api/channels/${channelId}/chats/${chatId}`, { token: user.token, body: { content } });
}

export function deleteChat(api, user, channelId, chatId) {
  return api.req('DELETE', `/api/channels/${channelId}/chats/${chatId}`, { token: user.token });
}

export function markRead(api, user, channelId) {
  return api.req('PATCH', `/api/channels/${channelId}/last-read`, { token: user.token });
}

export async function unreadChatId(api, user, channelId) {
  const body = await api.ok('GET', `/api/channels/${channelId}/unread-chat`, { token: user.token });
  assert.ok(body && Number.isInteger(body.chatId), `unread-chat answers {chatId: integer}: ${JSON.stringify(body)}`);
  return body.chatId;
}

/** existUnreadChat of `channelId` as `user` sees it in all three places that list it. */
export async function existUnread(api, user, workspaceId, channelId) {
  const one = await api.ok('GET', `/api/channels/${channelId}`, { token: user.token });
  const list = await api.ok('GET', `/api/workspaces/${workspaceId}/channels`, { token: user.token });
  const state = await api.ok('GET', `/api/workspaces/${workspaceId}`, { token: user.token });
  const inList = list?.channels?.find((c) => c.id === channelId);
  const inState = state?.channels?.find((c) => c.id === channelId);
  assert.ok(inList, `GET /api/workspaces/${workspaceId}/channels lists ${channelId}`);
  assert.ok(inState, `GET /api/workspaces/${workspaceId} lists ${channelId}`);
  const vals = { channel: one.existUnreadChat, list: inList.existUnreadChat, state: inState.existUnreadChat };
  for (const [where, v] of Object.entries(vals)) {
    assert.equal(typeof v, 'boolean', `existUnreadChat is a boolean in ${where}: ${JSON.stringify(vals)}`);
  }
  assert.ok(vals.channel === vals.list && vals.list === vals.state, `existUnreadChat agrees everywhere: ${JSON.stringify(vals)}`);
  return vals.channel;
}

// --- barriers

let barrierCount = 0;
/**
 * Posts a unique chat over REST as `user` into `channelId` (whose room every socket
 * in `sockets` joined) and waits for its `new-chat` on each of them.
 */
export async function chatBarrier(api, user, channelId, sockets) {
  const content = `barrier ${++barrierCount} ${randomUUID().slice(0, 8)}`;
  await postChatOk(api, user, channelId, content);
  await Promise.all(
    sockets.flat().map((s) => s.rec.next('new-chat', { where: (d) => d.channelId === channelId && d.content === content })),
  );
  return content;
}

// --- shapes

const isTime = (v) => typeof v === 'string' && !Number.isNaN(Date.parse(v));

/** Asserts the chatInfo shape of SPEC §4. */
export function assertChatInfo(ci, { id, content, senderId, channelId, communityId, deleted = false } = {}) {
  assert.ok(ci && typeof ci === 'object', `chatInfo is an object: ${JSON.stringify(ci)}`);
  assert.ok(Number.isInteger(ci.id) && ci.id >= 1, `chatInfo.id is a positive integer: ${JSON.stringify(ci)}`);
  if (id !== undefined) assert.equal(ci.id, id, `chatInfo.id: ${JSON.stringify(ci)}`);
  assert.equal(ci.type, 'TEXT', `chatInfo.type: ${JSON.stringify(ci)}`);
  assert.equal(typeof ci.content, 'string');
  if (content !== undefined) assert.equal(ci.content, content);
  if (senderId !== undefined) assert.equal(ci.senderId, senderId);
  if (channelId !== undefined) assert.equal(ci.channelId, channelId);
  if (communityId !== undefined) assert.equal(ci.communityId, communityId);
  assert.ok(isTime(ci.createdAt), `createdAt is an RFC 3339 time: ${JSON.stringify(ci)}`);
  assert.ok(isTime(ci.updatedAt), `updatedAt is an RFC 3339 time: ${JSON.stringify(ci)}`);
  assert.ok(Date.parse(ci.updatedAt) >= Date.parse(ci.createdAt), 'updatedAt ≥ createdAt');
  assert.ok('deletedAt' in ci, `chatInfo carries deletedAt (null unless deleted): ${JSON.stringify(ci)}`);
  if (deleted) {
    assert.ok(isTime(ci.deletedAt), `a deleted chat has deletedAt: ${JSON.stringify(ci)}`);
    assert.equal(ci.content, '', 'a deleted chat has its content removed');
  } else {
    assert.equal(ci.deletedAt, null, `deletedAt is null unless deleted: ${JSON.stringify(ci)}`);
  }
}
