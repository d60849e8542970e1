// The raw HTTP/1.1 GET client (providers/object-store/raw-http.ts) against a scripted TCP server
// on loopback: bodies arrive whole and unchanged in large reused chunks, a held chunk is never
// written over, connections are reused and replaced, and what the client does not frame or
// receive whole fails clearly.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { RawHttpClient, UnframedAnswer, type RawResponse } from '../../providers/object-store/raw-http.ts';
import { REUSABLE_CHUNK_MIN } from '../../src/env.ts';
import { prng } from '../support/prng.ts';

interface Scripted {
  port: number;
  connections: net.Socket[];
  stop(): Promise<void>;
}

/** A TCP server that hands each request's head (and its connection's index) to `answer`. */
async function scripted(answer: (req: string, socket: net.Socket, conn: number, nth: number) => void, secure?: tls.TlsOptions, host = '127.0.0.1'): Promise<Scripted> {
  const connections: net.Socket[] = [];
  const onSocket = (socket: net.Socket) => {
    const conn = connections.push(socket) - 1;
    let pending = '';
    let nth = 0;
    socket.on('data', (d) => {
      pending += d.toString('latin1');
      for (let i = pending.indexOf('\r\n\r\n'); i >= 0; i = pending.indexOf('\r\n\r\n')) {
        const req = pending.slice(0, i);
        pending = pending.slice(i + 4);
        answer(req, socket, conn, nth++);
      }
    });
    socket.on('error', () => {});
  };
  const server = secure ? tls.createServer(secure, onSocket) : net.createServer(onSocket);
  await new Promise<void>((r) => server.listen(0, host, r));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    stop: () =>
      new Promise<void>((r) => {
        for (const s of connections) s.destroy();
        server.close(() => r());
      }),
  };
}

const ok = (body: Buffer, extra = '') => Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n${extra}\r\n`), body]);

/** Writes `data` in pieces of random sizes, each after the last was flushed. */
function writeInPieces(socket: net.Socket, data: Buffer, rand: () => number, maxPiece: number): void {
  let at = 0;
  const next = () => {
    if (at >= data.length || socket.destroyed) return;
    const n = 1 + Math.floor(rand() * maxPiece);
    const piece = data.subarray(at, at + n);
    at += piece.length;
    socket.write(piece, next);
  };
  next();
}

async function readAll(res: RawResponse, between?: () => Promise<void>): Promise<{ bytes: Buffer; sizes: number[] }> {
  const parts: Buffer[] = [];
  const sizes: number[] = [];
  for await (const c of res.body) {
    parts.push(Buffer.from(c));
    sizes.push(c.length);
    await between?.();
  }
  return { bytes: Buffer.concat(parts), sizes };
}

const servers: Scripted[] = [];
const clients: RawHttpClient[] = [];
after(async () => {
  for (const c of clients) c.close();
  await Promise.all(servers.map((s) => s.stop()));
});

const fixture = (f: string) => fs.readFileSync(fileURLToPath(new URL(`../fixtures/tls/${f}`, import.meta.url)));
const TLS = { key: fixture('key.pem'), cert: fixture('cert.pem') };

async function setup(answer: Parameters<typeof scripted>[0], idleMs = 30_000, secure?: { ca?: Buffer }): Promise<{ server: Scripted; client: RawHttpClient }> {
  const server = await scripted(answer, secure ? TLS : undefined);
  servers.push(server);
  const origin = { protocol: secure ? 'https:' : 'http:', hostname: secure ? 'localhost' : '127.0.0.1', port: server.port };
  const client = new RawHttpClient(origin, { idleMs, ...(secure?.ca ? { tls: { ca: secure.ca } } : {}) });
  clients.push(client);
  return { server, client };
}

const waitFor = async (cond: () => boolean) => {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
};

describe('RawHttpClient', () => {
  it('reads bodies of any size, sent in pieces of any size, unchanged and in large chunks over one kept-alive connection', async () => {
    const rand = prng(7);
    const bodies: Buffer[] = [];
    const { server, client } = await setup((req, socket, _c, nth) => {
      assert.match(req, /^GET \/obj\/\d+ HTTP\/1\.1\r\nhost: x$/);
      writeInPieces(socket, ok(bodies[nth]!), rand, 300_000);
    });
    // Sizes around the buffer sizes and the handover threshold, and random ones.
    const sizes = [0, 1, 100_000, 512 * 1024 - 100, 512 * 1024, 1024 * 1024 + 3, 3_000_000];
    for (let i = 0; i < 12; i++) sizes.push(Math.floor(rand() * 3_000_000));
    for (const [i, size] of sizes.entries()) {
      bodies.push(randomBytes(size));
      const res = await client.get(`/obj/${i}`, { host: 'x' }, undefined);
      assert.equal(res.status, 200);
      assert.equal(res.length, size);
      // Some readers are slow: the socket fills the other buffer meanwhile, or stops.
      const got = await readAll(res, i % 2 ? () => new Promise((r) => setTimeout(r, 2)) : undefined);
      assert.ok(got.bytes.equals(bodies[i]!), `body ${i} (${size} bytes) unchanged`);
      // Every chunk but the last is a whole buffer's worth.
      assert.ok(got.sizes.slice(0, -1).every((n) => n >= REUSABLE_CHUNK_MIN), `chunks of body ${i}: ${got.sizes}`);
    }
    assert.equal(server.connections.length, 1);
  });

  it('stops reading while the caller holds a chunk and the other buffer is full: the held chunk stays as it was', async () => {
    const body = randomBytes(8 * 1024 * 1024);
    let sender: net.Socket | undefined;
    const { client } = await setup((_req, socket) => {
      sender = socket;
      socket.write(ok(body));
    });
    const res = await client.get('/big', { host: 'x' }, undefined);
    const it = res.body[Symbol.asyncIterator]();
    const first = (await it.next()).value as Uint8Array;
    const copy = Buffer.from(first);
    // The server cannot write on: the client stopped reading (TCP pushes back).
    await waitFor(() => sender !== undefined && sender.writableLength > 0);
    await new Promise((r) => setTimeout(r, 50));
    assert.ok(Buffer.from(first).equals(copy), 'held chunk unchanged while the server pushes');
    const rest: Buffer[] = [copy];
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(Buffer.from(r.value));
    assert.ok(Buffer.concat(rest).equals(body));
  });

  it('sends a request again on a new connection when the kept one was closed by the server while idle', async () => {
    const body = randomBytes(200_000);
    const { server, client } = await setup((_req, socket, conn, nth) => {
      // The first connection answers once, then drops the second request unanswered.
      if (conn === 0 && nth === 1) socket.destroy();
      else socket.write(ok(body));
    });
    for (let i = 0; i < 2; i++) {
      const got = await readAll(await client.get('/x', { host: 'x' }, undefined));
      assert.ok(got.bytes.equals(body));
    }
    assert.equal(server.connections.length, 2);
  });

  it('refuses answers it does not frame: chunked, without Content-Length, not HTTP', async () => {
    const answers = [
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello',
      'SSH-2.0-OpenSSH\r\n\r\n',
    ];
    const { client } = await setup((_req, socket, conn) => socket.write(answers[conn]!));
    for (const [i, why] of [/Transfer-Encoding: chunked/, /no Content-Length/, /not an HTTP\/1.x answer/].entries()) {
      await assert.rejects(client.get(`/${i}`, { host: 'x' }, undefined), (e: unknown) => e instanceof UnframedAnswer && why.test(e.message));
    }
  });

  it('fails a body cut short, one longer than its Content-Length, and one that goes silent', async () => {
    const body = randomBytes(1_500_000);
    const { client } = await setup((req, socket) => {
      const head = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      if (req.startsWith('GET /cut')) socket.write(Buffer.concat([head, body.subarray(0, 700_000)]), () => socket.destroy());
      else if (req.startsWith('GET /long')) socket.write(Buffer.concat([head, body, Buffer.from('xx')]));
      else socket.write(Buffer.concat([head, body.subarray(0, 700_000)]));
    }, 300);
    for (const [path, why] of [
      ['/cut', /closed/],
      ['/long', /more than the 1500000 bytes/],
      ['/silent', /no data for 0.3 s/],
    ] as const) {
      const res = await client.get(path, { host: 'x' }, undefined);
      await assert.rejects(readAll(res), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET' && why.test(e.message), path);
    }
  });

  it('an abort stops a body midway with its reason and drops the connection; the next request gets a new one', async () => {
    const body = randomBytes(4_000_000);
    const { server, client } = await setup((_req, socket) => socket.write(ok(body)));
    const ac = new AbortController();
    const res = await client.get('/a', { host: 'x' }, ac.signal);
    const reason = new Error('stop now');
    await assert.rejects(
      (async () => {
        for await (const _ of res.body) ac.abort(reason);
      })(),
      (e) => e === reason,
    );
    await waitFor(() => server.connections[0]!.destroyed || server.connections[0]!.readableEnded);
    // Leaving a body early drops its connection too.
    const partial = await client.get('/b', { host: 'x' }, undefined);
    for await (const _ of partial.body) break;
    const got = await readAll(await client.get('/c', { host: 'x' }, undefined));
    assert.ok(got.bytes.equals(body));
    assert.equal(server.connections.length, 3);
  });

  it('over TLS: bodies unchanged in large chunks over one connection; a server the trust store does not vouch for is refused', async () => {
    const body = randomBytes(3_000_000);
    const { server, client } = await setup((_req, socket) => socket.write(ok(body)), 30_000, { ca: TLS.cert });
    for (let i = 0; i < 2; i++) {
      const got = await readAll(await client.get('/t', { host: 'localhost' }, undefined));
      assert.ok(got.bytes.equals(body));
      assert.ok(got.sizes.slice(0, -1).every((n) => n >= REUSABLE_CHUNK_MIN), `chunks: ${got.sizes}`);
    }
    assert.equal(server.connections.length, 1);
    const untrusted = await setup((_req, socket) => socket.write(ok(body)), 30_000, {});
    await assert.rejects(untrusted.client.get('/t', { host: 'localhost' }, undefined), (e: NodeJS.ErrnoException) => /self[- ]signed|unable to verify/i.test(e.message));
  });

  it("takes a URL's bracketed IPv6 literal as the address to connect to", async () => {
    const body = randomBytes(700_000);
    const server = await scripted((_req, socket) => socket.write(ok(body)), undefined, '::1');
    servers.push(server);
    const client = new RawHttpClient({ protocol: 'http:', hostname: '[::1]', port: server.port }, { idleMs: 30_000 });
    clients.push(client);
    assert.ok((await readAll(await client.get('/v6', { host: `[::1]:${server.port}` }, undefined))).bytes.equals(body));
  });
});
