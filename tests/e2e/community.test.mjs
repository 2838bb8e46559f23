// SPEC §4 (seed 002): the community chat API — Socket.IO namespaces
// `/socket/commu-{workspaceId}` and the chat REST routes — with the official
// socket.io-client against the real binary.
//
// Cast (fresh per describe): A is the admin of workspace W; B and D are plain members;
// C is an outsider (own workspace X). Channel P is public and created by B, so B is
// P's manager while A is "only" the workspace admin; Q is a public channel used as a
// barrier for sockets that do not join P; S is private (A creates it with B).
//
// What the original (Asnity) got wrong and huddle must not (seeds-research §2.4):
// `join` joined *every* socket of the namespace and checked nothing; membership was
// not checked on connect. Those are asserted against here.
//
// No fixed sleeps: absence is checked after a barrier chat (community-harness.mjs).

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  Api,
  TRANSPORTS,
  startServer,
  stopServerClean,
  makeWorld,
  resetAll,
  disconnected,
} from './harness.mjs';
import {
  connectCommunity,
  connectErrorMessage,
  closeAllCommunitySockets,
  emitAck,
  join,
  joinOk,
  chat,
  chatOk,
  chatRefused,
  postChat,
  postChatOk,
  history,
  patchChat,
  deleteChat,
  markRead,
  unreadChatId,
  existUnread,
  chatBarrier,
  assertChatInfo,
} from './community-harness.mjs';

let server;
let api;

before(async () => {
  server = await startServer();
  api = new Api(server.base);
});

after(async () => {
  closeAllCommunitySockets();
  if (server) await stopServerClean(server);
});

/** makeWorld + a third member D. */
async function world() {
  const w = await makeWorld(api);
  w.D = await api.signup('Dee');
  await api.join(w.A, w.W.id, w.D);
  return w;
}

const CHAT_EVENTS = ['new-chat', 'modify-chat', 'delete-chat'];
const NOWHERE = '00000000-0000-4000-8000-000000000000';

// ---------------------------------------------------------------------------
// Handshake

describe('community namespace handshake', () => {
  let A, C, W, X;
  before(async () => {
    ({ A, C, W, X } = await world());
  });

  for (const transport of TRANSPORTS) {
    it(`over ${transport}: "Bearer <token>" and a bare token connect; bad tokens are Unauthorized; non-members Forbidden`, async () => {
      const s1 = await connectCommunity(server.base, A, W.id, transport, { label: 'A bearer' });
      assert.ok(s1.connected && s1.id);
      const s2 = await connectCommunity(server.base, A, W.id, transport, { label: 'A bare', bare: true });
      assert.ok(s2.connected && s2.id && s2.id !== s1.id);
      s1.disconnect();
      s2.disconnect();

      const msg = (wsId, opts) => connectErrorMessage(server.base, wsId, transport, opts);
      assert.equal(await msg(W.id, { token: null, label: 'no auth' }), 'Unauthorized', 'no auth at all');
      assert.equal(await msg(W.id, { token: '', label: 'empty token' }), 'Unauthorized', 'empty token');
      assert.equal(await msg(W.id, { token: 'Bearer ', label: 'Bearer only' }), 'Unauthorized', '"Bearer " alone');
      assert.equal(await msg(W.id, { token: 'Bearer not.a.jwt', label: 'garbage' }), 'Unauthorized', 'garbage token');
      assert.equal(await msg(W.id, { token: `Bearer ${A.token}x`, label: 'tampered' }), 'Unauthorized', 'tampered token');
      assert.equal(await msg(W.id, { token: 12345, label: 'number token' }), 'Unauthorized', 'a token that is not a string');

      // valid token, not a member / no such workspace / malformed id → Forbidden
      assert.equal(await msg(W.id, { who: C, label: 'outsider C' }), 'Forbidden', 'C is not a member of W');
      assert.equal(await msg(X.id, { who: A, label: 'A on X' }), 'Forbidden', 'A is not a member of X');
      assert.equal(await msg(NOWHERE, { who: A, label: 'no such workspace' }), 'Forbidden', 'workspace that does not exist');
      assert.equal(await msg('not-a-uuid', { who: A, label: 'malformed id' }), 'Forbidden', 'malformed workspace id');
      // authentication is checked before membership
      assert.equal(await msg(NOWHERE, { token: 'Bearer nope', label: 'bad token, no workspace' }), 'Unauthorized');
    });
  }

  it('a signed-out session\'s token is Unauthorized', async () => {
    const token = await api.signin(A);
    const s = await connectCommunity(server.base, { ...A, token }, W.id, 'websocket', { label: 'A session 2' });
    s.disconnect();
    await api.ok('POST', '/api/auth/signout', { token }, [200, 204]);
    assert.equal(await connectErrorMessage(server.base, W.id, 'websocket', { token: `Bearer ${token}` }), 'Unauthorized');
  });
});

// ---------------------------------------------------------------------------
// The core flow, once per transport

for (const transport of TRANSPORTS) {
  describe(`community chat over ${transport}`, () => {
    let A, B, C, D, W, X;
    let P, Q, S, XC;
    let A1, A2, B1, D1, D2;
    const cc = (who, label) => connectCommunity(server.base, who, W.id, transport, { label });
    const inP = () => [A1, A2, B1, D1];
    const everyone = () => [A1, A2, B1, D1, D2];
    /** Barrier over everyone: P reaches A1 A2 B1 D1, Q reaches D2 (and the others, who joined it). */
    const barrier = async () => {
      await chatBarrier(api, A, P.id, inP());
      await chatBarrier(api, A, Q.id, [D2]);
    };

    before(async () => {
      ({ A, B, C, D, W, X } = await world());
      P = await api.createChannel(B, W.id, { name: 'general' });
      Q = await api.createChannel(A, W.id, { name: 'random' });
      S = await api.createChannel(A, W.id, { name: 'secret', isPrivate: true, users: [B.id] });
      XC = await api.createChannel(C, X.id, { name: 'elsewhere' });
      A1 = await cc(A, 'A1');
      A2 = await cc(A, 'A2');
      B1 = await cc(B, 'B1');
      D1 = await cc(D, 'D1');
      D2 = await cc(D, 'D2');
    });

    after(() => {
      for (const s of [A1, A2, B1, D1, D2]) s?.disconnect();
    });

    it('join answers {joined, refused}: readable channels are joined, the rest refused', async () => {
      const ack = await join(A1, [P.id, Q.id, S.id, NOWHERE, 'not-a-uuid', XC.id]);
      assert.deepEqual([...ack.joined].sort(), [P.id, Q.id, S.id].sort(), `A1 joins P, Q and S (its own private channel): ${JSON.stringify(ack)}`);
      assert.deepEqual(
        [...ack.refused].sort(),
        [NOWHERE, 'not-a-uuid', XC.id].sort(),
        `unknown, malformed and another workspace's channel are refused: ${JSON.stringify(ack)}`,
      );
      await joinOk(A2, [P.id]);
      await joinOk(B1, [P.id, Q.id, S.id]);
      const d1 = await join(D1, [P.id, Q.id, S.id]);
      assert.deepEqual([...d1.joined].sort(), [P.id, Q.id].sort(), `D is not a member of private S: ${JSON.stringify(d1)}`);
      assert.deepEqual(d1.refused, [S.id]);
      // join is idempotent
      await joinOk(D1, [P.id]);
      // D2 joins only Q
      const d2 = await join(D2, [Q.id, S.id]);
      assert.deepEqual(d2, { joined: [Q.id], refused: [S.id] });
      const empty = await join(D2, []);
      assert.deepEqual(empty, { joined: [], refused: [] });
    });

    it('chat new: ack {written:true, chatInfo} with sequential ids; new-chat to the room but not the sending socket', async () => {
      resetAll(everyone());
      const first = await chatOk(A1, { chatType: 'new', channelId: P.id, content: 'hello from A1' });
      assertChatInfo(first, { id: 1, content: 'hello from A1', senderId: A.id, channelId: P.id, communityId: W.id });
      // the sender's other socket in the room gets it, and so does everyone else in the room
      for (const s of [A2, B1, D1]) {
        const r = await s.rec.next('new-chat', { where: (d) => d.id === 1 && d.channelId === P.id });
        assert.deepEqual(r.data, first, `${s.rec.label} receives exactly the chatInfo of the ack`);
      }
      const second = await chatOk(B1, { chatType: 'new', channelId: P.id, content: 'hi A, B here' });
      assertChatInfo(second, { id: 2, content: 'hi A, B here', senderId: B.id, channelId: P.id, communityId: W.id });
      for (const s of [A1, A2, D1]) {
        const r = await s.rec.next('new-chat', { where: (d) => d.id === 2 && d.channelId === P.id });
        assert.deepEqual(r.data, second);
      }
      const multi = await chatOk(D1, { chatType: 'new', channelId: P.id, content: 'line one\nline two\t한국어 ✓' });
      assertChatInfo(multi, { id: 3, content: 'line one\nline two\t한국어 ✓', senderId: D.id });
      await allNew([A1, A2, B1], 3);

      await barrier();
      A1.rec.none('new-chat', { where: (d) => d.id === 1 && d.channelId === P.id, message: 'the sending socket does not get its own new-chat' });
      B1.rec.none('new-chat', { where: (d) => d.id === 2 && d.channelId === P.id, message: 'the sending socket does not get its own new-chat' });
      D1.rec.none('new-chat', { where: (d) => d.id === 3 && d.channelId === P.id, message: 'the sending socket does not get its own new-chat' });
      // join is per socket (the original joined every socket of the namespace)
      D2.rec.none('new-chat', { where: (d) => d.channelId === P.id, message: 'D2 never joined P: join must not have joined it' });
      for (const s of everyone()) {
        for (const id of [1, 2, 3]) {
          const n = s.rec.all('new-chat', { where: (d) => d.channelId === P.id && d.id === id }).length;
          assert.ok(n <= 1, `${s.rec.label}: new-chat ${id} arrived ${n} times`);
        }
      }

      async function allNew(sockets, id) {
        for (const s of sockets) await s.rec.next('new-chat', { where: (d) => d.id === id && d.channelId === P.id });
      }
    });

    it('chat modify: only the sender may; modify-chat to the room but not the sending socket', async () => {
      resetAll(everyone());
      const before = (await history(api, A, P.id, { limit: 100 })).body.chats.find((c) => c.id === 1);
      const edited = await chatOk(A1, { chatType: 'modify', channelId: P.id, chatId: 1, content: 'hello (edited)' });
      assertChatInfo(edited, { id: 1, content: 'hello (edited)', senderId: A.id, channelId: P.id, communityId: W.id });
      assert.equal(edited.createdAt, before.createdAt, 'modify keeps createdAt');
      assert.ok(Date.parse(edited.updatedAt) >= Date.parse(before.updatedAt), 'modify moves updatedAt forward');
      for (const s of [A2, B1, D1]) {
        const r = await s.rec.next('modify-chat', { where: (d) => d.id === 1 && d.channelId === P.id });
        assert.deepEqual(r.data, edited, `${s.rec.label} receives the modified chatInfo`);
      }

      // B is P's manager and D a member: neither may modify A's chat; A (workspace admin) may not modify B's
      await chatRefused(B1, { chatType: 'modify', channelId: P.id, chatId: 1, content: 'B rewrites A' }, 'only the sender modifies, not the channel manager');
      await chatRefused(D1, { chatType: 'modify', channelId: P.id, chatId: 1, content: 'D rewrites A' }, 'only the sender modifies');
      await chatRefused(A1, { chatType: 'modify', channelId: P.id, chatId: 2, content: 'A rewrites B' }, 'only the sender modifies, not a workspace admin');
      const res = await patchChat(api, D, P.id, 2, 'D rewrites B over REST');
      assert.equal(res.status, 403, `PATCH of another's chat → 403: ${JSON.stringify(res.body)}`);

      await barrier();
      A1.rec.none('modify-chat', { message: 'the modifying socket does not get its own modify-chat, and refused edits are not broadcast' });
      for (const s of everyone()) {
        s.rec.none('modify-chat', { where: (d) => /rewrites/.test(d.content), message: `${s.rec.label}: refused edits are not broadcast` });
      }
      D2.rec.none('modify-chat');
      const h = (await history(api, B, P.id)).body.chats;
      assert.equal(h.find((c) => c.id === 1).content, 'hello (edited)');
      assert.equal(h.find((c) => c.id === 2).content, 'hi A, B here');
    });

    it('chat delete: the sender, the channel manager or a workspace admin may; a plain member may not; soft delete', async () => {
      const dChat = await chatOk(D1, { chatType: 'new', channelId: P.id, content: 'from D, to be deleted by the manager' });
      const bChat = await chatOk(B1, { chatType: 'new', channelId: P.id, content: 'from B, to be deleted by the admin' });
      const dOwn = await chatOk(D1, { chatType: 'new', channelId: P.id, content: 'from D, deleted by D' });
      await chatBarrier(api, A, P.id, inP());
      resetAll(everyone());

      // D (plain member) may not delete B's or A's chats
      await chatRefused(D1, { chatType: 'delete', channelId: P.id, chatId: bChat.id }, 'a plain member deletes another member\'s chat');
      await chatRefused(D1, { chatType: 'delete', channelId: P.id, chatId: 1 }, 'a plain member deletes the admin\'s chat');
      const rest = await deleteChat(api, D, P.id, bChat.id);
      assert.equal(rest.status, 403, `DELETE of another's chat by a plain member → 403: ${JSON.stringify(rest.body)}`);

      // B manages P (plain workspace user otherwise): deletes D's chat
      const byManager = await chatOk(B1, { chatType: 'delete', channelId: P.id, chatId: dChat.id });
      assertChatInfo(byManager, { id: dChat.id, senderId: D.id, channelId: P.id, communityId: W.id, deleted: true });
      assert.equal(byManager.createdAt, dChat.createdAt);
      for (const s of [A1, A2, D1]) {
        const r = await s.rec.next('delete-chat', { where: (d) => d.id === dChat.id });
        assert.deepEqual(r.data, byManager, `${s.rec.label} receives the deleted chatInfo`);
      }
      // A (workspace admin, not P's manager) deletes B's chat
      const byAdmin = await chatOk(A1, { chatType: 'delete', channelId: P.id, chatId: bChat.id });
      assertChatInfo(byAdmin, { id: bChat.id, senderId: B.id, deleted: true });
      for (const s of [A2, B1, D1]) await s.rec.next('delete-chat', { where: (d) => d.id === bChat.id });
      // D deletes its own chat
      const bySender = await chatOk(D1, { chatType: 'delete', channelId: P.id, chatId: dOwn.id });
      assertChatInfo(bySender, { id: dOwn.id, senderId: D.id, deleted: true });
      for (const s of [A1, A2, B1]) await s.rec.next('delete-chat', { where: (d) => d.id === dOwn.id });

      await barrier();
      B1.rec.none('delete-chat', { where: (d) => d.id === dChat.id, message: 'the deleting socket does not get its own delete-chat' });
      A1.rec.none('delete-chat', { where: (d) => d.id === bChat.id, message: 'the deleting socket does not get its own delete-chat' });
      D1.rec.none('delete-chat', { where: (d) => d.id === dOwn.id, message: 'the deleting socket does not get its own delete-chat' });
      for (const s of everyone()) s.rec.none('delete-chat', { where: (d) => d.id === 1, message: 'a refused delete is not broadcast' });
      D2.rec.none('delete-chat');

      // soft delete: the chats stay in history, emptied, with deletedAt
      const h = (await history(api, D, P.id, { limit: 100 })).body.chats;
      for (const id of [dChat.id, bChat.id, dOwn.id]) {
        const c = h.find((x) => x.id === id);
        assert.ok(c, `deleted chat ${id} is still in the history`);
        assertChatInfo(c, { id, deleted: true });
      }
      assert.equal(h.find((c) => c.id === 1).deletedAt, null, 'the refused delete left chat 1 alone');
      assert.equal(h.find((c) => c.id === 1).content, 'hello (edited)');
      // a deleted chat is no longer modifiable by its sender
      await chatRefused(D1, { chatType: 'modify', channelId: P.id, chatId: dOwn.id, content: 'resurrect' }, 'modifying a deleted chat');
    });

    it('a non-member of a private channel who tried to join it receives nothing of it', async () => {
      resetAll(everyone());
      assert.deepEqual(await join(D2, [S.id]), { joined: [], refused: [S.id] });
      const s1 = await chatOk(A1, { chatType: 'new', channelId: S.id, content: 'secret 1' });
      assertChatInfo(s1, { id: 1, channelId: S.id, communityId: W.id, senderId: A.id });
      await B1.rec.next('new-chat', { where: (d) => d.channelId === S.id && d.id === 1 });
      const s2 = await postChatOk(api, B, S.id, 'secret 2');
      await A1.rec.next('new-chat', { where: (d) => d.channelId === S.id && d.id === s2.id });
      await chatOk(A1, { chatType: 'modify', channelId: S.id, chatId: 1, content: 'secret 1 edited' });
      await chatOk(A1, { chatType: 'delete', channelId: S.id, chatId: s2.id });

      // D cannot write there either, nor read it over REST
      await chatRefused(D1, { chatType: 'new', channelId: S.id, content: 'let me in' }, 'non-member writes to a private channel');
      await chatRefused(D1, { chatType: 'delete', channelId: S.id, chatId: 1 }, 'non-member deletes in a private channel');
      for (const [method, path, body] of [
        ['GET', `/api/channels/${S.id}/chat`],
        ['POST', `/api/channels/${S.id}/chat`, { content: 'let me in' }],
        ['PATCH', `/api/channels/${S.id}/chats/1`, { content: 'x' }],
        ['DELETE', `/api/channels/${S.id}/chats/1`],
        ['PATCH', `/api/channels/${S.id}/last-read`],
        ['GET', `/api/channels/${S.id}/unread-chat`],
        ['GET', `/api/channels/${S.id}`],
      ]) {
        const r = await api.req(method, path, { token: D.token, body });
        assert.equal(r.status, 404, `${method} ${path} as a non-member of the private channel → 404: ${r.status} ${JSON.stringify(r.body)}`);
      }
      // nor can the outsider
      const r = await history(api, C, S.id);
      assert.equal(r.status, 404);

      await barrier();
      for (const s of [D1, D2, A2]) {
        for (const ev of CHAT_EVENTS) {
          s.rec.none(ev, { where: (d) => d.channelId === S.id, message: `${s.rec.label} must receive nothing of private S (${ev})` });
        }
      }
      // the refused attempts were not broadcast to the members either
      B1.rec.none('new-chat', { where: (d) => d.content === 'let me in' });
    });

    it('invite-users-to-channel: only the manager adds workspace members; the invitees\' live sockets join the room at once', async () => {
      resetAll(everyone());
      const inv = (s, users, channel = S.id) => emitAck(s, 'invite-users-to-channel', { community_id: W.id, channel_id: channel, users });

      const byMember = await inv(B1, [D.id]);
      assert.equal(byMember?.isSuccess, false, `B is a member of S but not its manager: ${JSON.stringify(byMember)}`);
      const outsider = await inv(A1, [C.id]);
      assert.equal(outsider?.isSuccess, false, `C is not a member of the workspace: ${JSON.stringify(outsider)}`);
      const byStranger = await inv(D1, [D.id]);
      assert.equal(byStranger?.isSuccess, false, `D cannot add itself to a private channel: ${JSON.stringify(byStranger)}`);
      const unknown = await inv(A1, [D.id], NOWHERE);
      assert.equal(unknown?.isSuccess, false, `unknown channel: ${JSON.stringify(unknown)}`);
      // still not in
      await chatBarrier(api, A, Q.id, [D1, D2]);
      D1.rec.none('invited-to-channel');
      D2.rec.none('invited-to-channel');
      assert.equal((await history(api, D, S.id)).status, 404, 'refused invites added nobody');

      const ok = await inv(A1, [D.id]);
      assert.deepEqual(ok, { isSuccess: true });
      for (const s of [D1, D2]) {
        const r = await s.rec.next('invited-to-channel');
        const ch = r.data;
        assert.equal(ch._id, S.id, `invited-to-channel._id: ${JSON.stringify(ch)}`);
        assert.equal(ch.id, S.id);
        assert.equal(ch.name, 'secret');
        assert.equal(ch.communityId, W.id);
        assert.equal(ch.managerId, A.id, 'the creator manages the channel');
        assert.ok('description' in ch && (ch.description === null || typeof ch.description === 'string'), `description: ${JSON.stringify(ch)}`);
        assert.equal(ch.type, 'Channel');
        assert.equal(ch.isPrivate, true);
        assert.deepEqual([...ch.users].sort(), [A.id, B.id, D.id].sort(), `users are the channel's member ids: ${JSON.stringify(ch.users)}`);
        assert.ok(!Number.isNaN(Date.parse(ch.createdAt)) && !Number.isNaN(Date.parse(ch.updatedAt)));
        assert.equal(ch.existUnreadChat, false);
      }
      // immediately in the room, without join
      const c = await chatOk(A1, { chatType: 'new', channelId: S.id, content: 'welcome D' });
      for (const s of [D1, D2, B1]) {
        const r = await s.rec.next('new-chat', { where: (d) => d.channelId === S.id && d.id === c.id });
        assert.deepEqual(r.data, c);
      }
      const viaRest = await postChatOk(api, B, S.id, 'welcome over REST');
      for (const s of [D1, D2]) await s.rec.next('new-chat', { where: (d) => d.channelId === S.id && d.id === viaRest.id });
      assert.equal((await history(api, D, S.id)).status, 200, 'D now reads S');

      await barrier();
      for (const s of [A1, A2, B1]) s.rec.none('invited-to-channel', { message: `${s.rec.label} was not invited` });
      assert.equal(D1.rec.all('invited-to-channel').length, 1, 'one invited-to-channel per socket');
    });

    it('REST writes reach every socket in the room, the author\'s own sockets included', async () => {
      resetAll(everyone());
      const res = await postChat(api, A, P.id, 'posted over REST', { type: 'TEXT' });
      assert.equal(res.status, 201, `POST chat → 201: ${JSON.stringify(res.body)}`);
      assertChatInfo(res.body, { content: 'posted over REST', senderId: A.id, channelId: P.id, communityId: W.id });
      for (const s of inP()) {
        const r = await s.rec.next('new-chat', { where: (d) => d.channelId === P.id && d.id === res.body.id });
        assert.deepEqual(r.data, res.body, `${s.rec.label} receives the REST chat`);
      }
      const noType = await postChatOk(api, D, P.id, 'no type given');
      assert.equal(noType.type, 'TEXT');
      assert.equal(noType.id, res.body.id + 1, 'ids stay sequential across socket and REST writers');
      for (const s of inP()) await s.rec.next('new-chat', { where: (d) => d.id === noType.id });

      const patched = await patchChat(api, A, P.id, res.body.id, 'patched over REST');
      assert.equal(patched.status, 200, `PATCH → 200: ${JSON.stringify(patched.body)}`);
      assertChatInfo(patched.body, { id: res.body.id, content: 'patched over REST', senderId: A.id });
      for (const s of inP()) {
        const r = await s.rec.next('modify-chat', { where: (d) => d.id === res.body.id });
        assert.deepEqual(r.data, patched.body);
      }
      const del = await deleteChat(api, B, P.id, res.body.id); // B manages P
      assert.equal(del.status, 200, `DELETE by the channel manager → 200: ${JSON.stringify(del.body)}`);
      assertChatInfo(del.body, { id: res.body.id, senderId: A.id, deleted: true });
      for (const s of inP()) {
        const r = await s.rec.next('delete-chat', { where: (d) => d.id === res.body.id });
        assert.deepEqual(r.data, del.body);
      }
      const missing = await patchChat(api, A, P.id, 99999, 'nothing there');
      assert.equal(missing.status, 404, `PATCH of an unknown chat → 404: ${JSON.stringify(missing.body)}`);
      const missingDel = await deleteChat(api, A, P.id, 99999);
      assert.equal(missingDel.status, 404);
      await barrier();
      D2.rec.none('new-chat', { where: (d) => d.channelId === P.id });
    });
  });
}

// ---------------------------------------------------------------------------
// History

describe('chat history paging', () => {
  let A, B, C, W, H;
  const N = 120;
  before(async () => {
    ({ A, B, C, W } = await world());
    H = await api.createChannel(A, W.id, { name: 'history' });
    for (let i = 1; i <= N; i++) {
      const who = i % 2 ? A : B;
      const c = await postChatOk(api, who, H.id, `msg ${i}`);
      assert.equal(c.id, i, 'ids are 1, 2, 3, … per channel');
    }
  });

  const page = async (query, who = A) => {
    const r = await history(api, who, H.id, query);
    assert.equal(r.status, 200, `GET chat ${JSON.stringify(query)} → ${r.status}: ${JSON.stringify(r.body)}`);
    assert.ok(Array.isArray(r.body.chats) && typeof r.body.hasMore === 'boolean', `{chats, hasMore}: ${JSON.stringify(r.body).slice(0, 300)}`);
    return r.body;
  };
  const ids = (p) => p.chats.map((c) => c.id);
  const range = (hi, lo) => Array.from({ length: hi - lo + 1 }, (_, i) => hi - i);

  it('pages back newest first with before/limit and an exact hasMore', async () => {
    const p1 = await page({});
    assert.deepEqual(ids(p1), range(120, 71), 'default limit is 50, newest first');
    assert.equal(p1.hasMore, true);
    for (const c of p1.chats) {
      assertChatInfo(c, { content: `msg ${c.id}`, senderId: c.id % 2 ? A.id : B.id, channelId: H.id, communityId: W.id });
    }
    const p2 = await page({ before: 71, limit: 50 });
    assert.deepEqual(ids(p2), range(70, 21));
    assert.equal(p2.hasMore, true);
    const p3 = await page({ before: 21 });
    assert.deepEqual(ids(p3), range(20, 1));
    assert.equal(p3.hasMore, false, 'the last page says hasMore:false');
    const exact = await page({ before: 21, limit: 20 });
    assert.deepEqual(ids(exact), range(20, 1));
    assert.equal(exact.hasMore, false, 'exactly the remaining 20: nothing more');
    const oneShort = await page({ before: 21, limit: 19 });
    assert.deepEqual(ids(oneShort), range(20, 2));
    assert.equal(oneShort.hasMore, true, 'chat 1 remains');
    const full = await page({ limit: 100 });
    assert.deepEqual(ids(full), range(120, 21));
    assert.equal(full.hasMore, true);
    const none = await page({ before: 1 });
    assert.deepEqual(none, { chats: [], hasMore: false });
    const beyond = await page({ before: 1000, limit: 3 });
    assert.deepEqual(ids(beyond), [120, 119, 118], 'a cursor past the newest chat starts at the newest');

    // walking the whole history with a small page size sees every chat once, in order
    const seen = [];
    let before;
    for (let guard = 0; guard < 100; guard++) {
      const p = await page(before === undefined ? { limit: 7 } : { before, limit: 7 }, B);
      seen.push(...ids(p));
      if (!p.hasMore) break;
      before = p.chats[p.chats.length - 1].id;
    }
    assert.deepEqual(seen, range(120, 1));
  });

  it('soft-deleted chats stay in the history, emptied, with deletedAt', async () => {
    // even ids were sent by B, odd ones by A (the channel's creator and workspace admin)
    const own = await api.ok('DELETE', `/api/channels/${H.id}/chats/60`, { token: B.token });
    assertChatInfo(own, { id: 60, senderId: B.id, deleted: true });
    const notB = await deleteChat(api, B, H.id, 61);
    assert.equal(notB.status, 403, 'B, a plain member, cannot delete A\'s chat');
    await api.ok('DELETE', `/api/channels/${H.id}/chats/62`, { token: A.token }); // A manages H
    const p = await page({ before: 64, limit: 5 });
    assert.deepEqual(ids(p), [63, 62, 61, 60, 59], 'deleted chats keep their place');
    for (const c of p.chats) {
      if (c.id === 60 || c.id === 62) assertChatInfo(c, { id: c.id, deleted: true });
      else assertChatInfo(c, { id: c.id, content: `msg ${c.id}` });
    }
    const again = await deleteChat(api, A, H.id, 60);
    assert.ok([200, 404, 409].includes(again.status), `deleting a deleted chat is harmless: ${again.status}`);
    assert.equal((await page({ before: 61, limit: 1 })).chats[0].deletedAt !== null, true);
  });

  it('limits and cursors are validated; outsiders get 404', async () => {
    const big = await history(api, A, H.id, { limit: 101 });
    assert.ok(
      big.status === 400 || (big.status === 200 && big.body.chats.length === 100),
      `limit over 100 is refused (400) or capped at 100: ${big.status} ${big.body?.chats?.length ?? JSON.stringify(big.body)}`,
    );
    for (const query of [{ limit: 0 }, { limit: -1 }, { limit: 'ten' }, { before: 'abc' }, { limit: 1.5 }]) {
      const r = await history(api, A, H.id, query);
      assert.equal(r.status, 400, `GET chat ${JSON.stringify(query)} → 400: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      assert.equal(typeof r.body?.error?.code, 'string', 'error envelope');
    }
    assert.equal((await history(api, C, H.id)).status, 404, 'an outsider cannot read the channel');
    assert.equal((await history(api, A, NOWHERE)).status, 404, 'unknown channel');
    assert.equal((await api.req('GET', `/api/channels/${H.id}/chat`)).status, 401, 'no token');
    const empty = await api.createChannel(A, W.id, { name: 'empty' });
    assert.deepEqual((await history(api, B, empty.id)).body, { chats: [], hasMore: false });
  });
});

// ---------------------------------------------------------------------------
// Unread tracking

describe('unread tracking', () => {
  let A, B, D, W, U;
  before(async () => {
    ({ A, B, D, W } = await world());
    U = await api.createChannel(A, W.id, { name: 'unread' });
  });

  it('existUnreadChat and unread-chat follow last-read; a user\'s own messages count as read', async () => {
    for (const who of [A, B, D]) {
      assert.equal(await existUnread(api, who, W.id, U.id), false, 'an empty channel has nothing unread');
      assert.equal(await unreadChatId(api, who, U.id), -1);
    }
    for (let i = 1; i <= 3; i++) await postChatOk(api, A, U.id, `a${i}`);
    assert.equal(await existUnread(api, D, W.id, U.id), true, 'D has not read A\'s chats');
    assert.equal(await unreadChatId(api, D, U.id), 1, 'the first unread chat is 1');
    assert.equal(await existUnread(api, A, W.id, U.id), false, 'A\'s own chats count as read');
    assert.equal(await unreadChatId(api, A, U.id), -1);

    const r = await markRead(api, D, U.id);
    assert.equal(r.status, 204, `PATCH last-read → 204: ${r.status} ${JSON.stringify(r.body)}`);
    assert.equal(await existUnread(api, D, W.id, U.id), false);
    assert.equal(await unreadChatId(api, D, U.id), -1);
    assert.equal(await unreadChatId(api, B, U.id), 1, 'marking read is per user');

    const c4 = await postChatOk(api, D, U.id, 'd4');
    assert.equal(await unreadChatId(api, D, U.id), -1, 'D read 1..3 and wrote 4 itself');
    assert.equal(await existUnread(api, D, W.id, U.id), false);
    assert.equal(await unreadChatId(api, A, U.id), c4.id, 'A has read up to its own chat 3; 4 is D\'s');
    assert.equal(await existUnread(api, A, W.id, U.id), true);
    assert.equal(await unreadChatId(api, B, U.id), 1, 'B has read nothing');
    const c5 = await postChatOk(api, A, U.id, 'a5');
    assert.equal(await unreadChatId(api, D, U.id), c5.id, 'the first unread chat after last-read');
    assert.equal(await existUnread(api, D, W.id, U.id), true);

    // over the socket too
    const D1 = await connectCommunity(server.base, D, W.id, 'websocket', { label: 'D1' });
    await markRead(api, D, U.id);
    const mine = await chatOk(D1, { chatType: 'new', channelId: U.id, content: 'd6' });
    assert.equal(await unreadChatId(api, D, U.id), -1, 'D\'s own chat is read');
    assert.equal(await existUnread(api, D, W.id, U.id), false);
    assert.equal(await unreadChatId(api, B, U.id), 1, 'B still has everything unread');
    const c7 = await postChatOk(api, A, U.id, 'a7');
    assert.equal(await unreadChatId(api, D, U.id), c7.id);
    assert.equal(c7.id, mine.id + 1);
    await markRead(api, B, U.id);
    assert.equal(await unreadChatId(api, B, U.id), -1);
    assert.equal(await existUnread(api, B, W.id, U.id), false);
    D1.disconnect();
  });
});

// ---------------------------------------------------------------------------
// Bad input

describe('bad input on the community socket and chat REST', () => {
  let A, B, C, W, X, P, Q, XC, Z, ZP;
  let A1, B1;
  const LIMIT = 4000;

  before(async () => {
    ({ A, B, C, W, X } = await world());
    P = await api.createChannel(A, W.id, { name: 'p' });
    Q = await api.createChannel(A, W.id, { name: 'q' });
    XC = await api.createChannel(C, X.id, { name: 'xc' });
    Z = await api.createWorkspace(A, 'Z'); // A is a member of two workspaces
    ZP = await api.createChannel(A, Z.id, { name: 'zp' });
    A1 = await connectCommunity(server.base, A, W.id, 'websocket', { label: 'A1' });
    B1 = await connectCommunity(server.base, B, W.id, 'polling', { label: 'B1' });
    await joinOk(A1, [P.id, Q.id]);
    await joinOk(B1, [P.id, Q.id]);
    // P gets chats 1..5 (by A), Q only chat 1
    for (let i = 1; i <= 5; i++) await chatOk(A1, { chatType: 'new', channelId: P.id, content: `p${i}` });
    await chatOk(A1, { chatType: 'new', channelId: Q.id, content: 'q1' });
    await chatBarrier(api, A, P.id, [A1, B1]);
  });

  it('malformed chat events are refused with {written:false, error} and nothing is broadcast', async () => {
    resetAll(A1, B1);
    const cases = [
      [{}, 'empty object'],
      [null, 'null payload'],
      ['new', 'a string payload'],
      [[{ chatType: 'new', channelId: P.id, content: 'in an array' }], 'an array payload'],
      [{ channelId: P.id, content: 'no chatType' }, 'missing chatType'],
      [{ chatType: 'edit', channelId: P.id, content: 'wrong chatType' }, 'unknown chatType'],
      [{ chatType: 'NEW', channelId: P.id, content: 'upper-case chatType' }, 'chatType is case-sensitive'],
      [{ chatType: 7, channelId: P.id, content: 'numeric chatType' }, 'chatType of the wrong type'],
      [{ chatType: 'new', content: 'no channel' }, 'missing channelId'],
      [{ chatType: 'new', channelId: 42, content: 'numeric channel' }, 'channelId of the wrong type'],
      [{ chatType: 'new', channelId: NOWHERE, content: 'unknown channel' }, 'unknown channel'],
      [{ chatType: 'new', channelId: 'not-a-uuid', content: 'malformed channel' }, 'malformed channelId'],
      [{ chatType: 'new', channelId: XC.id, content: 'another workspace' }, 'a channel of a workspace A is not in'],
      [{ chatType: 'new', channelId: ZP.id, content: 'wrong namespace' }, 'a channel of another workspace than this namespace\'s'],
      [{ chatType: 'new', channelId: P.id }, 'missing content'],
      [{ chatType: 'new', channelId: P.id, content: 123 }, 'content of the wrong type'],
      [{ chatType: 'new', channelId: P.id, content: null }, 'null content'],
      [{ chatType: 'new', channelId: P.id, content: '' }, 'empty content'],
      [{ chatType: 'new', channelId: P.id, content: 'x'.repeat(LIMIT + 1) }, 'content over the limit'],
      [{ chatType: 'modify', channelId: P.id, content: 'no chatId' }, 'modify without chatId'],
      [{ chatType: 'modify', channelId: P.id, chatId: 'abc', content: 'chatId not a number' }, 'chatId of the wrong type'],
      [{ chatType: 'modify', channelId: P.id, chatId: 1.5, content: 'fractional chatId' }, 'fractional chatId'],
      [{ chatType: 'modify', channelId: P.id, chatId: 9999, content: 'unknown chat' }, 'unknown chatId'],
      [{ chatType: 'modify', channelId: P.id, chatId: -1, content: 'negative chat' }, 'negative chatId'],
      [{ chatType: 'modify', channelId: Q.id, chatId: 3, content: 'chat of another channel' }, 'chatId that exists only in another channel'],
      [{ chatType: 'modify', channelId: P.id, chatId: 1 }, 'modify without content'],
      [{ chatType: 'modify', channelId: P.id, chatId: 1, content: '' }, 'modify to empty content'],
      [{ chatType: 'modify', channelId: P.id, chatId: 1, content: 'y'.repeat(LIMIT + 1) }, 'modify over the limit'],
      [{ chatType: 'delete', channelId: P.id }, 'delete without chatId'],
      [{ chatType: 'delete', channelId: P.id, chatId: '2' + 'x' }, 'delete with a non-numeric chatId'],
      [{ chatType: 'delete', channelId: Q.id, chatId: 4 }, 'delete a chatId that exists only in another channel'],
      [{ chatType: 'delete', channelId: NOWHERE, chatId: 1 }, 'delete in an unknown channel'],
    ];
    for (const [payload, why] of cases) await chatRefused(A1, payload, why);

    // the limit counts characters, not bytes; exactly the limit is fine
    const atLimit = await chatOk(A1, { chatType: 'new', channelId: P.id, content: 'z'.repeat(LIMIT) });
    assert.equal(atLimit.content.length, LIMIT);
    const korean = await chatOk(A1, { chatType: 'new', channelId: P.id, content: '가'.repeat(LIMIT) });
    assert.equal(korean.content, '가'.repeat(LIMIT), `${LIMIT} Korean characters (3 bytes each in UTF-8) are within the limit`);
    await B1.rec.next('new-chat', { where: (d) => d.id === atLimit.id });
    await B1.rec.next('new-chat', { where: (d) => d.id === korean.id });

    await chatBarrier(api, B, P.id, [A1, B1]);
    await chatBarrier(api, B, Q.id, [A1, B1]);
    for (const ev of CHAT_EVENTS) {
      B1.rec.none(ev, {
        where: (d) => !(ev === 'new-chat' && (d.id === atLimit.id || d.id === korean.id || /^barrier/.test(d.content))),
        message: `nothing of the refused chats is broadcast (${ev})`,
      });
    }
    const p = (await history(api, A, P.id, { limit: 100 })).body.chats;
    assert.deepEqual(p.map((c) => c.id).slice(-5), [5, 4, 3, 2, 1]);
    for (const c of p.filter((c) => c.id <= 5)) {
      assert.equal(c.content, `p${c.id}`, 'refused modifies changed nothing');
      assert.equal(c.deletedAt, null, 'refused deletes changed nothing');
    }
    const q = (await history(api, A, Q.id)).body.chats;
    assert.deepEqual(q.map((c) => c.content), [q[0].content, 'q1'], 'Q has chat 1 and the barrier only');
    const z = (await history(api, A, ZP.id)).body.chats;
    assert.deepEqual(z, [], 'nothing was written into the other workspace\'s channel');
    assert.ok(A1.connected && B1.connected, 'bad input does not cost the connection');
  });

  it('handler errors without an ack go to failed-to-send-message {message}', async () => {
    resetAll(A1, B1);
    A1.emit('chat', { chatType: 'new', channelId: P.id, content: '' });
    const f1 = await A1.rec.next('failed-to-send-message');
    assert.equal(typeof f1.data?.message, 'string', `failed-to-send-message {message}: ${JSON.stringify(f1.data)}`);
    assert.ok(f1.data.message.length > 0);
    A1.emit('chat', { chatType: 'bogus', channelId: P.id, content: 'x' });
    await A1.rec.next('failed-to-send-message');
    A1.emit('chat', { chatType: 'modify', channelId: P.id, chatId: 9999, content: 'x' });
    await A1.rec.next('failed-to-send-message');
    A1.emit('join', { channels: 'not-a-list' });
    await A1.rec.next('failed-to-send-message');

    // a valid chat without an ack is still stored and broadcast, without a failure
    const since = A1.rec.mark();
    A1.emit('chat', { chatType: 'new', channelId: P.id, content: 'fire and forget' });
    const got = await B1.rec.next('new-chat', { where: (d) => d.content === 'fire and forget' });
    assertChatInfo(got.data, { senderId: A.id, channelId: P.id, communityId: W.id });
    await chatBarrier(api, B, P.id, [A1, B1]);
    A1.rec.none('failed-to-send-message', { since, message: 'a valid chat without an ack is no failure' });
    A1.rec.none('new-chat', { where: (d) => d.content === 'fire and forget' });
    B1.rec.none('failed-to-send-message', { message: 'failures go to the failing socket only' });
  });

  it('REST chat writes validate their body', async () => {
    const bad = [
      [{ content: '' }, 'empty content'],
      [{ content: 'x'.repeat(LIMIT + 1) }, 'over the limit'],
      [{ content: 123 }, 'content not a string'],
      [{}, 'no content'],
      [{ content: 'forged', type: 'SYSTEM' }, 'clients cannot post SYSTEM chats'],
      [{ content: 'unknown type', type: 'VIDEO' }, 'unknown type'],
    ];
    for (const [body, why] of bad) {
      const r = await api.req('POST', `/api/channels/${P.id}/chat`, { token: A.token, body });
      assert.equal(r.status, 400, `POST chat ${JSON.stringify(body).slice(0, 80)} (${why}) → 400: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
      assert.equal(typeof r.body?.error?.code, 'string', 'error envelope');
    }
    const notJson = await api.req('POST', `/api/channels/${P.id}/chat`, { token: A.token, body: '{"content":' });
    assert.equal(notJson.status, 400);
    assert.equal((await api.req('POST', `/api/channels/${P.id}/chat`, { body: { content: 'anon' } })).status, 401);
    assert.equal((await postChat(api, A, NOWHERE, 'nowhere')).status, 404);
    assert.equal((await postChat(api, C, P.id, 'outsider')).status, 404, 'an outsider sees no channel of W');
    const patchBad = await patchChat(api, A, P.id, 1, '');
    assert.equal(patchBad.status, 400, `PATCH to empty content → 400: ${JSON.stringify(patchBad.body)}`);
    const patchId = await patchChat(api, A, P.id, 'abc', 'x');
    assert.ok([400, 404].includes(patchId.status), `PATCH chats/abc → 400|404: ${patchId.status}`);
    const otherChannel = await patchChat(api, A, Q.id, 4, 'chat 4 is in P');
    assert.equal(otherChannel.status, 404, 'a chat id of another channel is not found');
    const ok = await postChatOk(api, A, P.id, 'explicit TEXT', { type: 'TEXT' });
    assert.equal(ok.type, 'TEXT');
  });

  it('join with unknown or foreign channels refuses them; joining nothing joins nothing', async () => {
    const ack = await join(A1, [ZP.id, XC.id, NOWHERE]);
    assert.deepEqual(ack.joined, [], `channels outside this namespace's workspace are refused: ${JSON.stringify(ack)}`);
    assert.deepEqual([...ack.refused].sort(), [ZP.id, XC.id, NOWHERE].sort());
  });
});

// ---------------------------------------------------------------------------
// Roles, membership changes, kicks

describe('community membership at delivery', () => {
  let A, B, D, W, P, S;
  before(async () => {
    ({ A, B, D, W } = await world());
    P = await api.createChannel(A, W.id, { name: 'p' });
    S = await api.createChannel(A, W.id, { name: 's', isPrivate: true, users: [D.id] });
  });

  it('a workspace moderator may delete anyone\'s chat; a guest may not read public channels', async () => {
    const M = await api.signup('Mod');
    await api.join(A, W.id, M);
    await api.ok('PATCH', `/api/workspaces/${W.id}/members/${M.id}`, { token: A.token, body: { role: 'moderator' } });
    const M1 = await connectCommunity(server.base, M, W.id, 'websocket', { label: 'M1' });
    const c = await postChatOk(api, B, P.id, 'B writes');
    await chatRefused(M1, { chatType: 'modify', channelId: P.id, chatId: c.id, content: 'moderated' }, 'moderators do not modify others\' chats');
    const del = await chatOk(M1, { chatType: 'delete', channelId: P.id, chatId: c.id });
    assertChatInfo(del, { id: c.id, senderId: B.id, deleted: true });

    const G = await api.signup('Guest');
    await api.join(A, W.id, G);
    await api.ok('PATCH', `/api/workspaces/${W.id}/members/${G.id}`, { token: A.token, body: { role: 'guest' } });
    const G1 = await connectCommunity(server.base, G, W.id, 'websocket', { label: 'G1' });
    assert.deepEqual(await join(G1, [P.id]), { joined: [], refused: [P.id] }, 'guests do not read public channels');
    await chatRefused(G1, { chatType: 'new', channelId: P.id, content: 'guest writes' }, 'guests do not write to public channels');
    M1.disconnect();
    G1.disconnect();
  });

  it('a member removed from a private channel gets nothing more of it', async () => {
    const D1 = await connectCommunity(server.base, D, W.id, 'websocket', { label: 'D1' });
    await joinOk(D1, [P.id, S.id]);
    const c = await postChatOk(api, A, S.id, 'before removal');
    await D1.rec.next('new-chat', { where: (d) => d.channelId === S.id && d.id === c.id });
    await api.ok('DELETE', `/api/channels/${S.id}/members/${D.id}`, { token: A.token }, [200, 204]);
    const since = D1.rec.mark();
    await postChatOk(api, A, S.id, 'after removal');
    await chatBarrier(api, A, P.id, [D1]);
    for (const ev of CHAT_EVENTS) D1.rec.none(ev, { since, where: (d) => d.channelId === S.id, message: `removed from S: no ${ev} of S` });
    await chatRefused(D1, { chatType: 'new', channelId: S.id, content: 'still here?' }, 'removed from the private channel');
    assert.deepEqual(await join(D1, [S.id]), { joined: [], refused: [S.id] });
    D1.disconnect();
  });

  it('a kicked member\'s sockets in the namespace are disconnected; reconnecting is Forbidden', async () => {
    const K = await api.signup('Kick');
    await api.join(A, W.id, K);
    const K1 = await connectCommunity(server.base, K, W.id, 'websocket', { label: 'K1' });
    const K2 = await connectCommunity(server.base, K, W.id, 'polling', { label: 'K2' });
    await joinOk(K1, [P.id]);
    await api.ok('DELETE', `/api/workspaces/${W.id}/members/${K.id}`, { token: A.token }, [200, 204]);
    for (const s of [K1, K2]) {
      const { reason } = await disconnected(s);
      assert.equal(reason, 'io server disconnect', `${s.rec.label} is disconnected by the server`);
    }
    assert.equal(await connectErrorMessage(server.base, W.id, 'websocket', { who: K }), 'Forbidden');
    assert.equal((await postChat(api, K, P.id, 'still here?')).status, 404, 'a kicked user sees no channel of W');
  });
});

describe('community invites: who may add whom', () => {
  let A, B, C, D, W, X;
  let A1, B1, D1;
  const inv = (s, body) => emitAck(s, 'invite-users-to-channel', body);
  before(async () => {
    ({ A, B, C, D, W, X } = await world());
    A1 = await connectCommunity(server.base, A, W.id, 'websocket', { label: 'A1' });
    B1 = await connectCommunity(server.base, B, W.id, 'polling', { label: 'B1' });
    D1 = await connectCommunity(server.base, D, W.id, 'websocket', { label: 'D1' });
  });
  after(() => {
    for (const s of [A1, B1, D1]) s?.disconnect();
  });

  it('a workspace admin who can see a private channel may add members; one who cannot see it may not', async () => {
    const seen = await api.createChannel(B, W.id, { name: 'b-with-a', isPrivate: true, users: [A.id] });
    const hidden = await api.createChannel(B, W.id, { name: 'b-alone', isPrivate: true });
    const no = await inv(A1, { community_id: W.id, channel_id: hidden.id, users: [D.id] });
    assert.equal(no?.isSuccess, false, `A cannot see B's private channel: ${JSON.stringify(no)}`);
    const yes = await inv(A1, { community_id: W.id, channel_id: seen.id, users: [D.id] });
    assert.deepEqual(yes, { isSuccess: true }, 'a workspace admin who can see the channel manages its members');
    const r = await D1.rec.next('invited-to-channel', { where: (d) => d.id === seen.id });
    assert.equal(r.data.managerId, B.id);
    await chatBarrier(api, B, seen.id, [D1]);
    assert.equal(D1.rec.all('invited-to-channel', { where: (d) => d.id === hidden.id }).length, 0);
  });

  it('malformed or mismatched invites are refused and add nobody', async () => {
    const S = await api.createChannel(A, W.id, { name: 'a-private', isPrivate: true });
    const XC = await api.createChannel(C, X.id, { name: 'x-chan' });
    resetAll(A1, B1, D1);
    for (const [body, why] of [
      [{ community_id: X.id, channel_id: S.id, users: [B.id] }, 'community_id of another workspace'],
      [{ community_id: W.id, channel_id: XC.id, users: [B.id] }, 'a channel of another workspace'],
      [{ community_id: W.id, channel_id: S.id, users: B.id }, 'users is not a list'],
      [{ community_id: W.id, channel_id: S.id }, 'no users'],
      [{ community_id: W.id, users: [B.id] }, 'no channel_id'],
      [{ community_id: W.id, channel_id: S.id, users: [B.id, C.id] }, 'one invitee is not a workspace member'],
      [{ community_id: W.id, channel_id: S.id, users: [NOWHERE] }, 'unknown user'],
      [null, 'null payload'],
    ]) {
      const ack = await inv(A1, body);
      assert.equal(ack?.isSuccess, false, `${why}: ${JSON.stringify(ack)}`);
    }
    A1.emit('invite-users-to-channel', { community_id: W.id, channel_id: S.id, users: 'nope' });
    const f = await A1.rec.next('failed-to-send-message');
    assert.equal(typeof f.data?.message, 'string');
    // nobody was added: B still cannot read S and got no invitation
    assert.equal((await history(api, B, S.id)).status, 404, 'B was not added by a refused invite');
    const probe = await api.createChannel(A, W.id, { name: 'probe' });
    await joinOk(B1, [probe.id]);
    await chatBarrier(api, A, probe.id, [B1]);
    B1.rec.none('invited-to-channel', { message: 'refused invites send nothing' });
  });
});

describe('community lifecycle: leaving, demotion, deleted channels, sessions', () => {
  let A, B, W, P;
  let A1;
  before(async () => {
    ({ A, B, W } = await world());
    P = await api.createChannel(A, W.id, { name: 'p' });
    A1 = await connectCommunity(server.base, A, W.id, 'websocket', { label: 'A1' });
    await joinOk(A1, [P.id]);
  });
  after(() => A1?.disconnect());

  /** After `action`, `s` gets nothing more of P: it is disconnected, or it receives no later chat. */
  async function cutOff(s, action, why) {
    await action();
    const since = s.rec.mark();
    await postChatOk(api, A, P.id, `after: ${why}`);
    await chatBarrier(api, A, P.id, [A1]);
    if (s.connected) {
      // still connected: a later chat posted by A's socket must not reach it either
      for (const ev of CHAT_EVENTS) s.rec.none(ev, { since, where: (d) => d.channelId === P.id, message: `${why}: no ${ev} of P` });
    }
  }

  it('a member who leaves the workspace gets nothing more from its namespace', async () => {
    const L = await api.signup('Leaver');
    await api.join(A, W.id, L);
    const L1 = await connectCommunity(server.base, L, W.id, 'websocket', { label: 'L1' });
    await joinOk(L1, [P.id]);
    await chatBarrier(api, A, P.id, [A1, L1]);
    await cutOff(L1, () => api.ok('POST', `/api/workspaces/${W.id}/leave`, { token: L.token }, [200, 204]), 'left the workspace');
    if (L1.connected) await chatRefused(L1, { chatType: 'new', channelId: P.id, content: 'ghost' }, 'a former member writes');
    L1.disconnect();
  });

  it('a member demoted to guest gets nothing more of public channels', async () => {
    const G = await api.signup('Demoted');
    await api.join(A, W.id, G);
    const G1 = await connectCommunity(server.base, G, W.id, 'polling', { label: 'G1' });
    await joinOk(G1, [P.id]);
    await chatBarrier(api, A, P.id, [A1, G1]);
    await cutOff(G1, () => api.ok('PATCH', `/api/workspaces/${W.id}/members/${G.id}`, { token: A.token, body: { role: 'guest' } }), 'demoted to guest');
    if (G1.connected) await chatRefused(G1, { chatType: 'new', channelId: P.id, content: 'guest now' }, 'a guest writes to a public channel');
    G1.disconnect();
  });

  it('a deleted channel takes no more chats', async () => {
    const T = await api.createChannel(B, W.id, { name: 'temp' });
    const B1 = await connectCommunity(server.base, B, W.id, 'websocket', { label: 'B1' });
    await joinOk(B1, [T.id, P.id]);
    await postChatOk(api, B, T.id, 'soon gone');
    await api.ok('DELETE', `/api/channels/${T.id}`, { token: B.token }, [200, 204]);
    await chatRefused(B1, { chatType: 'new', channelId: T.id, content: 'into the void' }, 'the channel was deleted');
    assert.equal((await postChat(api, B, T.id, 'into the void')).status, 404);
    assert.equal((await history(api, B, T.id)).status, 404);
    assert.deepEqual(await join(B1, [T.id]), { joined: [], refused: [T.id] });
    B1.disconnect();
  });

  it('signing out a session disconnects its community sockets, not the other session\'s', async () => {
    const U = await api.signup('Sess');
    await api.join(A, W.id, U);
    const token2 = await api.signin(U);
    const s1 = await connectCommunity(server.base, U, W.id, 'websocket', { label: 'session-1' });
    const s2 = await connectCommunity(server.base, { ...U, token: token2 }, W.id, 'polling', { label: 'session-2' });
    await joinOk(s1, [P.id]);
    await api.ok('POST', '/api/auth/signout', { token: token2 }, [200, 204]);
    const { reason } = await disconnected(s2);
    assert.equal(reason, 'io server disconnect');
    await chatBarrier(api, A, P.id, [s1]);
    assert.ok(s1.connected, 'the other session\'s socket stays');
    s1.disconnect();
  });
});

describe('community limits (SPEC §7)', () => {
  let A, B, W, P;
  before(async () => {
    ({ A, B, W } = await world());
    P = await api.createChannel(A, W.id, { name: 'limits' });
  });

  for (const transport of TRANSPORTS) {
    it(`a message over 64 KiB over ${transport} is not stored or broadcast, and the server keeps serving`, async (t) => {
      const big = await connectCommunity(server.base, A, W.id, transport, { label: `big-${transport}` });
      const peer = await connectCommunity(server.base, B, W.id, 'websocket', { label: `peer-${transport}` });
      await joinOk(peer, [P.id]);
      const huge = 'x'.repeat(100 * 1024);
      const outcome = await Promise.race([
        big.timeout(10000).emitWithAck('chat', { chatType: 'new', channelId: P.id, content: huge }).then((a) => (a?.written ? 'written' : 'refused'), () => 'no-ack'),
        disconnected(big, 10000).then(() => 'disconnected'),
      ]);
      t.diagnostic(`oversized chat: ${outcome}`);
      assert.notEqual(outcome, 'written');
      await chatBarrier(api, A, P.id, [peer]);
      peer.rec.none('new-chat', { where: (d) => d.content.length > 60000 });
      const h = (await history(api, A, P.id)).body.chats;
      assert.ok(!h.some((c) => c.content.length > 60000), 'nothing oversized was stored');
      big.disconnect();
      peer.disconnect();
    });
  }

  it('a flood of chats is rate limited (50/s, burst 100) without hurting other clients', async (t) => {
    const F = await api.createChannel(A, W.id, { name: 'flood' });
    const flooder = await connectCommunity(server.base, A, W.id, 'websocket', { label: 'flooder' });
    const peer = await connectCommunity(server.base, B, W.id, 'websocket', { label: 'flood-peer' });
    await joinOk(peer, [F.id]);
    const N = 400;
    const acks = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        flooder
          .timeout(15000)
          .emitWithAck('chat', { chatType: 'new', channelId: F.id, content: `flood ${i}` })
          .then((a) => a, () => ({ written: 'no-ack' })),
      ),
    );
    const written = acks.filter((a) => a?.written === true).length;
    const refused = acks.filter((a) => a?.written === false).length;
    t.diagnostic(`written ${written}, refused ${refused}, unanswered ${N - written - refused}; flooder connected: ${flooder.connected}`);
    assert.ok(written < N, `a burst of ${N} chats in a few ms must be limited (written ${written})`);
    assert.ok(written <= 200, `burst 100 (+50/s) allows about 100, written ${written}`);
    for (const a of acks.filter((x) => x?.written === false)) assert.equal(typeof a.error, 'string', 'a rate-limited chat says why');
    await chatBarrier(api, B, F.id, [peer]);
    const h = await history(api, B, F.id, { limit: 100 });
    assert.equal(h.status, 200);
    const stored = h.body.chats.filter((c) => c.content.startsWith('flood ')).length + (h.body.hasMore ? 1 : 0);
    assert.ok(stored <= 201, `stored ≈ written: ${stored}`);
    assert.equal((await api.req('GET', '/healthz')).status, 200);
    flooder.disconnect();
    peer.disconnect();
  });
});

// ---------------------------------------------------------------------------
// Concurrency and configuration

describe('concurrent writers', () => {
  it('get unique, gap-free ids per channel', async () => {
    const { A, B, D, W } = await world();
    const P = await api.createChannel(A, W.id, { name: 'busy' });
    const P2 = await api.createChannel(A, W.id, { name: 'busy too' });
    const socks = [
      await connectCommunity(server.base, A, W.id, 'websocket', { label: 'A1' }),
      await connectCommunity(server.base, B, W.id, 'polling', { label: 'B1' }),
      await connectCommunity(server.base, D, W.id, 'websocket', { label: 'D1' }),
    ];
    const writes = [];
    for (let i = 0; i < 15; i++) {
      for (const [k, s] of socks.entries()) {
        writes.push(chatOk(s, { chatType: 'new', channelId: i % 2 ? P2.id : P.id, content: `w${k}-${i}` }));
      }
      writes.push(postChatOk(api, A, P.id, `rest-${i}`));
    }
    const infos = await Promise.all(writes);
    for (const ch of [P, P2]) {
      const got = infos.filter((c) => c.channelId === ch.id).map((c) => c.id).sort((a, b) => a - b);
      assert.deepEqual(got, Array.from({ length: got.length }, (_, i) => i + 1), `ids of ${ch.name} are 1..${got.length}`);
      const h = (await history(api, A, ch.id, { limit: 100 })).body;
      assert.deepEqual(h.chats.map((c) => c.id), [...got].reverse());
    }
    for (const s of socks) s.disconnect();
  });
});

describe('chat content limit from configuration', () => {
  it('HUDDLE_LIMITS__CHAT_CONTENT_CHARS=300: 300 characters pass, 301 do not (socket and REST)', async () => {
    const small = await startServer({ env: { HUDDLE_LIMITS__CHAT_CONTENT_CHARS: '300' } });
    try {
      const api2 = new Api(small.base);
      const A = await api2.signup('Ann');
      const W = await api2.createWorkspace(A, 'W');
      const P = await api2.createChannel(A, W.id, { name: 'p' });
      const A1 = await connectCommunity(small.base, A, W.id, 'websocket', { label: 'A1 small' });
      const ok = await chatOk(A1, { chatType: 'new', channelId: P.id, content: '한'.repeat(300) });
      assert.equal(ok.content.length, 300);
      await chatRefused(A1, { chatType: 'new', channelId: P.id, content: 'a'.repeat(301) }, '301 > 300');
      await chatRefused(A1, { chatType: 'modify', channelId: P.id, chatId: ok.id, content: 'b'.repeat(301) }, 'modify 301 > 300');
      const r = await postChat(api2, A, P.id, 'c'.repeat(301));
      assert.equal(r.status, 400, `REST 301 characters → 400: ${r.status}`);
      assert.equal((await postChat(api2, A, P.id, 'c'.repeat(300))).status, 201);
      A1.disconnect();
    } finally {
      await stopServerClean(small);
    }
  });
});

describe('shutdown', () => {
  it('SIGTERM disconnects community sockets and exits 0', async () => {
    const srv = await startServer();
    const api2 = new Api(srv.base);
    const A = await api2.signup('Ann');
    const W = await api2.createWorkspace(A, 'W');
    const A1 = await connectCommunity(srv.base, A, W.id, 'websocket', { label: 'A1 shutdown' });
    const gone = disconnected(A1, 15000);
    await stopServerClean(srv);
    const { reason } = await gone;
    assert.ok(['io server disconnect', 'transport close'].includes(reason), `disconnect reason: ${reason}`);
  });

  it('SIGTERM exits promptly after long-polling sessions that the server refused or ended', async () => {
    const srv = await startServer();
    const api2 = new Api(srv.base);
    const A = await api2.signup('Ann');
    const W = await api2.createWorkspace(A, 'W');
    // refused handshakes (connect_error) and server-side disconnects, over long-polling
    for (let i = 0; i < 3; i++) {
      assert.equal(await connectErrorMessage(srv.base, W.id, 'polling', { token: 'Bearer nope' }), 'Unauthorized');
      assert.equal(await connectErrorMessage(srv.base, NOWHERE, 'polling', { who: A }), 'Forbidden');
    }
    for (let i = 0; i < 3; i++) {
      const token = await api2.signin(A);
      const s = await connectCommunity(srv.base, { ...A, token }, W.id, 'polling', { label: `ended-${i}` });
      await api2.ok('POST', '/api/auth/signout', { token }, [200, 204]);
      assert.equal((await disconnected(s)).reason, 'io server disconnect');
    }
    const t0 = Date.now();
    const res = await srv.stop({ timeoutMs: 5000 });
    assert.deepEqual(
      { code: res.code, signal: res.signal },
      { code: 0, signal: null },
      `SIGTERM must end the process within 5 s (it took ${Date.now() - t0} ms, then SIGKILL): a long-poll request of a session the server ended or refused is left pending until the ping interval`,
    );
  });
});
