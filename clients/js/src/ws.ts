// WebSocket transport: one binary message carries exactly one frame (DESIGN
// §3a). Written against the WHATWG WebSocket interface, which both the
// browser's WebSocket and Node's `ws` package implement; the constructor is
// passed in, so this file imports nothing.
import { ConnectError, ProtocolError } from './errors.js';
import { decodeMessage, HEADER_SIZE } from './frame.js';
import type { FrameLimits, Transport, TransportEvents, TransportFactory } from './transport.js';

// The part of the WHATWG WebSocket this transport uses.
export interface WebSocketLike {
  binaryType: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}

/** Makes a socket; `maxPayload` is a hint for implementations that take options (ws). */
export type WebSocketMaker = (url: string, maxPayload: number) => WebSocketLike;

const CLOSED = 3;
// RFC 6455 close codes the client sends when the server breaks the rules.
const UNSUPPORTED_DATA = 1003;
const POLICY_VIOLATION = 1008;
const MESSAGE_TOO_BIG = 1009;

class WsTransport implements Transport {
  private ended = false;
  private closedWaiters: Array<() => void> = [];

  constructor(
    private readonly ws: WebSocketLike,
    private readonly events: TransportEvents,
    private readonly limits: FrameLimits,
  ) {
    ws.onmessage = (ev) => this.onMessage(ev.data);
    ws.onerror = () => {}; // always followed by onclose, which carries the code
    ws.onclose = (ev) => {
      for (const w of this.closedWaiters.splice(0)) w();
      this.end(`closed by the server (code ${ev.code}${ev.reason ? `: ${ev.reason}` : ''})`);
    };
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(frame: Uint8Array): void {
    if (!this.ended) this.ws.send(frame);
  }

  close(): Promise<void> {
    this.ended = true;
    if (this.ws.readyState === CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.closedWaiters.push(resolve);
      this.ws.close(1000);
    });
  }

  private onMessage(data: unknown): void {
    if (this.ended) return;
    let frame;
    try {
      if (!(data instanceof ArrayBuffer)) throw new ProtocolError('text_message', 'a text message is not a frame');
      frame = decodeMessage(this.limits.prefix, this.limits.maxIncomingBody, new Uint8Array(data));
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError('bad_message', String(e));
      const code =
        err.reason === 'text_message' ? UNSUPPORTED_DATA : err.reason === 'too_large' ? MESSAGE_TOO_BIG : POLICY_VIOLATION;
      this.ws.close(code);
      this.end(`protocol error: ${err.message}`, err);
      return;
    }
    this.events.onFrame(frame);
  }

  private end(reason: string, error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.events.onClosed(reason, error);
  }
}

export function wsTransport(url: string, make: WebSocketMaker): TransportFactory {
  return (events, limits, signal) =>
    new Promise<Transport>((resolve, reject) => {
      let ws: WebSocketLike;
      try {
        ws = make(url, HEADER_SIZE + limits.maxIncomingBody);
      } catch (e) {
        reject(new ConnectError(`cannot connect to ${url}: ${e instanceof Error ? e.message : String(e)}`, e));
        return;
      }
      ws.binaryType = 'arraybuffer';
      const fail = (why: string) => {
        signal.removeEventListener('abort', abort);
        ws.onopen = ws.onclose = null;
        ws.onerror = () => {}; // ws (Node) reports the aborted handshake as an error event
        ws.close();
        reject(new ConnectError(`cannot connect to ${url}: ${why}`));
      };
      const abort = () => fail(signal.reason instanceof Error ? signal.reason.message : 'aborted');
      if (signal.aborted) return abort();
      signal.addEventListener('abort', abort, { once: true });
      ws.onerror = () => {}; // the browser tells nothing more; onclose follows
      ws.onclose = (ev) => fail(`closed before it opened (code ${ev.code})`);
      ws.onopen = () => {
        signal.removeEventListener('abort', abort);
        ws.onopen = null;
        resolve(new WsTransport(ws, events, limits));
      };
    });
}
