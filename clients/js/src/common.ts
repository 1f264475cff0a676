// What both entry points (browser: index.ts, Node: node.ts) export.
import { Client, type ClientOptions } from './client.js';
import type { TransportFactory } from './transport.js';

export * from './errors.js';
export {
  Client,
  type ClientEvents,
  type ClientOptions,
  type ClientState,
  type CloseEvent,
  type PushHandler,
  type ReconnectEvent,
  type ReconnectingEvent,
  type RequestOptions,
  type SessionLostEvent,
} from './client.js';
export { decodeMessage, encodeFrame, FrameDecoder, framePrefix, HEADER_SIZE, type Frame, type FrameFormat } from './frame.js';
export type { FrameLimits, Transport, TransportEvents, TransportFactory } from './transport.js';
export { wsTransport, type WebSocketLike, type WebSocketMaker } from './ws.js';

/** A ws:// / wss:// URL (tcp://host:port in Node), or {host, port} for TCP (Node only). */
export type ConnectTarget = string | { host?: string; port: number };

/** Opens a client over any transport; resolves once the first connection is up. */
export async function openClient(factory: TransportFactory, options?: ClientOptions): Promise<Client> {
  const client = new Client(factory, options);
  await client.start();
  return client;
}
