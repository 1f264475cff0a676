// Node entry: the same API, plus raw TCP and WebSocket through the `ws` package.
import type { Client, ClientOptions } from './client.js';
import { openClient, type ConnectTarget } from './common.js';
import { ConnectError } from './errors.js';
import { isWebSocketUrl, parseUrl } from './url.js';
import { tcpTransport } from './tcp.js';
import type { TransportFactory } from './transport.js';
import { wsTransport, type WebSocketLike, type WebSocketMaker } from './ws.js';

export * from './common.js';
export { tcpTransport } from './tcp.js';

type WsConstructor = new (url: string, protocols?: string[], options?: { maxPayload?: number }) => WebSocketLike;

// `ws` is an optional peer dependency, loaded only when a ws:// URL is used;
// Node releases with a global WebSocket work without it.
async function webSocketMaker(): Promise<WebSocketMaker> {
  try {
    const mod = (await import('ws')) as unknown as { WebSocket?: WsConstructor; default?: WsConstructor };
    const WS = mod.WebSocket ?? mod.default;
    if (WS) return (url, maxPayload) => new WS(url, [], { maxPayload });
  } catch {
    // not installed: try the global one below
  }
  const Global = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (Global) return (url) => new Global(url);
  throw new ConnectError('WebSocket in Node needs the `ws` package: npm install ws');
}

function tcpTarget(host: string, port: number): TransportFactory {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConnectError(`bad port ${port}`);
  return tcpTransport(host, port);
}

/**
 * connect('ws://host:port/path') or connect('wss://...') through WebSocket;
 * connect({host, port}) or connect('tcp://host:port') through raw TCP.
 */
export async function connect(target: ConnectTarget, options?: ClientOptions): Promise<Client> {
  let factory: TransportFactory;
  if (typeof target !== 'string') {
    factory = tcpTarget(target.host ?? '127.0.0.1', target.port);
  } else {
    const url = parseUrl(target);
    if (isWebSocketUrl(url)) factory = wsTransport(target, await webSocketMaker());
    else if (url.protocol === 'tcp:') factory = tcpTarget(url.hostname.replace(/^\[(.*)\]$/, '$1'), Number(url.port));
    else throw new ConnectError(`${target}: expected ws://, wss:// or tcp://`);
  }
  return openClient(factory, options);
}
