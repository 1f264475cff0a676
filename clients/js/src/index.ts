// Browser entry (and the default one): WebSocket only, no dependency.
import type { Client, ClientOptions } from './client.js';
import { openClient, type ConnectTarget } from './common.js';
import { ConnectError } from './errors.js';
import { isWebSocketUrl, parseUrl } from './url.js';
import { wsTransport, type WebSocketLike } from './ws.js';

export * from './common.js';

/** Connects to a lampyr server's WebSocket listener (`wsport`): connect('ws://host:port/'). */
export async function connect(target: ConnectTarget, options?: ClientOptions): Promise<Client> {
  if (typeof target !== 'string')
    throw new ConnectError('TCP ({host, port}) needs Node; in a browser connect to a ws:// or wss:// URL');
  if (!isWebSocketUrl(parseUrl(target))) throw new ConnectError(`${target}: a browser connects to ws:// or wss:// URLs only`);
  const WS = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (!WS) throw new ConnectError('this environment has no WebSocket');
  return openClient(
    wsTransport(target, (url) => new WS(url)),
    options,
  );
}
