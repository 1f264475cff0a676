// The client over WebSocket against a real lampyr server's `wsport`
// (DESIGN §3a), in `npm test` (and so in scripts/test.sh).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { ConnectionLostError, ErrorCode, ServerError, TooLargeError, connect, type Client, type ClientOptions } from '../src/node.js';
import { Cmd, LampyrServer } from './server.js';
import { next, nextPush, text } from './util.js';

const SERVER_MAX_BODY = 4096;
const SERVER_GONE = /^closed by the server \(code \d+.*\)$/;

describe('over WebSocket', () => {
  let server: LampyrServer;
  let url: string;
  const clients: Client[] = [];
  const open = async (options: ClientOptions = {}) => {
    const c = await connect(url, { maxBody: SERVER_MAX_BODY, ...options });
    clients.push(c);
    return c;
  };

  before(async () => {
    server = await LampyrServer.start({ protocol: { max_body: SERVER_MAX_BODY } }, ['wsport']);
    url = `ws://127.0.0.1:${server.extraPorts.wsport}/`;
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await server.dispose();
  });

  test('request/reply, binary bodies and pipelining in order', async () => {
    const c = await open();
    assert.equal(text(await c.request(Cmd.ECHO, 'over ws')), 'over ws');
    const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
    assert.deepEqual(await c.request(Cmd.ECHO, binary), binary);
    const calls = [...Array(100).keys()].map((i) =>
      i % 4 === 0 ? c.request(Cmd.SLEEP, `${(100 - i) % 20} s${i}`) : c.request(Cmd.ECHO, `e${i}`),
    );
    const replies = (await Promise.all(calls)).map(text);
    replies.forEach((r, i) => assert.equal(r, i % 4 === 0 ? `${(100 - i) % 20} s${i}` : `e${i}`));
  });

  test('error replies carry the protocol code', async () => {
    const c = await open();
    await assert.rejects(c.request(4242), (e: unknown) => e instanceof ServerError && e.code === ErrorCode.UNKNOWN_COMMAND);
    assert.equal(text(await c.request(Cmd.ECHO, 'on')), 'on');
  });

  test('TCP and WebSocket sessions chat in one room', async () => {
    const tcp = await connect({ host: '127.0.0.1', port: server.port });
    clients.push(tcp);
    const ws = await open();
    const tcpId = /, (\d+)$/.exec(text(await tcp.request(Cmd.JOIN, 'mixed')))?.[1];
    const tcpSeesJoin = nextPush(tcp, Cmd.PUSH_EVENT);
    const wsId = /, (\d+)$/.exec(text(await ws.request(Cmd.JOIN, 'mixed')))?.[1];
    assert.equal(await tcpSeesJoin, `${wsId} joined mixed`);

    const tcpHears = nextPush(tcp, Cmd.PUSH_SAY);
    assert.equal(text(await ws.request(Cmd.SAY, 'from the browser side')), 'ok 1');
    assert.equal(await tcpHears, `${wsId}: from the browser side`);
    const wsHears = nextPush(ws, Cmd.PUSH_SAY);
    assert.equal(text(await tcp.request(Cmd.SAY, 'from the tcp side')), 'ok 2');
    assert.equal(await wsHears, `${tcpId}: from the tcp side`);
    assert.deepEqual(text(await ws.request(Cmd.WHO)).trim().split('\n').sort(), [tcpId, wsId].sort());
  });

  test('oversize: refused by the client; a server refusing it is a lost session', async () => {
    const c = await open();
    await assert.rejects(c.request(Cmd.ECHO, new Uint8Array(SERVER_MAX_BODY + 1)), TooLargeError);
    const loose = await open({ maxBody: 1 << 20, reconnectMinMs: 10 });
    const lost = next(loose, 'sessionlost');
    const back = next(loose, 'reconnect');
    await assert.rejects(loose.request(Cmd.ECHO, new Uint8Array(SERVER_MAX_BODY + 1)), ConnectionLostError);
    assert.match((await lost)[0].reason, /code 1009/);
    await back;
    assert.equal(text(await loose.request(Cmd.ECHO, 'again')), 'again');
  });

  test('reconnect after a server restart', async () => {
    const c = await open({ reconnectMinMs: 20, reconnectMaxMs: 200 });
    await c.request(Cmd.JOIN, 'lobby');
    const lost = next(c, 'sessionlost');
    const back = next(c, 'reconnect');
    await server.stop('SIGKILL');
    assert.match((await lost)[0].reason, SERVER_GONE);
    await server.launch();
    await back;
    await assert.rejects(c.request(Cmd.WHO), (e: unknown) => e instanceof ServerError && e.code === ErrorCode.HANDLER_ERROR);
  });
});
