// A transport is one connection that carries whole frames both ways. The
// client owns at most one at a time and makes a new one to reconnect.
import type { Frame } from './frame.js';

export interface TransportEvents {
  /** A whole frame arrived. */
  onFrame(frame: Frame): void;
  /** The connection ended (by the peer, an error, or bad input). Called at most once, never after close(). */
  onClosed(reason: string, error?: Error): void;
}

export interface Transport {
  /** Queues one encoded frame. */
  send(frame: Uint8Array): void;
  /** Bytes queued and not yet handed to the network. */
  readonly bufferedAmount: number;
  /** Ends the connection; onClosed is not called. Resolves once it is closed. */
  close(): Promise<void>;
}

export interface FrameLimits {
  /** The 9 fixed header bytes (head, proto_version, server_version). */
  prefix: Uint8Array;
  /** Largest body accepted from the server. */
  maxIncomingBody: number;
}

/** Opens one connection; resolves once it is open. The signal aborts the attempt. */
export type TransportFactory = (events: TransportEvents, limits: FrameLimits, signal: AbortSignal) => Promise<Transport>;
