// Raw TCP transport (Node only): the byte stream of Firefly frames, the same
// frames the WebSocket transport sends one per message.
import { Socket } from 'node:net';

import { ConnectError, ProtocolError } from './errors.js';
import { FrameDecoder } from './frame.js';
import type { FrameLimits, Transport, TransportEvents, TransportFactory } from './transport.js';

class TcpTransport implements Transport {
  private ended = false;
  private readonly decoder: FrameDecoder;

  constructor(
    private readonly socket: Socket,
    private readonly events: TransportEvents,
    limits: FrameLimits,
  ) {
    this.decoder = new FrameDecoder(limits.prefix, limits.maxIncomingBody);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.end(`socket error: ${err.message}`, err));
    socket.on('close', () => this.end('closed by the server'));
  }

  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  send(frame: Uint8Array): void {
    if (!this.ended) this.socket.write(frame);
  }

  close(): Promise<void> {
    this.ended = true;
    if (this.socket.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.destroy();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.ended) return;
    let frames;
    try {
      frames = this.decoder.push(chunk);
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError('bad_frame', String(e));
      this.socket.destroy();
      this.end(`protocol error: ${err.message}`, err);
      return;
    }
    for (const frame of frames) {
      if (this.ended) return; // a handler closed the client
      this.events.onFrame(frame);
    }
  }

  private end(reason: string, error?: Error): void {
    if (this.ended) return;
    this.ended = true;
    this.socket.destroy();
    this.events.onClosed(reason, error);
  }
}

export function tcpTransport(host: string, port: number): TransportFactory {
  return (events, limits, signal) =>
    new Promise<Transport>((resolve, reject) => {
      const socket = new Socket();
      const fail = (err: Error) => {
        signal.removeEventListener('abort', abort);
        socket.destroy();
        reject(new ConnectError(`cannot connect to tcp://${host}:${port}: ${err.message}`, err));
      };
      const abort = () => fail(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal.aborted) return abort();
      signal.addEventListener('abort', abort, { once: true });
      socket.once('error', fail);
      socket.connect({ host, port }, () => {
        signal.removeEventListener('abort', abort);
        socket.off('error', fail);
        socket.setNoDelay(true); // requests are small and latency-bound
        resolve(new TcpTransport(socket, events, limits));
      });
    });
}
