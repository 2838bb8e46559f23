// huddle's own websocket layer (RFC 6455) under the Socket.IO transport, from
// two clients: the `ws` package (what socket.io-client uses in Node) and a
// bare TCP socket that writes frames byte for byte, for what no polite client
// sends: unmasked or oversized frames, reserved bits, data pipelined with the
// upgrade request, a message dribbled one byte per write.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { startServer } from './harness.mjs';

let server;

before(async () => {
  server = await startServer({});
});

after(async () => {
  if (server) await server.stop();
});

const PATH = '/socket.io/?EIO=4&transport=websocket';

/** A client frame: masked unless told otherwise. */
function frame(opcode, payload, { mask = true, fin = true, rsv = 0, len } = {}) {
  const data = Buffer.from(payload);
  const n = len ?? data.length;
  let head;
  if (n < 126) {
    head = Buffer.from([0, n]);
  } else if (n < 65536) {
    head = Buffer.alloc(4);
    head[1] = 126;
    head.writeUInt16BE(n, 2);
  } else {
    head = Buffer.alloc(10);
    head[1] = 127;
    head.writeBigUInt64BE(BigInt(n), 2);
  }
  head[0] = (fin ? 0x80 : 0) | rsv | opcode;
  if (!mask) return Buffer.concat([head, data]);
  head[1] |= 0x80;
  const key = crypto.randomBytes(4);
  return Buffer.concat([head, key, Buffer.from(data.map((b, i) => b ^ key[i % 4]))]);
}

/**
 * A websocket over a bare TCP socket. `upgrade(extra)` writes the opening
 * handshake (plus `extra` bytes in the same write) and returns the HTTP
 * status line; `next()` resolves with the server's next frame
 * `{ opcode, payload }`, or null once the connection has ended.
 */
class RawWs {
  constructor() {
    this.buf = Buffer.alloc(0);
    this.head = null;
    this.ended = false;
    this.wake = () => {};
  }

  async upgrade(extra = Buffer.alloc(0), headers = {}) {
    const { port, hostname } = new URL(server.base);
    this.sock = net.connect(Number(port), hostname);
    this.sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    this.sock.on('close', () => {
      this.ended = true;
      this.wake();
    });
    this.sock.on('error', () => {});
    await new Promise((resolve) => this.sock.once('connect', resolve));
    const h = {
      Host: `${hostname}:${port}`,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
      'Sec-WebSocket-Version': '13',
      ...headers,
    };
    const lines = Object.entries(h)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}: ${v}`);
    this.sock.write(Buffer.concat([Buffer.from(`GET ${PATH} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`), extra]));
    const end = await this.until(() => {
      const i = this.buf.indexOf('\r\n\r\n');
      return i < 0 ? undefined : i;
    });
    assert.notEqual(end, null, 'the server answered the handshake');
    this.head = this.buf.subarray(0, end).toString();
    this.buf = this.buf.subarray(end + 4);
    return this.head.split('\r\n')[0];
  }

  /** Waits until `take()` returns something other than undefined (null at the end). */
  until(take, timeoutMs = 5000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no answer in time')), timeoutMs);
      this.wake = () => {
        const v = take();
        if (v !== undefined) {
          clearTimeout(timer);
          resolve(v);
        } else if (this.ended) {
          clearTimeout(timer);
          resolve(null);
        }
      };
      this.wake();
    });
  }

  next(timeoutMs) {
    return this.until(() => {
      const b = this.buf;
      if (b.length < 2) return undefined;
      let len = b[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (b.length < 4) return undefined;
        len = b.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (b.length < 10) return undefined;
        len = Number(b.readBigUInt64BE(2));
        at = 10;
      }
      if (b.length < at + len) return undefined;
      assert.equal(b[1] & 0x80, 0, 'server frames are not masked');
      const f = { fin: (b[0] & 0x80) !== 0, opcode: b[0] & 0x0f, payload: b.subarray(at, at + len) };
      this.buf = b.subarray(at + len);
      return f;
    }, timeoutMs);
  }

  /** The next text frame's text, skipping nothing. */
  async text() {
    const f = await this.next();
    assert.ok(f, 'a frame before the end');
    assert.equal(f.opcode, 1, `a text frame, got opcode ${f.opcode}`);
    return f.payload.toString();
  }

  /** The close code of the server's close frame, then the end of the stream. */
  async closeCode() {
    for (;;) {
      const f = await this.next();
      assert.ok(f, 'a close frame before the end of the stream');
      if (f.opcode === 8) {
        const code = f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null;
        assert.equal(await this.next(), null, 'the server ends the connection after its close frame');
        return code;
      }
    }
  }

  write(bytes) {
    this.sock.write(bytes);
  }

  destroy() {
    this.sock.destroy();
  }
}

describe('websocket framing', { timeout: 20000 }, () => {
  it('the `ws` client: fragmented messages, pings answered in between, close codes echoed', async () => {
    const ws = new WebSocket(server.base.replace('http', 'ws') + PATH);
    const texts = [];
    let wake = () => {};
    ws.on('message', (d) => {
      texts.push(d.toString());
      wake();
    });
    const nextText = (pred) =>
      new Promise((resolve) => {
        wake = () => {
          const i = texts.findIndex(pred);
          if (i >= 0) resolve(texts.splice(i, 1)[0]);
        };
        wake();
      });
    assert.match(await nextText((t) => t.startsWith('0{')), /"sid"/);
    const pong = new Promise((resolve) => ws.once('pong', (d) => resolve(d.toString())));
    // `40` in two fragments, with a ping between them.
    ws.send('4', { fin: false });
    ws.ping('between');
    ws.send('0', { fin: true });
    assert.equal(await pong, 'between');
    assert.match(await nextText((t) => t.startsWith('40')), /^40\{"sid":/);
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    ws.close(4001, 'bye');
    assert.equal(await closed, 4001, 'the server echoes the close code');
  });

  it('text that is not UTF-8 is closed with 1007', async () => {
    const ws = new WebSocket(server.base.replace('http', 'ws') + PATH);
    await new Promise((resolve) => ws.once('message', resolve));
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    ws.send(Buffer.from([0x34, 0x32, 0xff, 0xfe]), { binary: false });
    assert.equal(await closed, 1007);
  });

  it('frames pipelined with the upgrade request are read', async () => {
    const raw = new RawWs();
    assert.equal(await raw.upgrade(frame(1, '40')), 'HTTP/1.1 101 Switching Protocols');
    assert.match(raw.head, /sec-websocket-accept: /i);
    assert.match(await raw.text(), /^0\{"sid"/);
    assert.match(await raw.text(), /^40\{"sid":/);
    raw.destroy();
  });

  it('a message written one byte at a time is read whole', async () => {
    const raw = new RawWs();
    await raw.upgrade();
    assert.match(await raw.text(), /^0\{"sid"/);
    const bytes = frame(1, '40');
    for (const b of bytes) {
      raw.write(Buffer.from([b]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.match(await raw.text(), /^40\{"sid":/);
    raw.destroy();
  });

  it('an unmasked frame, reserved bits, a continuation of nothing or a long ping is closed with 1002', async () => {
    const bad = [
      frame(1, '40', { mask: false }),
      frame(1, '40', { rsv: 0x40 }),
      frame(0, 'x'),
      frame(9, 'x'.repeat(126)),
      frame(9, 'x', { fin: false }),
      frame(3, 'x'),
    ];
    for (const bytes of bad) {
      const raw = new RawWs();
      await raw.upgrade();
      await raw.text();
      raw.write(bytes);
      assert.equal(await raw.closeCode(), 1002, `for ${bytes.subarray(0, 2).toString('hex')}`);
    }
  });

  it('a frame past the payload limit is closed with 1009 before its payload is sent', async () => {
    const raw = new RawWs();
    await raw.upgrade();
    const { maxPayload } = JSON.parse((await raw.text()).slice(1));
    // Only the header: the server must not wait for (or buffer) the body.
    raw.write(frame(1, '', { len: maxPayload + 1 }).subarray(0, 14));
    assert.equal(await raw.closeCode(), 1009);
  });

  it('fragments adding up past the payload limit are closed with 1009', async () => {
    const raw = new RawWs();
    await raw.upgrade();
    const { maxPayload } = JSON.parse((await raw.text()).slice(1));
    const half = 'a'.repeat(Math.ceil(maxPayload / 2) + 1);
    raw.write(frame(1, half, { fin: false }));
    raw.write(frame(0, half, { fin: true }));
    assert.equal(await raw.closeCode(), 1009);
  });

  it('handshakes that are not websocket version 13 with a key are refused', async () => {
    const noKey = new RawWs();
    assert.match(await noKey.upgrade(undefined, { 'Sec-WebSocket-Key': undefined }), /^HTTP\/1.1 400/);
    noKey.destroy();
    const old = new RawWs();
    assert.match(await old.upgrade(undefined, { 'Sec-WebSocket-Version': '8' }), /^HTTP\/1.1 426/);
    assert.match(old.head, /sec-websocket-version: 13/i);
    old.destroy();
  });
});
