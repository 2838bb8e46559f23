// End-to-end tests of the users event socket (SPEC §6, seed 004) with the npm `ws`
// client — the client the seed document itself uses — against the real binary.
//
// Every server is started with HUDDLE_USERS_SOCKET__LISTEN=127.0.0.1:0 and the
// socket URL is read from the "  users socket ws://…" line the server prints.
//
// Waiting: `client.next(where)` consumes the first not-yet-consumed frame matching
// `where` (waiting up to a timeout), so frames that arrived before the await are
// still seen. No fixed sleeps. Absence is checked after a barrier that travels the
// same path as the forbidden frame: a fresh sign-up whose Login broadcast every
// socket must receive (account events), or a later echo on the same connection.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomUUID } from 'node:crypto';
import ws from 'ws';
import { startServer, stopServerClean, Api, HUDDLE_BIN, DEFAULT_TIMEOUT_MS } from './harness.mjs';

const EV = Object.freeze({ Login: 1, Logout: 2, Activated: 3, Removed: 4, MetaRequest: 9, Echo: 10 });
const LOCAL_ORIGIN = 'http://localhost:5173';
const PASSWORD = 'correct horse battery';
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const API_KEY = 'users-api-key-for-tests-0123456789';

// ---------------------------------------------------------------------------
// Server

/** Resolves with the first match of `re` in the server's stdout (now or later). */
function waitStdout(server, re, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = re.exec(server.stdout);
      if (m) {
        clearTimeout(timer);
        server.child.stdout.off('data', onData);
        resolve(m);
        return true;
      }
      return false;
    };
    const onData = () => {
      // the harness appends to server.stdout in its own listener, registered first
      check();
    };
    const timer = setTimeout(() => {
      server.child.stdout.off('data', onData);
      reject(new Error(`no ${re} in stdout within ${timeoutMs} ms\nstdout:\n${server.stdout}\nstderr:\n${server.stderr}`));
    }, timeoutMs);
    if (!check()) server.child.stdout.on('data', onData);
  });
}

async function startUsersServer(env = {}) {
  const server = await startServer({ env: { HUDDLE_USERS_SOCKET__LISTEN: '127.0.0.1:0', ...env } });
  try {
    const m = await waitStdout(server, /users socket (ws:\/\/127\.0\.0\.1:\d+)/);
    server.wsUrl = m[1];
  } catch (e) {
    await server.stop();
    throw e;
  }
  server.api = new Api(server.base);
  server.clients = new Set();
  return server;
}

async function stopUsersServer(server) {
  if (!server) return;
  for (const c of server.clients) c.close();
  await stopServerClean(server);
}

/**
 * Like the harness's startServer, with extra command-line arguments (a copy of the few
 * lines needed: the harness takes no arguments).
 */
async function startWithArgs(args, env = {}, startTimeoutMs = 60000) {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'huddle-e2e-'));
  const child = spawn(HUDDLE_BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir, ...args], {
    cwd: dataDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
      HUDDLE_AUTH__ARGON2_MEMORY_KIB: '64',
      HUDDLE_AUTH__ARGON2_ITERATIONS: '1',
      HUDDLE_COMET__LISTEN: '',
      ...env,
    },
  });
  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const server = {
    child,
    dataDir,
    clients: new Set(),
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    async stop() {
      for (const c of this.clients) c.close();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const res = await exited;
      await rm(dataDir, { recursive: true, force: true });
      return res;
    },
  };
  const failed = exited.then(({ code, signal }) => {
    throw new Error(`huddle exited early (code ${code}, signal ${signal})\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  });
  try {
    const [m] = await Promise.race([
      Promise.all([waitStdout(server, /users socket (ws:\/\/127\.0\.0\.1:\d+)/, startTimeoutMs)]),
      failed,
    ]);
    server.wsUrl = m[1];
  } catch (e) {
    await server.stop();
    throw e;
  }
  failed.catch(() => {});
  return server;
}

/** The JSON-array syntax figment reads from an environment variable. */
function envList(list) {
  return JSON.stringify(list);
}

// ---------------------------------------------------------------------------
// Client

let clientCount = 0;

class UsersClient {
  constructor(socket, label) {
    this.socket = socket;
    this.label = label;
    /** every received frame, in order: {seq, data (parsed JSON or undefined), text, binary, consumed} */
    this.frames = [];
    this.waiters = [];
    this.closeInfo = null;
    this.closed = new Promise((resolve) => {
      socket.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
      });
    });
    socket.on('message', (data, isBinary) => this._push(data, isBinary));
    socket.on('error', (e) => {
      this.lastError = e;
    });
  }

  _push(data, isBinary) {
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data).toString('utf8');
    let parsed;
    let parseError = null;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      parseError = e.message;
    }
    const rec = { seq: this.frames.length, data: parsed, text, binary: isBinary, parseError, consumed: false };
    this.frames.push(rec);
    for (const w of [...this.waiters]) {
      if (!rec.consumed && w.match(rec)) {
        rec.consumed = true;
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(rec.data);
      }
    }
  }

  send(obj) {
    this.socket.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  mark() {
    return this.frames.length;
  }

  /** The first unconsumed frame (parsed) satisfying `where`, consumed; waits up to timeoutMs. */
  next(where = () => true, { timeoutMs = DEFAULT_TIMEOUT_MS, since = 0, what } = {}) {
    const match = (r) => r.seq >= since && r.data !== undefined && safe(where, r.data);
    const found = this.frames.find((r) => !r.consumed && match(r));
    if (found) {
      found.consumed = true;
      return Promise.resolve(found.data);
    }
    return new Promise((resolve, reject) => {
      const w = {
        match,
        resolve: (d) => {
          clearTimeout(w.timer);
          resolve(d);
        },
      };
      w.timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(
          new Error(
            `${this.label}: timed out after ${timeoutMs} ms waiting for ${what ?? where.toString()}; ` +
              `closed: ${JSON.stringify(this.closeInfo)}; received: ${this.describe()}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Every received frame (parsed) since `since` satisfying `where`, consumed or not. */
  all(where = () => true, { since = 0 } = {}) {
    return this.frames.filter((r) => r.seq >= since && r.data !== undefined && safe(where, r.data)).map((r) => r.data);
  }

  /** Sends an echo and waits for it: every frame the server queued before it has arrived. */
  async echoRoundTrip(message = `rt-${randomUUID()}`) {
    this.send({ eventType: EV.Echo, message });
    const reply = await this.next((d) => d.eventType === EV.Echo && d.message === message, { what: `echo "${message}"` });
    assert.equal(reply.error, null, `${this.label}: echo reply carries error:null: ${JSON.stringify(reply)}`);
    return reply;
  }

  /** SPEC §6: every server frame is JSON and carries `error` (null or text). */
  assertFramesWellFormed() {
    for (const r of this.frames) {
      assert.equal(r.parseError, null, `${this.label}: frame is not JSON: ${r.text}`);
      assert.ok(r.data !== null && typeof r.data === 'object' && !Array.isArray(r.data), `${this.label}: frame is an object: ${r.text}`);
      assert.ok(Object.hasOwn(r.data, 'error'), `${this.label}: frame carries "error": ${r.text}`);
      assert.ok(r.data.error === null || typeof r.data.error === 'string', `${this.label}: "error" is null or text: ${r.text}`);
    }
  }

  describe() {
    const s = this.frames.map((r) => (r.text.length > 200 ? r.text.slice(0, 200) + '…' : r.text));
    return s.length ? `\n  - ${s.join('\n  - ')}` : '(nothing)';
  }

  close() {
    if (this.socket.readyState === ws.OPEN || this.socket.readyState === ws.CONNECTING) this.socket.terminate();
  }
}

function safe(where, data) {
  try {
    return Boolean(where(data));
  } catch {
    return false;
  }
}

function wsOptions({ origin, headers = {} }) {
  const h = { ...headers };
  if (origin !== undefined) h.origin = origin;
  return { headers: h, handshakeTimeout: DEFAULT_TIMEOUT_MS };
}

/** Opens a users socket and waits for 'open'. `origin: undefined` sends no Origin header. */
async function open(server, { origin = LOCAL_ORIGIN, headers, label } = {}) {
  const socket = new ws(server.wsUrl, wsOptions({ origin, headers }));
  const client = new UsersClient(socket, label ?? `client${++clientCount}(${origin ?? 'no origin'})`);
  server.clients.add(client);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${client.label}: not open within ${DEFAULT_TIMEOUT_MS} ms`)), DEFAULT_TIMEOUT_MS);
    socket.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('unexpected-response', (req, res) => {
      clearTimeout(timer);
      res.resume();
      req.destroy();
      reject(new Error(`${client.label}: upgrade refused with HTTP ${res.statusCode}`));
    });
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${client.label}: ${e.message}`));
    });
  });
  return client;
}

/** Attempts an upgrade that must be refused; resolves with the HTTP status. Rejects if it opens. */
function refused(server, { origin, headers } = {}) {
  const socket = new ws(server.wsUrl, wsOptions({ origin, headers }));
  const label = `refused?(${origin === undefined ? 'no origin' : JSON.stringify(origin)})`;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.terminate();
      reject(new Error(`${label}: neither refused nor opened within ${DEFAULT_TIMEOUT_MS} ms`));
    }, DEFAULT_TIMEOUT_MS);
    socket.on('error', () => {});
    socket.once('unexpected-response', (req, res) => {
      clearTimeout(timer);
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => {
        req.destroy();
        resolve({ statusCode: res.statusCode, body });
      });
      res.on('error', () => resolve({ statusCode: res.statusCode, body }));
    });
    socket.once('open', () => {
      clearTimeout(timer);
      socket.terminate();
      reject(new Error(`${label}: the upgrade was accepted (the socket opened), expected HTTP 403`));
    });
  });
}

async function assertRefused(server, origin, opts = {}) {
  const res = await refused(server, { origin, ...opts });
  assert.equal(res.statusCode, 403, `Origin ${JSON.stringify(origin)} → HTTP ${res.statusCode}, expected 403`);
}

// ---------------------------------------------------------------------------
// Accounts (REST)

function freshEmail(name) {
  return `${name}-${randomUUID().slice(0, 12)}@example.com`;
}

async function signup(api, name = 'user', expect = [200, 201]) {
  const email = freshEmail(name);
  const body = await api.ok('POST', '/api/auth/signup', { body: { email, password: PASSWORD, name } }, expect);
  return { email, password: PASSWORD, name, id: body?.user?.id, body, token: body?.credentials?.accessToken, credentials: body?.credentials };
}

async function signin(api, user, expect = 200) {
  const body = await api.ok('POST', '/api/auth/signin', { body: { email: user.email, password: user.password } }, expect);
  return body?.credentials;
}

const isEvent = (type, username) => (d) => d.eventType === type && d.username === username;

function assertEvent(frame, type, username) {
  assert.equal(frame.eventType, type);
  assert.equal(frame.username, username);
  assert.equal(frame.error, null, `account events carry error:null: ${JSON.stringify(frame)}`);
}

/** Waits for the account event `type` about `username` on every client; returns the frames. */
async function allSee(clients, type, username, opts = {}) {
  const frames = await Promise.all(
    clients.map((c) => c.next(isEvent(type, username), { what: `eventType ${type} for ${username}`, ...opts })),
  );
  for (const f of frames) assertEvent(f, type, username);
  return frames;
}

/**
 * A barrier on the account-event path: a fresh sign-up whose Login every client must
 * receive. Account events announced before it have been delivered when it resolves.
 */
async function accountBarrier(api, clients) {
  const b = await signup(api, 'barrier');
  await allSee(clients, EV.Login, b.email);
  return b;
}

// ---------------------------------------------------------------------------

describe('users socket: a custom Origin allow-list (regexes as in the seed config)', () => {
  let server;
  const domains = [
    '^https?://trusted\\.example$',
    '^example\\.com$',
    '^.+\\.example\\.com$',
    '^trusted-host$',
  ];

  before(async () => {
    server = await startUsersServer({ HUDDLE_USERS_SOCKET__APPROVED_SOCKET_DOMAINS: envList(domains) });
  });
  after(async () => {
    await stopUsersServer(server);
  });

  it('prints its address and accepts origins matching one of the regexes', async () => {
    assert.match(server.wsUrl, /^ws:\/\/127\.0\.0\.1:\d+$/);
    for (const origin of ['http://trusted.example', 'https://trusted.example', 'example.com', 'api.example.com', 'trusted-host']) {
      const c = await open(server, { origin });
      await c.echoRoundTrip();
      c.assertFramesWellFormed();
      c.close();
    }
  });

  it('refuses origins no regex matches with HTTP 403 (anchors respected)', async () => {
    for (const origin of [
      'http://evil-example.com', // ^example\.com$ must not match it
      'http://example.com', // anchored: the scheme is not part of ^example\.com$
      'example.com.evil.net',
      'http://trusted.example.evil.com',
      'http://xtrusted.example',
      'http://trusted.example:8080',
      'trusted-host.attacker.net',
      'http://localhost:5173', // the defaults are replaced by the configured list
      'http://127.0.0.1',
    ]) {
      await assertRefused(server, origin);
    }
  });

  it('refuses an upgrade without an Origin (403)', async () => {
    await assertRefused(server, undefined);
  });

  it('an open connection keeps working while others are refused', async () => {
    const c = await open(server, { origin: 'https://trusted.example' });
    await assertRefused(server, 'http://evil-example.com');
    await assertRefused(server, undefined);
    await c.echoRoundTrip();
    c.close();
  });

  it("runs the seed's own example verbatim: origin trusted-host, echo \"Hello world?\"", async () => {
    const socketUrl = server.wsUrl;
    const got = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no echo within the timeout')), DEFAULT_TIMEOUT_MS);
      // --- from the seed (users-ws-api.md), with the URL and origin filled in
      var wsClient = new ws(socketUrl, { headers: { origin: 'trusted-host' } });
      wsClient.on('open', function () {
        // The connection has been opened
        wsClient.send(JSON.stringify({ eventType: 10, message: 'Hello world?' }));
      });
      wsClient.on('error', function (err) {
        clearTimeout(timer);
        reject(err);
      });
      wsClient.on('close', function () {
        // The connection has been closed
      });
      wsClient.on('message', function (data) {
        // The server sent you an event
        var echoEvent = JSON.parse(data);
        // Do something based on the event type:
        if (echoEvent.eventType === 10) {
          clearTimeout(timer);
          resolve(echoEvent);
          wsClient.close();
        }
      });
    });
    assert.deepEqual(got, { eventType: 10, message: 'Hello world?', error: null });
  });
});

describe('users socket: default allow-list, echo, account events, bad input', () => {
  let server;
  let api;

  before(async () => {
    server = await startUsersServer();
    api = server.api;
  });
  after(async () => {
    await stopUsersServer(server);
  });

  it('by default accepts http(s)://localhost and http(s)://127.0.0.1 with any port', async () => {
    for (const origin of ['http://localhost', 'https://localhost', 'http://localhost:5173', 'http://127.0.0.1:8080', 'https://127.0.0.1']) {
      const c = await open(server, { origin });
      await c.echoRoundTrip();
      c.close();
    }
  });

  it('by default refuses every other origin, and a missing one, with 403', async () => {
    for (const origin of [
      'http://localhost.evil.com',
      'http://evil-localhost',
      'http://127.0.0.1.nip.io',
      'http://127.0.0.10',
      'http://localhost:abc',
      'ws://localhost',
      'http://example.com',
      'null',
      '',
    ]) {
      await assertRefused(server, origin);
    }
    await assertRefused(server, undefined);
  });

  it('echo (10) answers the caller only', async () => {
    const a = await open(server, { label: 'A' });
    const b = await open(server, { label: 'B' });
    const message = `only-for-a ${randomUUID()}`;
    a.send({ eventType: EV.Echo, message });
    const reply = await a.next((d) => d.eventType === EV.Echo && d.message === message);
    assert.deepEqual(reply, { eventType: 10, message, error: null });

    // explicit broadcast:false is the same
    const message2 = `also-only-for-a ${randomUUID()}`;
    a.send({ eventType: EV.Echo, message: message2, broadcast: false });
    assert.deepEqual(await a.next((d) => d.eventType === EV.Echo && d.message === message2), { eventType: 10, message: message2, error: null });

    // barrier: a later broadcast from A reaches B; the private echoes must not have
    const barrier = `barrier ${randomUUID()}`;
    a.send({ eventType: EV.Echo, message: barrier, broadcast: true });
    await b.next((d) => d.eventType === EV.Echo && d.message === barrier);
    await b.echoRoundTrip();
    assert.deepEqual(b.all((d) => d.message === message || d.message === message2), [], 'B must not receive A\'s private echoes');
    assert.equal(a.all((d) => d.message === message).length, 1, 'A receives its echo once');
    a.assertFramesWellFormed();
    b.assertFramesWellFormed();
    a.close();
    b.close();
  });

  it('echo (10) with broadcast:true reaches every connected socket, the sender included', async () => {
    const a = await open(server, { label: 'A' });
    const b = await open(server, { label: 'B', origin: 'https://127.0.0.1' });
    const c = await open(server, { label: 'C', origin: 'http://localhost' });
    const message = `to everyone ${randomUUID()}`;
    a.send({ eventType: EV.Echo, message, broadcast: true });
    for (const x of [a, b, c]) {
      const got = await x.next((d) => d.eventType === EV.Echo && d.message === message);
      assert.deepEqual(got, { eventType: 10, message, error: null }, `${x.label} gets the broadcast echo`);
    }
    for (const x of [a, b, c]) {
      await x.echoRoundTrip();
      assert.equal(x.all((d) => d.message === message).length, 1, `${x.label} receives the broadcast once`);
      x.assertFramesWellFormed();
      x.close();
    }
  });

  it('sign-up and sign-in broadcast Login (1) with the email to every socket', async () => {
    const s1 = await open(server, { label: 'S1' });
    const s2 = await open(server, { label: 'S2', origin: 'http://127.0.0.1:3000' });
    const u = await signup(api, 'login');
    assert.ok(u.token, 'sign-up signs in');
    await allSee([s1, s2], EV.Login, u.email);
    await signin(api, u);
    await allSee([s1, s2], EV.Login, u.email);
    // a failed sign-in announces nothing
    const since = [s1.mark(), s2.mark()];
    await api.ok('POST', '/api/auth/signin', { body: { email: u.email, password: 'wrong password here' } }, 401);
    await accountBarrier(api, [s1, s2]);
    assert.equal(s1.all(isEvent(EV.Login, u.email), { since: since[0] }).length, 0, 'no Login for a failed sign-in');
    assert.equal(s2.all(isEvent(EV.Login, u.email), { since: since[1] }).length, 0, 'no Login for a failed sign-in');
    s1.assertFramesWellFormed();
    s2.assertFramesWellFormed();
    s1.close();
    s2.close();
  });

  it('sign-out broadcasts Logout (2) with the email, once', async () => {
    const s1 = await open(server, { label: 'S1' });
    const s2 = await open(server, { label: 'S2' });
    const u = await signup(api, 'logout');
    await allSee([s1, s2], EV.Login, u.email);
    await api.ok('POST', '/api/auth/signout', { token: u.token }, [200, 204]);
    await allSee([s1, s2], EV.Logout, u.email);
    await accountBarrier(api, [s1, s2]);
    assert.equal(s1.all(isEvent(EV.Logout, u.email)).length, 1, 'exactly one Logout');
    assert.equal(s2.all(isEvent(EV.Logout, u.email)).length, 1, 'exactly one Logout');
    s1.assertFramesWellFormed();
    s2.assertFramesWellFormed();
    s1.close();
    s2.close();
  });

  it('a password change revokes the other session: Logout (2) for it', async () => {
    const s1 = await open(server, { label: 'S1' });
    const s2 = await open(server, { label: 'S2' });
    const u = await signup(api, 'pwchange');
    await allSee([s1, s2], EV.Login, u.email);
    const other = await signin(api, u);
    await allSee([s1, s2], EV.Login, u.email);
    const since = [s1.mark(), s2.mark()];
    await api.ok('POST', '/api/me/password', { token: u.token, body: { oldPassword: u.password, newPassword: 'a brand new passphrase' } }, [200, 204]);
    await allSee([s1, s2], EV.Logout, u.email);
    // the other session is really gone, the changing one is not
    await api.ok('GET', '/api/me', { token: other.accessToken }, 401);
    await api.ok('GET', '/api/me', { token: u.token }, 200);
    await accountBarrier(api, [s1, s2]);
    assert.equal(s1.all(isEvent(EV.Logout, u.email), { since: since[0] }).length, 1, 'one Logout: one session was revoked');
    assert.equal(s2.all(isEvent(EV.Logout, u.email), { since: since[1] }).length, 1, 'one Logout: one session was revoked');
    s1.close();
    s2.close();
  });

  it('a reused refresh token revokes the session: Logout (2); a normal rotation announces nothing', async () => {
    const s1 = await open(server, { label: 'S1' });
    const s2 = await open(server, { label: 'S2' });
    const u = await signup(api, 'refresh');
    await allSee([s1, s2], EV.Login, u.email);
    const first = u.credentials.refreshToken;
    assert.ok(first, 'sign-up returns a refresh token');
    const since = [s1.mark(), s2.mark()];
    const rotated = await api.ok('POST', '/api/auth/refresh', { body: { refreshToken: first } }, 200);
    assert.ok(rotated?.credentials?.refreshToken, 'refresh rotates');
    await accountBarrier(api, [s1, s2]);
    assert.equal(s1.all((d) => d.username === u.email, { since: since[0] }).length, 0, 'a rotation is neither Login nor Logout');
    assert.equal(s2.all((d) => d.username === u.email, { since: since[1] }).length, 0, 'a rotation is neither Login nor Logout');
    // reuse the old one
    const res = await api.req('POST', '/api/auth/refresh', { body: { refreshToken: first } });
    assert.equal(res.status, 401, `reused refresh token → ${res.status}: ${JSON.stringify(res.body)}`);
    await allSee([s1, s2], EV.Logout, u.email);
    await api.ok('GET', '/api/me', { token: rotated.credentials.accessToken }, 401);
    s1.close();
    s2.close();
  });

  it('DELETE /api/me broadcasts Removed (4) with the email', async () => {
    const s1 = await open(server, { label: 'S1' });
    const s2 = await open(server, { label: 'S2' });
    const u = await signup(api, 'removed');
    await allSee([s1, s2], EV.Login, u.email);
    await api.ok('DELETE', '/api/me', { token: u.token }, [200, 204]);
    await allSee([s1, s2], EV.Removed, u.email);
    await accountBarrier(api, [s1, s2]);
    assert.equal(s1.all(isEvent(EV.Removed, u.email)).length, 1, 'exactly one Removed');
    s1.assertFramesWellFormed();
    s2.assertFramesWellFormed();
    s1.close();
    s2.close();
  });

  it('account events reach sockets of every allowed origin, and nobody is addressed by user', async () => {
    // three sockets, three origins; none of them is "signed in" as anybody
    const clients = [
      await open(server, { origin: 'http://localhost' }),
      await open(server, { origin: 'https://localhost:8443' }),
      await open(server, { origin: 'http://127.0.0.1:1' }),
    ];
    const u = await signup(api, 'fanout');
    await allSee(clients, EV.Login, u.email);
    await api.ok('POST', '/api/auth/signout', { token: u.token }, [200, 204]);
    await allSee(clients, EV.Logout, u.email);
    for (const c of clients) c.close();
  });

  it('malformed JSON gets an error reply and the connection stays usable', async () => {
    const c = await open(server, { label: 'bad-json' });
    for (const raw of ['this is not json', '{"eventType": 10, "message": ', '', '\u0000\u0001']) {
      const since = c.mark();
      c.send(raw);
      const reply = await c.next(() => true, { since, what: `an error reply to ${JSON.stringify(raw)}` });
      assert.equal(typeof reply.error, 'string', `error reply to ${JSON.stringify(raw)}: ${JSON.stringify(reply)}`);
      assert.ok(reply.error.length > 0, 'the error says something');
      await c.echoRoundTrip();
    }
    assert.equal(c.closeInfo, null, 'still open');
    c.assertFramesWellFormed();
    c.close();
  });

  it('JSON that is not an event object gets an error reply', async () => {
    const c = await open(server, { label: 'not-an-object' });
    for (const raw of ['null', '[1,2,3]', '"hello"', '42', '{}', '{"message": "no eventType"}']) {
      const since = c.mark();
      c.send(raw);
      const reply = await c.next(() => true, { since, what: `an error reply to ${raw}` });
      assert.equal(typeof reply.error, 'string', `error reply to ${raw}: ${JSON.stringify(reply)}`);
      await c.echoRoundTrip();
    }
    c.assertFramesWellFormed();
    c.close();
  });

  it('an unknown or server-only eventType gets an error reply', async () => {
    const c = await open(server, { label: 'unknown-type' });
    for (const frame of [{ eventType: 99 }, { eventType: 0 }, { eventType: -1 }, { eventType: 10.5, message: 'x' }]) {
      const since = c.mark();
      c.send(frame);
      const reply = await c.next(() => true, { since, what: `an error reply to ${JSON.stringify(frame)}` });
      assert.equal(typeof reply.error, 'string', `error reply to ${JSON.stringify(frame)}: ${JSON.stringify(reply)}`);
      assert.ok(reply.error.length > 0);
      await c.echoRoundTrip();
    }
    c.assertFramesWellFormed();
    c.close();
  });

  it('wrong field types get an error reply (and no echo)', async () => {
    const c = await open(server, { label: 'wrong-types' });
    const s2 = await open(server, { label: 'bystander' });
    for (const frame of [
      { eventType: '10', message: 'eventType as a string' },
      { eventType: 10, message: 5 },
      { eventType: 10, message: { nested: true } },
      { eventType: 10, message: 'broadcast as a string', broadcast: 'yes' },
      { eventType: 9, username: 42 },
      { eventType: 9, username: 'someone@example.com', property: 7 },
    ]) {
      const since = c.mark();
      c.send(frame);
      const reply = await c.next(() => true, { since, what: `an error reply to ${JSON.stringify(frame)}` });
      assert.equal(typeof reply.error, 'string', `error reply to ${JSON.stringify(frame)}: ${JSON.stringify(reply)}`);
      assert.ok(reply.error.length > 0);
      await c.echoRoundTrip();
    }
    // the bogus broadcast was not broadcast
    const barrier = `barrier ${randomUUID()}`;
    c.send({ eventType: EV.Echo, message: barrier, broadcast: true });
    await s2.next((d) => d.message === barrier);
    assert.deepEqual(s2.all((d) => d.message === 'broadcast as a string'), [], 'an invalid echo is not broadcast');
    c.assertFramesWellFormed();
    c.close();
    s2.close();
  });

  it('a binary frame gets an error reply and the connection stays usable', async () => {
    const c = await open(server, { label: 'binary' });
    const since = c.mark();
    c.socket.send(Buffer.from(JSON.stringify({ eventType: EV.Echo, message: 'as binary' })), { binary: true });
    const reply = await c.next(() => true, { since, what: 'an error reply to a binary frame' });
    assert.equal(typeof reply.error, 'string', `error reply to a binary frame: ${JSON.stringify(reply)}`);
    await c.echoRoundTrip();
    c.assertFramesWellFormed();
    c.close();
  });

  it('a websocket ping on a quiet connection is answered with its pong at once (ws keep-alive)', async () => {
    const c = await open(server, { label: 'keep-alive' });
    // The `ws` keep-alive idiom: ping, and give up on the connection if no pong comes.
    for (let round = 0; round < 3; round++) {
      const payload = Buffer.from(`keep-alive ${round}`);
      const pong = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no pong within 3000 ms (round ${round}); received: ${c.describe()}`)), 3000);
        c.socket.once('pong', (data) => {
          clearTimeout(timer);
          resolve(data);
        });
      });
      c.socket.ping(payload);
      assert.deepEqual(await pong, payload, 'the pong echoes the ping payload');
    }
    await c.echoRoundTrip();
    c.close();
  });

  it('refusals are counted in /metrics (huddle_users_socket_refused_total)', async () => {
    const read = async () => {
      const res = await api.req('GET', '/metrics');
      assert.equal(res.status, 200);
      const m = /^huddle_users_socket_refused_total(?:\{[^}]*\})? (\d+(?:\.\d+)?)$/m.exec(String(res.body));
      assert.ok(m, `/metrics has huddle_users_socket_refused_total:\n${String(res.body).slice(0, 3000)}`);
      return Number(m[1]);
    };
    const before = await read();
    await assertRefused(server, 'http://evil.example');
    await assertRefused(server, undefined);
    const after = await read();
    assert.equal(after - before, 2, `two refusals counted (${before} → ${after})`);
  });

  it('a frame just under 64 KiB is served; one over 64 KiB closes the connection with 1009', async () => {
    const c = await open(server, { label: 'big' });
    const big = 'x'.repeat(60 * 1024);
    c.send({ eventType: EV.Echo, message: big });
    const reply = await c.next((d) => d.eventType === EV.Echo && d.message?.length === big.length);
    assert.equal(reply.message, big);
    assert.equal(reply.error, null);

    const bystander = await open(server, { label: 'bystander' });
    const huge = 'y'.repeat(65 * 1024);
    c.send({ eventType: EV.Echo, message: huge });
    let timer;
    const closed = await Promise.race([
      c.closed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`still open ${DEFAULT_TIMEOUT_MS} ms after a 65 KiB frame; received: ${c.describe()}`)), DEFAULT_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    assert.equal(closed.code, 1009, `close code ${closed.code} (${closed.reason})`);
    // the server goes on
    await bystander.echoRoundTrip();
    const again = await open(server, { label: 'after-big' });
    await again.echoRoundTrip();
    bystander.close();
    again.close();
  });

  it('MetaRequest (9) is refused when users_socket.api_key is unset, even with a users-api-key header', async () => {
    const u = await signup(api, 'nokey');
    const c = await open(server, { headers: { 'users-api-key': 'anything at all' } });
    c.send({ eventType: EV.MetaRequest, username: u.email });
    const reply = await c.next((d) => d.eventType === EV.MetaRequest);
    assert.equal(typeof reply.error, 'string', `refused: ${JSON.stringify(reply)}`);
    assert.ok(reply.val === undefined || reply.val === null, 'no meta is returned');
    await c.echoRoundTrip();
    c.close();
  });
});

describe('users socket: users_socket.allow_missing_origin', () => {
  let server;
  before(async () => {
    server = await startUsersServer({ HUDDLE_USERS_SOCKET__ALLOW_MISSING_ORIGIN: 'true' });
  });
  after(async () => {
    await stopUsersServer(server);
  });

  it('accepts an upgrade without Origin, still refuses a wrong Origin', async () => {
    const c = await open(server, { origin: undefined, label: 'no-origin' });
    await c.echoRoundTrip();
    await assertRefused(server, 'http://evil.example');
    const u = await signup(server.api, 'nooriginlogin');
    await allSee([c], EV.Login, u.email);
    c.close();
  });
});

describe('users socket: MetaRequest (9) with users_socket.api_key', () => {
  let server;
  let api;
  let keyed;
  let u;
  let v;

  const meta = async (client, req) => {
    const since = client.mark();
    client.send({ eventType: EV.MetaRequest, ...req });
    const reply = await client.next((d) => d.eventType === EV.MetaRequest, { since, what: `a reply to ${JSON.stringify(req)}` });
    return reply;
  };
  const metaOk = async (client, req) => {
    const reply = await meta(client, req);
    assert.equal(reply.error, null, `${JSON.stringify(req)} → ${JSON.stringify(reply)}`);
    return reply.val;
  };
  const metaErr = async (client, req) => {
    const reply = await meta(client, req);
    assert.equal(typeof reply.error, 'string', `${JSON.stringify(req)} must fail: ${JSON.stringify(reply)}`);
    assert.ok(reply.error.length > 0);
    return reply;
  };

  before(async () => {
    server = await startUsersServer({ HUDDLE_USERS_SOCKET__API_KEY: API_KEY });
    api = server.api;
    keyed = await open(server, { headers: { 'users-api-key': API_KEY }, label: 'keyed' });
    u = await signup(api, 'metau');
    v = await signup(api, 'metav');
  });
  after(async () => {
    await stopUsersServer(server);
  });

  it('all four forms: set one property, get it, replace the whole object, get the whole object', async () => {
    // a new account's meta is an empty object
    assert.deepEqual(await metaOk(keyed, { username: u.email }), {});

    // property + val sets one property and answers the new value
    assert.equal(await metaOk(keyed, { username: u.email, property: 'color', val: 'blue' }), 'blue');
    assert.deepEqual(await metaOk(keyed, { username: u.email, property: 'prefs', val: { theme: 'dark', size: 3 } }), { theme: 'dark', size: 3 });
    assert.equal(await metaOk(keyed, { username: u.email, property: 'count', val: 7 }), 7);

    // property alone gets it
    assert.equal(await metaOk(keyed, { username: u.email, property: 'color' }), 'blue');
    assert.deepEqual(await metaOk(keyed, { username: u.email, property: 'prefs' }), { theme: 'dark', size: 3 });

    // neither gets the whole object
    assert.deepEqual(await metaOk(keyed, { username: u.email }), { color: 'blue', prefs: { theme: 'dark', size: 3 }, count: 7 });

    // overwrite one property
    assert.equal(await metaOk(keyed, { username: u.email, property: 'color', val: 'red' }), 'red');
    assert.equal(await metaOk(keyed, { username: u.email, property: 'color' }), 'red');

    // val alone replaces the whole object
    assert.deepEqual(await metaOk(keyed, { username: u.email, val: { a: 1, b: 'two' } }), { a: 1, b: 'two' });
    assert.deepEqual(await metaOk(keyed, { username: u.email }), { a: 1, b: 'two' });
    const gone = await metaOk(keyed, { username: u.email, property: 'color' });
    assert.ok(gone === null || gone === undefined, `a property dropped by the replacement reads as nothing: ${JSON.stringify(gone)}`);

    // another account's meta is separate
    assert.deepEqual(await metaOk(keyed, { username: v.email }), {});
    keyed.assertFramesWellFormed();
  });

  it('meta is per server, not per connection: a second keyed connection sees it', async () => {
    await metaOk(keyed, { username: v.email, property: 'shared', val: 'yes' });
    const other = await open(server, { headers: { 'users-api-key': API_KEY }, origin: 'http://127.0.0.1:9', label: 'keyed2' });
    assert.equal(await metaOk(other, { username: v.email, property: 'shared' }), 'yes');
    other.close();
  });

  it('a MetaRequest reply goes to the caller only', async () => {
    const bystander = await open(server, { label: 'bystander' });
    await metaOk(keyed, { username: v.email, property: 'private', val: 'p' });
    await bystander.echoRoundTrip();
    assert.deepEqual(bystander.all((d) => d.eventType === EV.MetaRequest), []);
    bystander.close();
  });

  it('val alone must be an object', async () => {
    await metaOk(keyed, { username: v.email, val: { keep: true } });
    for (const val of [5, 'text', [1, 2], true]) {
      await metaErr(keyed, { username: v.email, val });
    }
    assert.deepEqual(await metaOk(keyed, { username: v.email }), { keep: true }, 'a refused replacement changes nothing');
    await keyed.echoRoundTrip();
  });

  it('an unknown username gives an error reply, in every form', async () => {
    const nobody = freshEmail('nobody');
    await metaErr(keyed, { username: nobody });
    await metaErr(keyed, { username: nobody, property: 'x' });
    await metaErr(keyed, { username: nobody, property: 'x', val: 1 });
    await metaErr(keyed, { username: nobody, val: { x: 1 } });
    await metaErr(keyed, {}); // no username at all
    await keyed.echoRoundTrip();
    keyed.assertFramesWellFormed();
  });

  for (const [what, headers] of [
    ['without the users-api-key header', {}],
    ['with a wrong users-api-key', { 'users-api-key': 'not-the-key' }],
    ['with the key in another header', { 'x-api-key': API_KEY, authorization: `Bearer ${API_KEY}` }],
  ]) {
    it(`refuses every form ${what}, and changes nothing`, async () => {
      await metaOk(keyed, { username: u.email, val: { original: true } });
      const c = await open(server, { headers, label: `unkeyed ${what}` });
      for (const req of [
        { username: u.email },
        { username: u.email, property: 'original' },
        { username: u.email, property: 'original', val: false },
        { username: u.email, val: { hacked: true } },
      ]) {
        const reply = await metaErr(c, req);
        assert.ok(reply.val === undefined || reply.val === null, `no meta leaks: ${JSON.stringify(reply)}`);
      }
      await c.echoRoundTrip(); // still usable
      assert.deepEqual(await metaOk(keyed, { username: u.email }), { original: true }, 'nothing was changed');
      c.assertFramesWellFormed();
      c.close();
    });
  }
});

describe('users socket: activation (auth.require_activation + auth.admin_token)', () => {
  let server;
  let api;
  before(async () => {
    server = await startUsersServer({
      HUDDLE_AUTH__REQUIRE_ACTIVATION: 'true',
      HUDDLE_AUTH__ADMIN_TOKEN: ADMIN_TOKEN,
    });
    api = server.api;
  });
  after(async () => {
    await stopUsersServer(server);
  });

  it('an admin activation broadcasts Activated (3); only then does sign-in work and announce Login', async () => {
    const s1 = await open(server, { label: 'S1' });
    const s2 = await open(server, { label: 'S2', origin: 'https://127.0.0.1:4443' });
    const u = await signup(api, 'activate', 201);
    assert.ok(u.id, `sign-up returns the user: ${JSON.stringify(u.body)}`);
    assert.equal(u.body.credentials, null, 'no credentials before activation');
    await signin(api, u, 403);

    const activate = (id, token) =>
      api.req('POST', `/api/admin/users/${id}/activate`, { headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });
    for (const token of [undefined, 'wrong-admin-token-0123456789', u.token]) {
      const res = await activate(u.id, token);
      assert.ok([401, 403].includes(res.status), `activation with token ${token} → ${res.status}, expected 401|403`);
    }
    const unknown = await activate(randomUUID(), ADMIN_TOKEN);
    assert.equal(unknown.status, 404, `activation of an unknown user → ${unknown.status}`);

    const res = await activate(u.id, ADMIN_TOKEN);
    assert.equal(res.status, 204, `activation → ${res.status}: ${JSON.stringify(res.body)}`);
    await allSee([s1, s2], EV.Activated, u.email);
    for (const s of [s1, s2]) {
      assert.equal(s.all(isEvent(EV.Login, u.email)).length, 0, `${s.label}: no Login before the account could sign in`);
      assert.equal(s.all(isEvent(EV.Activated, u.email)).length, 1, `${s.label}: Activated once (the refused attempts announced nothing)`);
    }

    const creds = await signin(api, u, 200);
    assert.ok(creds?.accessToken, 'signs in after activation');
    await allSee([s1, s2], EV.Login, u.email);
    s1.assertFramesWellFormed();
    s2.assertFramesWellFormed();
    s1.close();
    s2.close();
  });
});

describe('users socket: session expiry', () => {
  let server;
  let api;
  before(async () => {
    server = await startUsersServer({
      HUDDLE_AUTH__ACCESS_TOKEN_TTL: '1s',
      HUDDLE_AUTH__REFRESH_TOKEN_TTL: '2s',
      HUDDLE_AUTH__SESSION_SWEEP_INTERVAL: '200ms',
    });
    api = server.api;
  });
  after(async () => {
    await stopUsersServer(server);
  });

  it('a session nobody refreshes ends after its lifetime: Logout (2) with the email; a signed-out one is not announced twice', async () => {
    const s1 = await open(server, { label: 'S1' });
    const s2 = await open(server, { label: 'S2' });
    // W signs out at once: one Logout, and none again when its lifetime would have ended
    const w = await signup(api, 'signedout');
    await allSee([s1, s2], EV.Login, w.email);
    await api.ok('POST', '/api/auth/signout', { token: w.token }, [200, 204]);
    await allSee([s1, s2], EV.Logout, w.email);

    const t0 = Date.now();
    const u = await signup(api, 'expires');
    await allSee([s1, s2], EV.Login, u.email);
    const frames = await allSee([s1, s2], EV.Logout, u.email, { timeoutMs: 10000 });
    const elapsed = Date.now() - t0;
    assert.ok(elapsed >= 1500, `Logout came ${elapsed} ms after sign-up; the session lives 2 s`);
    assert.equal(frames.length, 2);
    await api.ok('GET', '/api/me', { token: u.token }, 401);

    await accountBarrier(api, [s1, s2]);
    for (const s of [s1, s2]) {
      assert.equal(s.all(isEvent(EV.Logout, u.email)).length, 1, `${s.label}: one Logout for the expired session`);
      assert.equal(s.all(isEvent(EV.Logout, w.email)).length, 1, `${s.label}: the signed-out session is not announced again on expiry`);
      s.assertFramesWellFormed();
    }
    s1.close();
    s2.close();
  });
});

describe('users socket: configuration errors', () => {
  it("accepts a JSON configuration file of the seed's shape ({\"websocket\": {port, approvedSocketDomains}})", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'huddle-e2e-seedcfg-'));
    let server;
    try {
      // the seed's example config (without its trailing comma, which is not JSON), plus
      // keys of the original server that huddle ignores
      const file = path.join(dir, 'config.json');
      await writeFile(
        file,
        JSON.stringify({
          host: 'localhost',
          websocket: {
            port: 8080,
            approvedSocketDomains: [
              'localhost',
              '^ws://www.webinate.net:123$',
              '^webinate\\.net:80$',
              '^example\\.com$',
              '^.+\\.example\\.com$',
              '^example\\.org',
              '^.+\\.example\\.org',
            ],
          },
        }),
      );
      // the listen address overrides the file's port (no fixed port in tests)
      server = await startWithArgs(['--config', file], { HUDDLE_USERS_SOCKET__LISTEN: '127.0.0.1:0' });
      for (const origin of ['example.com', 'api.example.com', 'ws://www.webinate.net:123', 'webinate.net:80', 'example.org.uk', 'http://localhost:3000']) {
        const c = await open(server, { origin });
        await c.echoRoundTrip();
        c.close();
      }
      for (const origin of ['http://evil-example.com', 'http://example.com', 'evilwebinate.net:80', 'webinate.net:8080', 'http://127.0.0.1']) {
        await assertRefused(server, origin);
      }
      await assertRefused(server, undefined);
    } finally {
      if (server) await server.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('an invalid regex in approved_socket_domains stops start-up with status 2, naming the entry', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'huddle-e2e-'));
    try {
      const child = spawn(HUDDLE_BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
        cwd: dataDir,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          RUST_LOG: 'warn',
          HUDDLE_COMET__LISTEN: '',
          HUDDLE_USERS_SOCKET__LISTEN: '127.0.0.1:0',
          HUDDLE_USERS_SOCKET__APPROVED_SOCKET_DOMAINS: envList(['^ok\\.example$', '^bad(regex$']),
        },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
      child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
      let timer;
      const res = await Promise.race([
        new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal }))),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(null), 30000);
        }),
      ]);
      clearTimeout(timer);
      if (res === null) {
        child.kill('SIGKILL');
        assert.fail(`huddle kept running with an invalid regex\nstdout:\n${stdout}\nstderr:\n${stderr}`);
      }
      assert.deepEqual(res, { code: 2, signal: null }, `exit status; stderr:\n${stderr}`);
      assert.ok(stderr.includes('users_socket.approved_socket_domains'), `stderr names the key:\n${stderr}`);
      assert.ok(stderr.includes('bad(regex'), `stderr names the bad entry:\n${stderr}`);
      assert.doesNotMatch(stdout, /listening on/, 'nothing listens');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
