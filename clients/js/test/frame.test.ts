// The frame codec, and a hostile peer: every byte from the network is input
// to check, and bad input must end in a ProtocolError, never anything else.
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';

import { connect, decodeMessage, encodeFrame, FrameDecoder, framePrefix, ProtocolError, TooLargeError, type Frame } from '../src/node.js';
import { next } from './util.js';

const DEFAULT = framePrefix({ head: [0, 0, 0, 0], protoVersion: 0, serverVersion: 0 });
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

test('encodeFrame writes the documented layout (docs/protocol.md example)', () => {
  const frame = encodeFrame(DEFAULT, 1, new TextEncoder().encode('hi'), 65536);
  assert.equal(hex(frame), '00000000' + '00' + '00000000' + '00000006' + '00000001' + '6869');
  const custom = framePrefix({ head: [1, 2, 3, 4], protoVersion: 5, serverVersion: 0x01020304 });
  assert.equal(hex(encodeFrame(custom, 0xffffffff, new Uint8Array(0), 0)), '01020304' + '05' + '01020304' + '00000004' + 'ffffffff');
  assert.throws(() => encodeFrame(DEFAULT, 1, new Uint8Array(11), 10), TooLargeError);
  assert.throws(() => encodeFrame(DEFAULT, -1, new Uint8Array(0), 10), RangeError);
  assert.throws(() => encodeFrame(DEFAULT, 2 ** 32, new Uint8Array(0), 10), RangeError);
  assert.throws(() => framePrefix({ head: [256, 0, 0, 0], protoVersion: 0, serverVersion: 0 }), RangeError);
  assert.throws(() => framePrefix({ head: [0, 0, 0], protoVersion: 0, serverVersion: 0 }), RangeError);
});

function sampleStream(): { bytes: Uint8Array; frames: Frame[] } {
  const frames: Frame[] = [
    { command: 1, body: new TextEncoder().encode('hello') },
    { command: 0, body: new Uint8Array(0) },
    { command: 0xffffffff, body: Uint8Array.from({ length: 300 }, (_, i) => i & 0xff) },
    { command: 7, body: new Uint8Array(0) },
  ];
  const parts = frames.map((f) => encodeFrame(DEFAULT, f.command, f.body, 1000));
  return { bytes: Buffer.concat(parts), frames };
}

test('FrameDecoder: frames cut at every byte, or all in one chunk, come out whole and in order', () => {
  const { bytes, frames } = sampleStream();
  assert.deepEqual(new FrameDecoder(DEFAULT, 1000).push(bytes), frames);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const d = new FrameDecoder(DEFAULT, 1000);
    const got = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
    assert.deepEqual(got, frames, `cut at ${cut}`);
  }
  const d = new FrameDecoder(DEFAULT, 1000);
  const got: Frame[] = [];
  for (const b of bytes) got.push(...d.push(Uint8Array.of(b)));
  assert.deepEqual(got, frames);
});

test('FrameDecoder: bodies are copies, not views of the socket buffer', () => {
  const chunk = Buffer.from(encodeFrame(DEFAULT, 1, Uint8Array.of(1, 2, 3), 10));
  const [frame] = new FrameDecoder(DEFAULT, 10).push(chunk);
  chunk.fill(9);
  assert.deepEqual(frame?.body, Uint8Array.of(1, 2, 3));
});

test('FrameDecoder: bad head, version, length and size are refused as soon as the byte arrives', () => {
  const reasonOf = (bytes: number[], maxBody = 100) => {
    const d = new FrameDecoder(DEFAULT, maxBody);
    try {
      d.push(Uint8Array.from(bytes));
    } catch (e) {
      assert.ok(e instanceof ProtocolError, String(e));
      assert.throws(() => d.push(Uint8Array.of(0)), ProtocolError, 'stays failed');
      return e.reason;
    }
    return 'accepted';
  };
  assert.equal(reasonOf([0x47]), 'bad_head'); // "GET /" cut at the first byte
  assert.equal(reasonOf([0, 0, 0, 0, 1]), 'bad_version');
  assert.equal(reasonOf([0, 0, 0, 0, 0, 0, 0, 0, 9]), 'bad_version');
  assert.equal(reasonOf([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 1]), 'bad_length');
  assert.equal(reasonOf([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 105, 0, 0, 0, 1]), 'too_large');
  assert.equal(reasonOf([0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]), 'too_large');
  assert.equal(reasonOf([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 104, 0, 0, 0, 1]), 'accepted');
});

test('decodeMessage: one WebSocket message is exactly one frame', () => {
  const one = encodeFrame(DEFAULT, 3, Uint8Array.of(7), 10);
  assert.deepEqual(decodeMessage(DEFAULT, 10, one), { command: 3, body: Uint8Array.of(7) });
  const reason = (m: Uint8Array) => {
    try {
      decodeMessage(DEFAULT, 10, m);
      return 'accepted';
    } catch (e) {
      assert.ok(e instanceof ProtocolError);
      return e.reason;
    }
  };
  assert.equal(reason(Buffer.concat([one, one])), 'bad_message');
  assert.equal(reason(one.subarray(0, one.length - 1)), 'bad_message');
  assert.equal(reason(one.subarray(0, 10)), 'bad_message');
  assert.equal(reason(encodeFrame(DEFAULT, 3, new Uint8Array(11), 11)), 'too_large');
  assert.equal(reason(Uint8Array.of(1, ...one.subarray(1))), 'bad_head');
});

// xorshift32: a fixed seed, so a failure reproduces.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

test('decoders on 20,000 random and mutated inputs: frames or ProtocolError, nothing else', () => {
  const next32 = rng(0x1a3b5c7d);
  const { bytes: valid } = sampleStream();
  for (let round = 0; round < 20000; round++) {
    let input: Uint8Array;
    if (round % 2 === 0) {
      input = valid.slice();
      const flips = 1 + (next32() % 4);
      for (let i = 0; i < flips; i++) input[next32() % input.length] = next32() & 0xff;
    } else {
      input = Uint8Array.from({ length: next32() % 64 }, () => (next32() % 3 === 0 ? 0 : next32() & 0xff));
    }
    const d = new FrameDecoder(DEFAULT, 512);
    let pos = 0;
    try {
      while (pos < input.length) {
        const end = Math.min(input.length, pos + 1 + (next32() % 40));
        for (const f of d.push(input.subarray(pos, end))) assert.ok(f.body.length <= 512 && f.command >= 0);
        pos = end;
      }
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `round ${round}: ${String(e)}`);
    }
    try {
      decodeMessage(DEFAULT, 512, input);
    } catch (e) {
      assert.ok(e instanceof ProtocolError, `round ${round}: ${String(e)}`);
    }
  }
});

test('a peer that sends a bad frame ends the session with a protocol error', async (t) => {
  const sockets = new Set<Socket>();
  const peer = createServer((s) => {
    sockets.add(s);
    s.on('data', () => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
  });
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    peer.close();
  });
  const port = (peer.address() as { port: number }).port;
  const c = await connect({ host: '127.0.0.1', port }, { reconnect: false });
  const lost = next(c, 'sessionlost');
  await assert.rejects(c.request(1, 'x'), (e: unknown) => e instanceof Error && (e as { kind?: string }).kind === 'connection_lost');
  const [ev] = await lost;
  assert.match(ev.reason, /^protocol error: bad_head: head byte 0 is 72, expected 0$/);
  assert.ok(ev.error instanceof ProtocolError);
  await c.close();
});
