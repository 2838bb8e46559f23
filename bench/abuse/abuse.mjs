// Replays the hostile clients of issue 14 against a fresh huddle process and
// prints, per attack, what it cost the server (RSS, file descriptors, CPU
// after the attacker left), what a bystander on another address saw (REST
// p50/p99 against a quiet baseline), and which limits refused what
// (`huddle_refused_total` deltas). Run through `scripts/abuse`.
//
// Addresses: each attack comes from its own address (127.0.1.N), so one
// attack's leftovers (sessions awaiting their connect timeout, say) do not
// refuse the next; the bystander uses 127.0.0.3 and setup 127.0.0.4. The
// bystander runs on a worker thread with its own event loop, so the
// attacker's busy loop does not show up as the bystander's latency.

import { spawn } from 'node:child_process';
import { mkdtemp, rm, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import http from 'node:http';
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return [k, v ?? 'true'];
  }),
);
const BIN = args.bin;
const SECS = Number(args.secs ?? 5);
let ATTACKER = '127.0.1.1';
const BYSTANDER = '127.0.0.3';
const SETUP = '127.0.0.4';
const ALL = [
  'ws-ping-flood',
  'eio-ping-flood',
  'connect-flood',
  'polling-ping-flood',
  'polling-handshake-flood',
  'slowloris',
  'signup-flood',
  'signin-flood',
  'join-flood',
  'chat-flood',
  'profile-flood',
  'comet-guess',
];
const ATTACKS = args.attacks ? args.attacks.split(',') : ALL;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// The server

async function startServer() {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'huddle-abuse-'));
  const env = {
    ...process.env,
    RUST_LOG: process.env.RUST_LOG ?? 'error',
    HUDDLE_COMET__LISTEN: '',
    HUDDLE_USERS_SOCKET__PORT: '0',
  };
  const child = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    cwd: dataDir,
    stdio: ['ignore', 'pipe', 'inherit'],
    env,
  });
  const base = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('huddle did not start')), 60000);
    child.on('exit', (c) => reject(new Error(`huddle exited (${c})`)));
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      const m = /huddle listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
  });
  return { port: base, child, pid: child.pid, dataDir };
}

async function rssMiB(pid) {
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(s)[1]) / 1024;
}
async function fds(pid) {
  return (await readdir(`/proc/${pid}/fd`)).length;
}
async function cpuSecs(pid) {
  const s = await readFile(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in ticks of 10 ms
}

// ---------------------------------------------------------------------------
// HTTP from a chosen address

const agents = new Map();
function agentFor(local) {
  if (!agents.has(local)) agents.set(local, new http.Agent({ keepAlive: true, maxSockets: 256, localAddress: local }));
  return agents.get(local);
}

let PORT = 0;
function request({ method = 'GET', p, body, token, local = ATTACKER, raw = false, timeoutMs = 10000 }) {
  return new Promise((resolve) => {
    const data = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = {};
    if (data !== undefined) headers['content-type'] = raw ? 'text/plain;charset=UTF-8' : 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    const req = http.request(
      { host: '127.0.0.1', port: PORT, method, path: p, headers, agent: agentFor(local), timeout: timeoutMs },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          let json = null;
          try {
            json = JSON.parse(text);
          } catch {}
          resolve({ status: res.statusCode, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ status: 0, text: e.message, json: null }));
    if (data !== undefined) req.write(data);
    req.end();
  });
}

async function signup(local, name) {
  const email = `${name}-${randomUUID().slice(0, 8)}@example.com`;
  const r = await request({ method: 'POST', p: '/api/auth/signup', local, body: { email, password: 'correct horse battery', name } });
  if (r.status !== 201) throw new Error(`signup ${name}: ${r.status} ${r.text}`);
  return { email, token: r.json.credentials.accessToken, id: r.json.user.id };
}

async function refusals() {
  const r = await request({ p: '/metrics', local: SETUP });
  const out = {};
  for (const m of r.text.matchAll(/^huddle_refused_total\{reason="([a-z_]+)"\} (\d+)$/gm)) out[m[1]] = Number(m[2]);
  const slow = /^huddle_slow_consumer_disconnects_total (\d+)$/m.exec(r.text);
  if (slow) out.slow_consumer = Number(slow[1]);
  return out;
}

// ---------------------------------------------------------------------------
// The bystander: an authenticated REST call in a loop, from its own address

async function bystanderLoop({ port, token }) {
  PORT = port;
  const lat = [];
  let errors = 0;
  let stop = false;
  parentPort.on('message', () => (stop = true));
  while (!stop) {
    const t0 = performance.now();
    const r = await request({ p: '/api/me', token, local: BYSTANDER, timeoutMs: 5000 });
    if (r.status === 200) lat.push(performance.now() - t0);
    else errors++;
    await sleep(10);
  }
  lat.sort((a, b) => a - b);
  const q = (x) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(x * lat.length))] : NaN);
  parentPort.postMessage({ p50: q(0.5), p99: q(0.99), n: lat.length, errors });
}

function bystander(token) {
  const w = new Worker(new URL(import.meta.url), { workerData: { port: PORT, token } });
  const result = new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  return {
    async end() {
      w.postMessage('stop');
      const r = await result;
      await w.terminate();
      return r;
    },
  };
}

// ---------------------------------------------------------------------------
// Attacks: each runs for SECS seconds and returns a note; `stop` ends it.

/** Keeps `n` copies of `loop` running until the deadline. */
async function parallel(n, deadline, loop) {
  await Promise.all(Array.from({ length: n }, async () => {
    while (Date.now() < deadline) await loop();
  }));
}

function openWs(url, local = ATTACKER) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { localAddress: local, perMessageDeflate: false });
    ws.on('open', () => resolve(ws));
    ws.on('error', () => resolve(null));
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve(null);
    });
  });
}

/** Websockets that never read, each sent `frame()` while its buffer allows. */
async function wsFlood(deadline, send) {
  let closed = 0;
  let opened = 0;
  const socks = [];
  for (let i = 0; i < 8; i++) {
    const ws = await openWs(`ws://127.0.0.1:${PORT}/socket.io/?EIO=4&transport=websocket`);
    if (!ws) continue;
    opened++;
    ws._socket.pause(); // never read: answers pile up on the server
    ws.on('close', () => closed++);
    ws.on('error', () => {});
    socks.push(ws);
  }
  while (Date.now() < deadline) {
    for (const ws of socks) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws._socket.writableLength < 4 << 20) send(ws);
    }
    await sleep(1);
  }
  for (const ws of socks) ws.terminate();
  return `${opened} sockets, ${closed} closed by the server`;
}

const big = 'x'.repeat(60000);

const attacks = {
  'ws-ping-flood': (d) => wsFlood(d, (ws) => { for (let i = 0; i < 200; i++) ws.ping(Buffer.alloc(125)); }),
  'eio-ping-flood': (d) => wsFlood(d, (ws) => { for (let i = 0; i < 20; i++) ws.send(`2${big}`); }),
  'connect-flood': (d) => wsFlood(d, (ws) => { for (let i = 0; i < 20; i++) ws.send(`40/${big},`); }),

  async 'polling-ping-flood'(deadline) {
    let statuses = {};
    await parallel(8, deadline, async () => {
      const h = await request({ p: '/socket.io/?EIO=4&transport=polling' });
      const sid = /"sid":"([^"]+)"/.exec(h.text)?.[1];
      if (!sid) {
        statuses[h.status] = (statuses[h.status] ?? 0) + 1;
        await sleep(50);
        return;
      }
      for (let i = 0; i < 200 && Date.now() < deadline; i++) {
        const r = await request({ method: 'POST', p: `/socket.io/?EIO=4&transport=polling&sid=${sid}`, body: `2${big}`, raw: true });
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (r.status !== 200) break;
      }
    });
    return `POST answers ${JSON.stringify(statuses)}`;
  },

  async 'polling-handshake-flood'(deadline) {
    const statuses = {};
    await parallel(32, deadline, async () => {
      const r = await request({ p: '/socket.io/?EIO=4&transport=polling' });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    });
    return `handshakes ${JSON.stringify(statuses)}`;
  },

  async slowloris(deadline) {
    const socks = [];
    let refused = 0;
    let closedEarly = 0;
    for (let i = 0; i < 3000 && Date.now() < deadline; i++) {
      const s = net.connect({ host: '127.0.0.1', port: PORT, localAddress: ATTACKER });
      s.on('error', () => refused++);
      s.on('close', () => closedEarly++);
      s.write('GET /api/me HTTP/1.1\r\nHost: x\r\n');
      socks.push(s);
      if (i % 100 === 99) await sleep(10);
    }
    while (Date.now() < deadline) {
      for (const s of socks) if (!s.destroyed) s.write('X-a: b\r\n');
      await sleep(1000);
    }
    const open = socks.filter((s) => !s.destroyed).length;
    for (const s of socks) s.destroy();
    return `${socks.length} half-open requests, ${open} still open at the end`;
  },

  async 'signup-flood'(deadline) {
    const statuses = {};
    await parallel(128, deadline, async () => {
      const r = await request({
        method: 'POST',
        p: '/api/auth/signup',
        body: { email: `flood-${randomUUID()}@example.com`, password: 'correct horse battery', name: 'F' },
      });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status !== 201) await sleep(20);
    });
    return `answers ${JSON.stringify(statuses)}`;
  },

  async 'signin-flood'(deadline, ctx) {
    const statuses = {};
    await parallel(16, deadline, async () => {
      const r = await request({ method: 'POST', p: '/api/auth/signin', body: { email: ctx.by.email, password: 'wrong password!' } });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 429) await sleep(20);
    });
    const own = await request({ method: 'POST', p: '/api/auth/signin', local: BYSTANDER, body: { email: ctx.by.email, password: 'correct horse battery' } });
    return `answers ${JSON.stringify(statuses)}; the owner from its own address then got ${own.status}`;
  },

  async 'join-flood'(deadline, ctx) {
    const ns = `/socket/commu-${ctx.ws}`;
    let acks = 0;
    let sent = 0;
    const socks = [];
    for (let i = 0; i < 2; i++) {
      const ws = await openWs(`ws://127.0.0.1:${PORT}/socket.io/?EIO=4&transport=websocket`);
      if (!ws) continue;
      ws.on('message', (m) => {
        const t = m.toString();
        if (t === '2') ws.send('3');
        else if (t.startsWith(`43${ns}`)) acks++;
      });
      ws.on('error', () => {});
      ws.send(`40${ns},${JSON.stringify({ token: `Bearer ${ctx.att.token}` })}`);
      socks.push(ws);
    }
    await sleep(200);
    const ids = Array.from({ length: 1000 }, () => randomUUID());
    const packet = `42${ns},1${JSON.stringify(['join', { channels: ids }])}`;
    while (Date.now() < deadline) {
      for (const ws of socks) if (ws.readyState === WebSocket.OPEN && ws._socket.writableLength < 1 << 20) {
        ws.send(packet);
        sent++;
      }
      await sleep(5);
    }
    for (const ws of socks) ws.terminate();
    return `${sent} joins of 1000 ids sent, ${acks} answered`;
  },

  async 'chat-flood'(deadline, ctx) {
    const statuses = {};
    await parallel(16, deadline, async () => {
      const r = await request({ method: 'POST', p: `/api/channels/${ctx.ch}/chat`, token: ctx.att.token, body: { content: 'spam' } });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 429) await sleep(20);
    });
    return `answers ${JSON.stringify(statuses)}`;
  },

  async 'profile-flood'(deadline, ctx) {
    const statuses = {};
    let i = 0;
    await parallel(64, deadline, async () => {
      const r = await request({ method: 'PATCH', p: '/api/me', token: ctx.att.token, body: { name: `N${i++}` } });
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 429 || r.status === 503) await sleep(20);
    });
    return `answers ${JSON.stringify(statuses)}`;
  },

  async 'comet-guess'(deadline) {
    let guesses = 0;
    let authorized = 0;
    await parallel(16, deadline, async () => {
      const url = `ws://127.0.0.1:${PORT}/ws/sesion=${randomUUID()}&myid=7&devid=15&v=4.09&uuid=${randomUUID()}&api=js`;
      await new Promise((resolve) => {
        const ws = new WebSocket(url, { localAddress: ATTACKER });
        ws.on('message', (m) => {
          guesses++;
          if (/"authorized":true/.test(m.toString())) authorized++;
          ws.terminate();
          resolve();
        });
        ws.on('error', resolve);
        ws.on('close', resolve);
      });
    });
    return `${guesses} guesses answered (${(guesses / SECS).toFixed(0)}/s), ${authorized} authorised`;
  },
};

// ---------------------------------------------------------------------------

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(1) : '-');

async function main() {
  const server = await startServer();
  PORT = server.port;
  const by = await signup(SETUP, 'bystander');
  const att = await signup(SETUP, 'attacker');
  const wsr = await request({ method: 'POST', p: '/api/workspaces', token: att.token, local: SETUP, body: { name: 'Attack' } });
  const chr = await request({ method: 'POST', p: `/api/workspaces/${wsr.json.id}/channels`, token: att.token, local: SETUP, body: { name: 'spam' } });
  const ctx = { by, att, ws: wsr.json.id, ch: chr.json.id };
  // The bystander's token is renewed per attack (a sign-in flood may lock the account).

  const rss0 = await rssMiB(server.pid);
  const quietBy = bystander(by.token);
  await sleep(SECS * 1000);
  const quiet = await quietBy.end();
  console.log(`quiet: bystander GET /api/me p50 ${fmt(quiet.p50)} ms, p99 ${fmt(quiet.p99)} ms (${quiet.n} requests); server RSS ${fmt(rss0)} MiB, ${await fds(server.pid)} fds\n`);

  const rows = [];
  for (const [i, name] of ATTACKS.entries()) {
    ATTACKER = `127.0.1.${i + 1}`;
    const before = await refusals();
    const start = await rssMiB(server.pid);
    let peak = start;
    let peakFds = await fds(server.pid);
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        try {
          peak = Math.max(peak, await rssMiB(server.pid));
          peakFds = Math.max(peakFds, await fds(server.pid));
        } catch {}
        await sleep(100);
      }
    })();
    const b = bystander(by.token);
    let note;
    try {
      note = await attacks[name](Date.now() + SECS * 1000, ctx);
    } catch (e) {
      note = `attack failed: ${e.message}`;
    }
    const seen = await b.end();
    const cpu0 = await cpuSecs(server.pid);
    await sleep(3000);
    const cpuAfter = (await cpuSecs(server.pid)) - cpu0;
    sampling = false;
    await sampler;
    const end = await rssMiB(server.pid);
    const after = await refusals();
    const delta = Object.entries(after)
      .map(([k, v]) => [k, v - (before[k] ?? 0)])
      .filter(([, v]) => v > 0)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    const ratio = seen.p99 / quiet.p99;
    const ok = ratio <= 2 && peak - rss0 <= 256 && seen.errors === 0;
    rows.push(
      `| ${name} | ${fmt(seen.p50)} / ${fmt(seen.p99)} (${fmt(ratio)}×) | ${seen.errors} | ${fmt(peak - rss0)} / ${fmt(end - rss0)} | ${peakFds} | ${fmt(cpuAfter)} | ${delta || '-'} | ${note} | ${ok ? 'yes' : 'NO'} |`,
    );
    console.log(rows.at(-1));
  }
  console.log(`\n| attack (${SECS} s each) | bystander p50 / p99 ms (p99 ÷ quiet) | bystander errors | RSS Δ peak / after, MiB | peak fds | server CPU s in the 3 s after | refused (reason count) | attacker saw | p99 ≤ 2× and RSS ≤ +256 MiB |`);
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(`\nquiet bystander p99 ${fmt(quiet.p99)} ms; server RSS at start ${fmt(rss0)} MiB`);
  for (const a of agents.values()) a.destroy();
  server.child.kill('SIGTERM');
  await new Promise((r) => server.child.on('exit', r));
  await rm(server.dataDir, { recursive: true, force: true });
}

if (isMainThread) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  bystanderLoop(workerData);
}
