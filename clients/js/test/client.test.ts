// The client against a real lampyr server over TCP: what a game sees.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  ClosedError,
  ConnectError,
  ConnectionLostError,
  DeclinedError,
  ErrorCode,
  OverloadedError,
  ServerError,
  TimeoutError,
  TooLargeError,
  connect,
  type Client,
  type ClientOptions,
} from '../src/node.js';
import { Cmd, LampyrServer, freePort } from './server.js';
import { next, nextPush, text } from './util.js';

const SERVER_MAX_BODY = 4096;
// A killed server's socket ends with FIN, or RST when it had unread input.
const SERVER_GONE = /^(closed by the server|socket error: read ECONNRESET)$/;

describe('against one server', () => {
  let server: LampyrServer;
  const clients: Client[] = [];
  const open = async (options: ClientOptions = {}) => {
    const c = await connect({ host: '127.0.0.1', port: server.port }, { maxBody: SERVER_MAX_BODY, ...options });
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await LampyrServer.start({ protocol: { max_body: SERVER_MAX_BODY } });
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server.dispose();
  });

  test('request/reply: the echo plugin returns the body, text, binary or empty', async () => {
    const c = await open();
    assert.equal(text(await c.request(Cmd.ECHO, 'hello')), 'hello');
    const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.deepEqual(await c.request(Cmd.ECHO, binary), binary);
    assert.equal((await c.request(Cmd.ECHO)).length, 0);
    assert.equal(c.state, 'open');
  });

  test('connect also takes a tcp:// URL', async () => {
    const c = await connect(`tcp://127.0.0.1:${server.port}`);
    clients.push(c);
    assert.equal(text(await c.request(Cmd.ECHO, 'url')), 'url');
  });

  test('pipelining: 300 requests sent at once each get their own reply, in request order', async () => {
    const c = await open();
    const order: number[] = [];
    const calls: Promise<string>[] = [];
    for (let i = 0; i < 300; i++) {
      // Slow handlers that finish out of order (the 5th request sleeps longest)
      // between fast ones, and two plugins: the host must reorder, the client match.
      let p: Promise<Uint8Array>;
      if (i % 5 === 0) p = c.request(Cmd.SLEEP, `${(300 - i) % 40} sleep ${i}`);
      else if (i % 7 === 0) p = c.request(Cmd.STATS);
      else p = c.request(Cmd.ECHO, `echo ${i}`);
      calls.push(
        p.then((body) => {
          order.push(i);
          return text(body);
        }),
      );
    }
    const replies = await Promise.all(calls);
    for (let i = 0; i < 300; i++) {
      if (i % 5 === 0) assert.equal(replies[i], `${(300 - i) % 40} sleep ${i}`);
      else if (i % 7 === 0) assert.match(replies[i] ?? '', /^rooms=\d+ members=\d+ .* version=1\.0 generation=\d+ server=game$/);
      else assert.equal(replies[i], `echo ${i}`);
    }
    assert.deepEqual(order, [...Array(300).keys()]);
  });

  test('pushes: room events and chat reach every member between replies', async () => {
    const alice = await open();
    const bob = await open();
    const aliceJoin = text(await alice.request(Cmd.JOIN, 'hall'));
    const aliceId = /^welcome to hall, (\d+)$/.exec(aliceJoin)?.[1];
    assert.ok(aliceId, aliceJoin);

    const joined = nextPush(alice, Cmd.PUSH_EVENT);
    const bobId = /^welcome to hall, (\d+)$/.exec(text(await bob.request(Cmd.JOIN, 'hall')))?.[1];
    assert.equal(await joined, `${bobId} joined hall`);

    const allPushes: Array<[number, string]> = [];
    bob.on('push', (command, body) => allPushes.push([command, text(body)]));
    const aliceHears = nextPush(alice, Cmd.PUSH_SAY);
    const bobHears = nextPush(bob, Cmd.PUSH_SAY);
    // The push to the sender is written before its reply: the client must not take it for the reply.
    assert.equal(text(await bob.request(Cmd.SAY, 'hi all')), 'ok 1');
    assert.equal(await aliceHears, `${bobId}: hi all`);
    assert.equal(await bobHears, `${bobId}: hi all`);
    assert.deepEqual(allPushes, [[Cmd.PUSH_SAY, `${bobId}: hi all`]]);

    const who = text(await alice.request(Cmd.WHO)).trim().split('\n');
    assert.deepEqual(who.sort(), [aliceId, bobId].sort());

    const left = nextPush(alice, Cmd.PUSH_EVENT);
    await bob.close();
    assert.equal(await left, `${bobId} left hall`);
  });

  test('error replies reject with ServerError and its code; the session goes on', async () => {
    const c = await open();
    const unknown = c.request(4242, 'x');
    const echo = c.request(Cmd.ECHO, 'still here');
    const notInRoom = c.request(Cmd.SAY, 'nobody hears');
    await assert.rejects(unknown, (e: unknown) => {
      assert.ok(e instanceof ServerError);
      assert.equal(e.kind, 'server');
      assert.equal(e.code, ErrorCode.UNKNOWN_COMMAND);
      assert.equal(e.error, 'unknown_command');
      assert.equal(e.command, 4242);
      return true;
    });
    assert.equal(text(await echo), 'still here');
    await assert.rejects(notInRoom, (e: unknown) => {
      assert.ok(e instanceof ServerError);
      assert.equal(e.code, ErrorCode.HANDLER_ERROR);
      assert.equal(e.error, 'handler_error');
      assert.equal(e.command, Cmd.SAY);
      return true;
    });
    assert.equal(text(await c.request(Cmd.ECHO, 'after')), 'after');
  });

  test('a request the server declines rejects with DeclinedError once a later reply passes it', async () => {
    const c = await open();
    const declined = c.request(Cmd.DECLINE, 'no answer');
    const echo = c.request(Cmd.ECHO, 'answered');
    assert.equal(text(await echo), 'answered');
    await assert.rejects(declined, (e: unknown) => e instanceof DeclinedError && e.command === Cmd.DECLINE);
    // The heartbeat is a fence too: it is answered in order by the host.
    const c2 = await open({ heartbeatCommand: Cmd.HEARTBEAT, heartbeatIntervalMs: 0 });
    const d2 = c2.request(Cmd.DECLINE);
    await c2.heartbeat();
    await assert.rejects(d2, DeclinedError);
  });

  test('a timed-out request rejects with TimeoutError and its late reply is not taken for the next one', async () => {
    const c = await open();
    const slow = c.request(Cmd.SLEEP, '400 stale', { timeoutMs: 50 });
    await assert.rejects(slow, (e: unknown) => e instanceof TimeoutError && e.kind === 'timeout' && e.command === Cmd.SLEEP);
    // Same command id, sent while the stale reply is still coming.
    assert.equal(text(await c.request(Cmd.SLEEP, '0 fresh')), '0 fresh');
    assert.equal(text(await c.request(Cmd.ECHO, 'ok')), 'ok');
  });

  test('heartbeat() is answered by the host with a round-trip time', async () => {
    const c = await open({ heartbeatCommand: Cmd.HEARTBEAT, heartbeatIntervalMs: 0 });
    const rtt = await c.heartbeat();
    assert.ok(rtt >= 0 && Number.isFinite(rtt));
    const none = await open();
    await assert.rejects(none.heartbeat(), { kind: 'unsupported' });
  });

  test('a body over maxBody is refused before sending; the session goes on', async () => {
    const c = await open();
    await assert.rejects(c.request(Cmd.ECHO, new Uint8Array(SERVER_MAX_BODY + 1)), (e: unknown) => {
      assert.ok(e instanceof TooLargeError);
      assert.equal(e.kind, 'too_large');
      assert.equal(e.size, SERVER_MAX_BODY + 1);
      assert.equal(e.max, SERVER_MAX_BODY);
      return true;
    });
    assert.equal((await c.request(Cmd.ECHO, new Uint8Array(SERVER_MAX_BODY))).length, SERVER_MAX_BODY);
  });

  test('a server closing the connection for an oversize frame is a lost session, then a new one', async () => {
    // This client believes the limit is larger than the server's.
    const c = await open({ maxBody: 1 << 20, reconnectMinMs: 10 });
    const lost = next(c, 'sessionlost');
    const reconnected = next(c, 'reconnect');
    await assert.rejects(c.request(Cmd.ECHO, new Uint8Array(SERVER_MAX_BODY + 1)), ConnectionLostError);
    const [ev] = await lost;
    assert.match(ev.reason, SERVER_GONE); // the server never reads the oversize body
    await reconnected;
    assert.equal(text(await c.request(Cmd.ECHO, 'new session')), 'new session');
  });

  test('maxPending bounds the requests waiting; more are refused at once', async () => {
    const c = await open({ maxPending: 2 });
    const a = c.request(Cmd.SLEEP, '50 a');
    const b = c.request(Cmd.SLEEP, '0 b');
    await assert.rejects(c.request(Cmd.ECHO, 'c'), OverloadedError);
    assert.deepEqual([text(await a), text(await b)], ['50 a', '0 b']);
    assert.equal(text(await c.request(Cmd.ECHO, 'd')), 'd');
  });

  test('a push handler that throws is reported and the session goes on', async () => {
    const c = await open();
    const errors: unknown[] = [];
    c.on('error', (e) => errors.push(e));
    c.on(Cmd.PUSH_SAY, () => {
      throw new Error('game bug');
    });
    await c.request(Cmd.JOIN, 'buggy');
    const heard = nextPush(c, Cmd.PUSH_SAY);
    assert.equal(text(await c.request(Cmd.SAY, 'x')), 'ok 1');
    await heard;
    assert.equal(text(await c.request(Cmd.ECHO, 'alive')), 'alive');
    assert.equal(errors.length, 1);
    assert.match(String(errors[0]), /game bug/);
  });

  test('close() rejects what is waiting with ClosedError and ends the client', async () => {
    const c = await open();
    const closed = next(c, 'close');
    let lost = false;
    c.on('sessionlost', () => (lost = true));
    const pending = assert.rejects(c.request(Cmd.SLEEP, '1000 never'), ClosedError);
    await c.close();
    await pending;
    assert.deepEqual(await closed, [{ reason: 'closed by the client' }]);
    assert.equal(c.state, 'closed');
    await assert.rejects(c.request(Cmd.ECHO, 'late'), ClosedError);
    assert.equal(lost, false);
  });
});

test('connecting to a port where nothing listens rejects with ConnectError', async () => {
  const port = await freePort();
  await assert.rejects(connect({ host: '127.0.0.1', port }), (e: unknown) => e instanceof ConnectError && e.kind === 'connect');
  await assert.rejects(connect('http://127.0.0.1:1/'), ConnectError);
});

test('reconnect after a server restart: pending requests fail, then a new session', async (t) => {
  const server = await LampyrServer.start();
  t.after(() => server.dispose());
  const c = await connect({ host: '127.0.0.1', port: server.port }, { reconnectMinMs: 20, reconnectMaxMs: 200 });
  t.after(() => c.close());
  await c.request(Cmd.JOIN, 'lobby');
  assert.match(text(await c.request(Cmd.WHO)), /^\d+\n$/);

  const lost = next(c, 'sessionlost');
  const inFlight = assert.rejects(
    c.request(Cmd.SLEEP, '5000 never answered'),
    (e: unknown) => e instanceof ConnectionLostError && e.kind === 'connection_lost',
  );
  await server.stop('SIGKILL');
  await inFlight;
  assert.match((await lost)[0].reason, SERVER_GONE);
  assert.equal(c.state, 'reconnecting');

  // Made while the server is down: waits for the new session.
  const attempts: number[] = [];
  c.on('reconnecting', (ev) => attempts.push(ev.attempt));
  const reconnected = next(c, 'reconnect');
  const early = c.request(Cmd.ECHO, 'sent after the restart');
  await next(c, 'reconnecting'); // at least one attempt failed against the dead port
  await server.launch();
  const [ev] = await reconnected;
  // Attempt n+1 is announced when attempt n failed; the one that worked is the last announced.
  assert.ok(attempts.length > 0 && (attempts[0] ?? 0) >= 2, `attempts ${attempts}`);
  assert.deepEqual(attempts, attempts.map((_, i) => (attempts[0] ?? 0) + i));
  assert.equal(ev.attempt, attempts[attempts.length - 1]);
  assert.equal(text(await early), 'sent after the restart');

  // A new session: the room membership of the old one is gone.
  await assert.rejects(c.request(Cmd.WHO), (e: unknown) => e instanceof ServerError && e.code === ErrorCode.HANDLER_ERROR);
  assert.match(text(await c.request(Cmd.JOIN, 'lobby')), /^welcome to lobby, \d+$/);
});

test('with reconnect off, a lost session closes the client', async (t) => {
  const server = await LampyrServer.start();
  t.after(() => server.dispose());
  const c = await connect({ host: '127.0.0.1', port: server.port }, { reconnect: false });
  const closed = next(c, 'close');
  await server.stop('SIGKILL');
  assert.match((await closed)[0].reason, new RegExp(`^connection lost: ${SERVER_GONE.source.slice(1)}`));
  assert.equal(c.state, 'closed');
});

test('heartbeat: keeps an idle session open; a silent server is noticed and left', async (t) => {
  const server = await LampyrServer.start({ protocol: { idle_timeout_s: 1 } });
  t.after(() => server.dispose());
  const target = { host: '127.0.0.1', port: server.port };
  const beating = await connect(target, { heartbeatCommand: Cmd.HEARTBEAT, heartbeatIntervalMs: 200, reconnectMinMs: 20 });
  t.after(() => beating.close());
  const silent = await connect(target, { reconnect: false });
  t.after(() => silent.close());
  let beatingLost = false;
  beating.on('sessionlost', () => (beatingLost = true));
  await beating.request(Cmd.JOIN, 'idlers');
  await silent.request(Cmd.JOIN, 'idlers');

  // The server closes the silent one after idle_timeout_s; the beating one stays.
  const [closed] = await next(silent, 'close', 10000);
  assert.equal(closed.reason, 'connection lost: closed by the server');
  assert.equal(beatingLost, false);
  assert.equal(text(await beating.request(Cmd.WHO)).trim().split('\n').length, 1);

  // A frozen server (SIGSTOP): TCP stays up, the heartbeat notices.
  const lost = next(beating, 'sessionlost');
  const pid = server.pid() as number;
  process.kill(pid, 'SIGSTOP');
  try {
    const [ev] = await lost;
    assert.match(ev.reason, /^heartbeat: nothing received for 200 ms$/);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  await next(beating, 'reconnect');
  assert.equal(text(await beating.request(Cmd.ECHO, 'back')), 'back');
});
