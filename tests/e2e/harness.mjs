// Test harness for huddle's workspace socket API (SPEC §3), driven through the
// official socket.io-client against the real `huddle` binary.
//
// - startServer(): spawns `huddle serve` on port 0 with a fresh data dir and short
//   realtime timings, parses "huddle listening on http://…", and stop() sends
//   SIGTERM and returns the exit code.
// - Api: fetch-based REST helper that returns {status, body}; `ok()` asserts.
// - connect()/connectAuthed(): sockets with a Recorder that keeps every event the
//   socket received, in order. `next(socket, name, {where, timeoutMs})` consumes the
//   first not-yet-consumed matching event (waiting for it if needed), so an await
//   that starts after the event arrived still sees it.
// - Absence is checked without sleeps: perform a later "barrier" action whose event
//   the socket must receive (e.g. a workspace rename), await it, then assert that no
//   forbidden event was recorded (`none()`). Socket.IO delivers in order per socket.

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { io } from 'socket.io-client';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..');
export const HUDDLE_BIN = process.env.HUDDLE_BIN
  ? path.resolve(process.env.HUDDLE_BIN)
  : path.join(REPO_ROOT, 'target', 'debug', 'huddle');

/** Timings the server is started with (and that tests reason about). */
export const TIMINGS = {
  gracePeriodMs: 1000,
  gracePeriodInCallMs: 2000,
  inviteTimeoutMs: 1000,
  authTimeoutMs: 1000,
};

export const DEFAULT_TIMEOUT_MS = 5000;

export const TRANSPORTS = ['websocket', 'polling'];

// ---------------------------------------------------------------------------
// Server process

export async function startServer({ env = {}, startTimeoutMs = 60000 } = {}) {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'huddle-e2e-'));
  const childEnv = {
    ...process.env,
    RUST_LOG: process.env.RUST_LOG ?? 'warn',
    HUDDLE_AUTH__ARGON2_MEMORY_KIB: '64',
    HUDDLE_AUTH__ARGON2_ITERATIONS: '1',
    // Suites sign up and post from one address faster than people do.
    HUDDLE_LIMITS__SIGNUP_IP_ATTEMPTS: '100000',
    HUDDLE_LIMITS__CHAT_PER_SEC: '100000',
    HUDDLE_LIMITS__CHAT_BURST: '100000',
    HUDDLE_LIMITS__REST_WRITES_PER_SEC: '100000',
    HUDDLE_LIMITS__REST_WRITES_BURST: '100000',
    // Test files run in parallel: no fixed comet port.
    HUDDLE_COMET__LISTEN: '',
    HUDDLE_USERS_SOCKET__PORT: '0',
    HUDDLE_REALTIME__GRACE_PERIOD: `${TIMINGS.gracePeriodMs / 1000}s`,
    HUDDLE_REALTIME__GRACE_PERIOD_IN_CALL: `${TIMINGS.gracePeriodInCallMs / 1000}s`,
    HUDDLE_REALTIME__INVITE_TIMEOUT: `${TIMINGS.inviteTimeoutMs / 1000}s`,
    HUDDLE_REALTIME__AUTH_TIMEOUT: `${TIMINGS.authTimeoutMs / 1000}s`,
    ...env,
  };
  // `env: {KEY: undefined}` removes a variable
  for (const [k, v] of Object.entries(childEnv)) if (v === undefined) delete childEnv[k];
  const child = spawn(HUDDLE_BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    cwd: dataDir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: childEnv,
  });

  let stdout = '';
  let stderr = '';
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => resolve({ code, signal }));
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
    if (process.env.HUDDLE_E2E_LOG) process.stderr.write(d);
  });
  child.stdout.setEncoding('utf8');

  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`huddle did not print its address within ${startTimeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, startTimeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot start ${HUDDLE_BIN}: ${e.message}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`huddle exited early (code ${code}, signal ${signal})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    });
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /huddle listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
  });

  const server = {
    base,
    dataDir,
    child,
    get stderr() {
      return stderr;
    },
    get stdout() {
      return stdout;
    },
    exited,
    /** SIGTERM, wait for the exit, remove the data dir; returns {code, signal}. */
    async stop({ timeoutMs = 15000 } = {}) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      let timer;
      const res = await Promise.race([
        exited,
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(null), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (res === null) {
        child.kill('SIGKILL');
        await exited;
        await rm(dataDir, { recursive: true, force: true });
        return { code: null, signal: 'SIGKILL', timedOut: true };
      }
      await rm(dataDir, { recursive: true, force: true });
      return res;
    },
  };
  return server;
}

/** Stops the server and asserts a clean exit (status 0 after SIGTERM). */
export async function stopServerClean(server) {
  const res = await server.stop();
  assert.deepEqual(
    { code: res.code, signal: res.signal },
    { code: 0, signal: null },
    `huddle should exit 0 on SIGTERM; stderr tail:\n${server.stderr.slice(-3000)}`,
  );
}

// ---------------------------------------------------------------------------
// REST

export class Api {
  constructor(base) {
    this.base = base;
  }

  /** Raw request → {status, body, headers}. body is parsed JSON, text, or null when empty. */
  async req(method, urlPath, { token, body, query, headers = {} } = {}) {
    const url = new URL(urlPath, this.base);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null) url.searchParams.set(k, v);
    }
    const h = { ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      h['content-type'] = 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(url, { method, headers: h, body: payload });
    const text = await res.text();
    let parsed = null;
    if (text.length > 0) {
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = text;
      }
    }
    return { status: res.status, body: parsed, headers: res.headers };
  }

  /** Request that must answer `expect` (a status or a list of statuses); returns the body. */
  async ok(method, urlPath, opts = {}, expect = 200) {
    const res = await this.req(method, urlPath, opts);
    const allowed = Array.isArray(expect) ? expect : [expect];
    assert.ok(
      allowed.includes(res.status),
      `${method} ${urlPath}${opts.query ? ' ' + JSON.stringify(opts.query) : ''} → ${res.status}, expected ${allowed.join('|')}: ${JSON.stringify(res.body)}`,
    );
    return res.body;
  }

  // --- accounts, workspaces, channels (README / SPEC §2)

  async signup(name = 'user') {
    const email = `${name.toLowerCase().replace(/[^a-z0-9]/g, '')}-${randomUUID().slice(0, 12)}@example.com`;
    const password = 'correct horse battery';
    const body = await this.ok('POST', '/api/auth/signup', { body: { email, password, name } }, [200, 201]);
    assert.ok(body?.user?.id, `signup returns the user: ${JSON.stringify(body)}`);
    assert.ok(body?.credentials?.accessToken, 'signup returns an access token');
    return { id: body.user.id, name, email, password, token: body.credentials.accessToken };
  }

  async signin(user) {
    const body = await this.ok('POST', '/api/auth/signin', { body: { email: user.email, password: user.password } });
    return body.credentials.accessToken;
  }

  async createWorkspace(user, name = 'Team') {
    const ws = await this.ok('POST', '/api/workspaces', { token: user.token, body: { name } }, [200, 201]);
    assert.ok(ws?.id, `workspace has an id: ${JSON.stringify(ws)}`);
    return ws;
  }

  async join(admin, workspaceId, user) {
    const inv = await this.ok('POST', `/api/workspaces/${workspaceId}/invites`, { token: admin.token }, [200, 201]);
    assert.ok(inv?.code, `invite has a code: ${JSON.stringify(inv)}`);
    return this.ok('POST', `/api/join/${inv.code}`, { token: user.token }, [200, 201]);
  }

  async createChannel(user, workspaceId, { name = 'room', isPrivate = false, users } = {}) {
    const body = { name, isPrivate };
    if (users) body.users = users;
    const ch = await this.ok('POST', `/api/workspaces/${workspaceId}/channels`, { token: user.token, body }, [200, 201]);
    assert.ok(ch?.id, `channel has an id: ${JSON.stringify(ch)}`);
    return ch;
  }

  async renameWorkspace(user, workspaceId, name) {
    return this.ok('PATCH', `/api/workspaces/${workspaceId}`, { token: user.token, body: { name } });
  }

  // --- realtime REST (SPEC §3), all with ?socketId=

  select(user, socket, channelId, mediaState = MEDIA_OFF) {
    return this.req('POST', `/api/channels/${channelId}/select`, {
      token: user.token,
      query: { socketId: socket.id },
      body: mediaState,
    });
  }

  async selectOk(user, socket, channelId, mediaState = MEDIA_OFF) {
    const res = await this.select(user, socket, channelId, mediaState);
    assert.equal(res.status, 200, `select → ${res.status}: ${JSON.stringify(res.body)}`);
    assert.ok(
      res.body && typeof res.body.connectionOptions === 'object' && res.body.connectionOptions !== null,
      `select answers {connectionOptions}: ${JSON.stringify(res.body)}`,
    );
    return res.body;
  }

  unselect(user, socket, channelId) {
    return this.req('POST', `/api/channels/${channelId}/unselect`, { token: user.token, query: { socketId: socket.id } });
  }

  mediaState(user, socket, state) {
    return this.req('POST', '/api/me/media-state', { token: user.token, query: { socketId: socket.id }, body: state });
  }

  onlineStatus(user, socket, onlineStatus) {
    return this.req('POST', '/api/me/online-status', { token: user.token, query: { socketId: socket.id }, body: { onlineStatus } });
  }

  muteForAll(user, socket, userId) {
    return this.req('POST', '/api/mute-for-all', { token: user.token, query: { socketId: socket.id }, body: { userId } });
  }

  sendInvite(user, socket, { userId, channelId, workspaceId, isResponseNeeded = true, message = {} }) {
    return this.req('POST', '/api/invites', {
      token: user.token,
      query: { socketId: socket.id },
      body: { userId, channelId, workspaceId, isResponseNeeded, message },
    });
  }

  respondInvite(user, socket, inviteId, response) {
    return this.req('POST', `/api/invites/${inviteId}/response`, {
      token: user.token,
      query: { socketId: socket.id },
      body: { response },
    });
  }

  cancelInvite(user, socket, inviteId) {
    return this.req('POST', `/api/invites/${inviteId}/cancel`, { token: user.token, query: { socketId: socket.id } });
  }

  activeUsers(user, channelId, socket) {
    return this.req('GET', `/api/channels/${channelId}/active-users`, {
      token: user.token,
      query: socket ? { socketId: socket.id } : undefined,
    });
  }
}

export const MEDIA_OFF = Object.freeze({ microphone: false, speakers: true, screen: false, camera: false, speaking: false });

// ---------------------------------------------------------------------------
// Sockets and the event recorder

export class Recorder {
  constructor(socket) {
    this.socket = socket;
    /** every received event, in order: {seq, event, data, args, at, consumed} */
    this.events = [];
    this.waiters = [];
    /** events before this position are ignored by next/all/none unless `since` says otherwise */
    this.floor = 0;
    this.disconnectReason = null;
    this.disconnected = new Promise((resolve) => {
      this._resolveDisconnected = resolve;
    });
    socket.onAny((event, ...args) => this._push(event, args));
    socket.on('disconnect', (reason) => {
      this.disconnectReason = reason;
      this._resolveDisconnected({ reason, at: Date.now() });
    });
  }

  _push(event, args) {
    const rec = { seq: this.events.length, event, data: args[0], args, at: Date.now(), consumed: false };
    this.events.push(rec);
    for (const w of [...this.waiters]) {
      if (!rec.consumed && w.match(rec)) {
        rec.consumed = true;
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve(rec);
      }
    }
  }

  /** Ignore everything received so far (for the next step of a test). */
  reset() {
    this.floor = this.events.length;
  }

  /** The current position; use with none({since}) / all({since}). */
  mark() {
    return this.events.length;
  }

  /**
   * Resolves with the first unconsumed event named `event` (and satisfying `where`),
   * consuming it; waits up to timeoutMs. Returns the record {event, data, at, seq}.
   */
  next(event, { where = () => true, timeoutMs = DEFAULT_TIMEOUT_MS, since = this.floor, label } = {}) {
    const names = Array.isArray(event) ? event : [event];
    const match = (r) => names.includes(r.event) && r.seq >= since && safeWhere(where, r.data);
    const found = this.events.find((r) => !r.consumed && match(r));
    if (found) {
      found.consumed = true;
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const w = { match, resolve: (r) => { clearTimeout(w.timer); resolve(r); } };
      w.timer = setTimeout(() => {
        const idx = this.waiters.indexOf(w);
        if (idx >= 0) this.waiters.splice(idx, 1);
        reject(
          new Error(
            `${label ?? this.label ?? 'socket'}: timed out after ${timeoutMs} ms waiting for "${event}"${where.toString() !== '() => true' ? ` where ${where}` : ''}; received: ${this.describe()}`,
          ),
        );
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Drops every pending next() (their promises never settle); for losers of a race. */
  cancelWaiters() {
    for (const w of this.waiters) clearTimeout(w.timer);
    this.waiters = [];
  }

  /** Every recorded event named `event` since `since` (consumed or not). */
  all(event, { since = this.floor, where = () => true } = {}) {
    return this.events.filter((r) => r.seq >= since && (event === null || r.event === event) && safeWhere(where, r.data));
  }

  /** Asserts that no event named `event` (matching `where`) was recorded since `since`. */
  none(event, { since = this.floor, where = () => true, message } = {}) {
    const hits = this.all(event, { since, where });
    assert.equal(
      hits.length,
      0,
      `${message ?? `${this.label ?? 'socket'} must not receive "${event}"`}; got: ${JSON.stringify(hits.map((h) => h.data))}`,
    );
  }

  describe() {
    const s = this.events.map((r) => `${r.event}${r.data === undefined ? '' : ' ' + truncate(JSON.stringify(r.data), 160)}`);
    return s.length ? `\n  - ${s.join('\n  - ')}` : '(nothing)';
  }
}

function safeWhere(where, data) {
  try {
    return Boolean(where(data));
  } catch {
    return false;
  }
}

function truncate(s, n) {
  if (s === undefined) return 'undefined';
  return s.length > n ? s.slice(0, n) + '…' : s;
}

const openSockets = new Set();

/** Opens a socket on namespace `/` and waits for `connect`. The socket gets `.rec` (a Recorder). */
export async function connect(base, transport = 'websocket', { label, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const socket = io(base, {
    transports: [transport],
    forceNew: true,
    reconnection: false,
    timeout: timeoutMs,
  });
  socket.rec = new Recorder(socket);
  socket.rec.label = label ?? `socket(${transport})`;
  openSockets.add(socket);
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${socket.rec.label}: no connect within ${timeoutMs} ms`)), timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.once('connect_error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${socket.rec.label}: connect_error: ${e.message}`));
    });
  });
  return socket;
}

/** Emits `auth` and waits for `auth-success`; returns the auth-success payload. */
export async function auth(socket, user, workspaceId, { onlineStatus, prevSocketId, transaction = 'auth', timeoutMs } = {}) {
  const payload = { transaction, token: user.token, workspaceId };
  if (onlineStatus !== undefined) payload.onlineStatus = onlineStatus;
  if (prevSocketId !== undefined) payload.prevSocketId = prevSocketId;
  const since = socket.rec.mark();
  const t0 = Date.now();
  socket.emit('auth', payload);
  const reply = socket.rec.next(['auth-success', `socket-api-error-${transaction}`], { timeoutMs, since });
  const gone = socket.rec.disconnected.then(({ reason, at }) => ({ event: 'disconnect', reason, at }));
  const r = await Promise.race([reply, gone]);
  if (r.event === 'disconnect') {
    socket.rec.cancelWaiters();
    throw new Error(`${socket.rec.label}: disconnected (${r.reason}) ${r.at - t0} ms after emitting auth, without an answer`);
  }
  if (r.event !== 'auth-success') {
    throw new Error(`${socket.rec.label}: auth failed: ${r.event} ${JSON.stringify(r.data)}`);
  }
  return r.data;
}

/** connect + auth as `user` on `workspaceId`. */
export async function connectAuthed(base, user, workspaceId, transport = 'websocket', opts = {}) {
  const socket = await connect(base, transport, { label: opts.label ?? `${user.name}(${transport})` });
  socket.authSuccess = await auth(socket, user, workspaceId, opts);
  socket.user = user;
  return socket;
}

/** reset() every socket's recorder: later next/none calls only look at newer events. */
export function resetAll(...sockets) {
  for (const s of sockets.flat()) s.rec.reset();
}

/**
 * A per-socket round trip: emits an invalid `auth` carrying a unique transaction and
 * waits for `socket-api-error-${transaction}`. Everything the server queued to this
 * socket before handling it has been recorded when it resolves.
 */
let pingCount = 0;
export async function pingSocket(socket, timeoutMs = DEFAULT_TIMEOUT_MS) {
  const transaction = `ping-${++pingCount}`;
  const since = socket.rec.mark();
  socket.emit('auth', { transaction });
  return socket.rec.next(`socket-api-error-${transaction}`, { since, timeoutMs });
}

/** Closes every socket the harness opened (for after() hooks). */
export function closeAllSockets() {
  for (const s of openSockets) {
    s.disconnect();
  }
  openSockets.clear();
}

/**
 * Waits for `event` on every socket in `sockets` (each must receive it). `where` filters.
 * Returns the records in the same order.
 */
export function allGet(sockets, event, opts = {}) {
  return Promise.all(sockets.map((s) => s.rec.next(event, opts)));
}

/**
 * A barrier: renames the workspace (as `admin`) and waits until every socket in
 * `sockets` received that `workspace-updated`. After it resolves, any event the
 * server emitted before the rename to those sockets has been recorded.
 */
let barrierCount = 0;
export async function workspaceBarrier(api, admin, workspaceId, sockets) {
  const name = `barrier ${++barrierCount} ${randomUUID().slice(0, 6)}`;
  await api.renameWorkspace(admin, workspaceId, name);
  await allGet(sockets, 'workspace-updated', { where: (d) => d.workspace.name === name });
}

/** Resolves when the socket is disconnected (or rejects after timeoutMs). */
export function disconnected(socket, timeoutMs = DEFAULT_TIMEOUT_MS) {
  if (!socket.connected && socket.rec.disconnectReason !== null) {
    return Promise.resolve({ reason: socket.rec.disconnectReason });
  }
  let timer;
  return Promise.race([
    socket.rec.disconnected.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${socket.rec.label}: still connected after ${timeoutMs} ms`)), timeoutMs);
    }),
  ]);
}

/**
 * A world for socket tests: server-independent users and workspaces.
 * A and B are members of W (A is its admin); C is an outsider with its own workspace X.
 */
export async function makeWorld(api) {
  const A = await api.signup('Ann');
  const B = await api.signup('Bob');
  const C = await api.signup('Cid');
  const W = await api.createWorkspace(A, 'W');
  const X = await api.createWorkspace(C, 'X');
  await api.join(A, W.id, B);
  return { A, B, C, W, X };
}

export function isUuid(s) {
  return typeof s === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);
}
