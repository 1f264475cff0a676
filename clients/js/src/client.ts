// The session logic shared by every transport: matching replies to requests,
// timeouts, the heartbeat, reconnecting, events.
//
// Matching rule (docs/protocol.md: replies leave in request order, a handler
// may decline, pushes may interleave with any command id). The protocol does
// not mark a frame as reply or push, so:
//   - a frame with command C is the reply to the OLDEST unanswered request
//     with command C (the error reply: the request named by its "command");
//   - the requests sent before that one are still unanswered, and since
//     replies keep request order they never will be: the server declined
//     them (DeclinedError);
//   - a frame that matches no unanswered request is a push.
// A push that uses the id of a request still waiting for its reply cannot be
// told from that reply; games use distinct ids for pushes (the room plugin
// pushes 110/111, its requests are 100..104). A request that timed out stays
// in the queue as a tombstone, so its late reply is swallowed instead of being
// taken for the reply to a later request with the same id.
import {
  ClosedError,
  ConnectError,
  ConnectionLostError,
  DeclinedError,
  LampyrError,
  OverloadedError,
  ServerError,
  TimeoutError,
} from './errors.js';
import { checkU32, encodeFrame, framePrefix, type Frame } from './frame.js';
import type { FrameLimits, Transport, TransportFactory } from './transport.js';

export interface ClientOptions {
  /** protocol.head of the server (default [0, 0, 0, 0]). */
  head?: ArrayLike<number>;
  /** protocol.proto_version (default 0). */
  protoVersion?: number;
  /** protocol.server_version (default 0). */
  serverVersion?: number;
  /** protocol.error_command (default 0xFFFFFFFF). */
  errorCommand?: number;
  /** protocol.heartbeat_command; 0 (default) = no heartbeat. */
  heartbeatCommand?: number;
  /** Period of the automatic heartbeat when heartbeatCommand is set (default 30000; 0 = only heartbeat()). */
  heartbeatIntervalMs?: number;
  /** Largest request body; larger ones are refused with TooLargeError (default 65536 = protocol.max_body). */
  maxBody?: number;
  /** Largest frame body accepted from the server; more closes the connection (default 4 MiB). */
  maxIncomingBody?: number;
  /** Unanswered plus unsent requests at most; more are refused with OverloadedError (default 4096). */
  maxPending?: number;
  /** Bytes the transport may hold unsent; a request that would pass it is refused (default 4 MiB). */
  maxBufferedBytes?: number;
  /** Default request timeout (default 15000; the server's own forward timeout is 10 s). 0 = none. */
  requestTimeoutMs?: number;
  /** Timeout of one connection attempt (default 5000). */
  connectTimeoutMs?: number;
  /** Reconnect after the connection is lost (default true). */
  reconnect?: boolean;
  /** First reconnect delay (default 100); it doubles per failed attempt up to reconnectMaxMs. */
  reconnectMinMs?: number;
  /** Longest reconnect delay (default 5000). */
  reconnectMaxMs?: number;
  /** Attempts per loss before the client gives up and closes (default Infinity). */
  reconnectAttempts?: number;
}

export interface RequestOptions {
  /** Overrides ClientOptions.requestTimeoutMs for this request; 0 = none. */
  timeoutMs?: number;
}

export interface SessionLostEvent {
  /** Why the connection ended ("closed by the server", "protocol error: ...", "heartbeat: ..."). */
  reason: string;
  error?: Error;
}
export interface ReconnectingEvent {
  attempt: number;
  delayMs: number;
  /** Why the previous attempt failed (absent for the first attempt). */
  error?: Error;
}
export interface ReconnectEvent {
  /** Attempts it took. */
  attempt: number;
}
export interface CloseEvent {
  reason: string;
}

export type PushHandler = (body: Uint8Array, command: number) => void;

export interface ClientEvents {
  /** The connection (and with it the server session: groups, rooms, bindings) is gone. */
  sessionlost: (ev: SessionLostEvent) => void;
  /** A reconnect attempt is scheduled. */
  reconnecting: (ev: ReconnectingEvent) => void;
  /** A new connection is up: a NEW server session, rebuild what the old one had (join rooms...). */
  reconnect: (ev: ReconnectEvent) => void;
  /** The client is closed for good (close(), reconnect off, or attempts exhausted). */
  close: (ev: CloseEvent) => void;
  /** Every push, whatever its command id (after the per-command handlers). */
  push: (command: number, body: Uint8Array) => void;
  /** A handler of this client threw; without a listener it goes to console.error. */
  error: (error: unknown) => void;
}

export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed';

interface Pending {
  command: number;
  /** The encoded frame while it waits for a connection; null once sent. */
  frame: Uint8Array | null;
  resolve: (body: Uint8Array) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Settled (timed out): stays in the queue only to swallow its late reply. */
  done: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function positive(value: number | undefined, fallback: number, what: string): number {
  const v = value ?? fallback;
  if (!(v >= 0) || Number.isNaN(v)) throw new RangeError(`${what} must be >= 0`);
  return v;
}

// A small FIFO with O(1) removal at the front (replies arrive in order).
class Queue<T> {
  private items: T[] = [];
  private head = 0;
  get length(): number {
    return this.items.length - this.head;
  }
  at(i: number): T {
    return this.items[this.head + i] as T;
  }
  push(item: T): void {
    this.items.push(item);
  }
  /** Removes and returns the first n items. */
  take(n: number): T[] {
    const out = this.items.slice(this.head, this.head + n);
    this.head += n;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return out;
  }
  remove(item: T): boolean {
    const i = this.items.indexOf(item, this.head);
    if (i < 0) return false;
    this.items.splice(i, 1);
    return true;
  }
  drain(): T[] {
    return this.take(this.length);
  }
}

export class Client {
  private readonly prefix: Uint8Array;
  private readonly limits: FrameLimits;
  private readonly errorCommand: number;
  private readonly heartbeatCommand: number;
  private readonly heartbeatIntervalMs: number;
  private readonly maxBody: number;
  private readonly maxPending: number;
  private readonly maxBufferedBytes: number;
  private readonly requestTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly reconnect: boolean;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly reconnectAttempts: number;

  private stateValue: ClientState = 'connecting';
  private transport: Transport | null = null;
  private generation = 0; // of the current transport: events of an older one are ignored
  private connecting: AbortController | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  private heartbeatOutstanding = false;
  private heardSinceTick = false;
  private closing: Promise<void> | null = null;

  private readonly sent = new Queue<Pending>(); // in send order, waiting for replies
  private readonly unsent = new Queue<Pending>(); // made while disconnected
  private readonly pushHandlers = new Map<number, Set<PushHandler>>();
  private readonly listeners: { [K in keyof ClientEvents]: Set<ClientEvents[K]> } = {
    sessionlost: new Set(),
    reconnecting: new Set(),
    reconnect: new Set(),
    close: new Set(),
    push: new Set(),
    error: new Set(),
  };

  constructor(
    private readonly factory: TransportFactory,
    options: ClientOptions = {},
  ) {
    this.prefix = framePrefix({
      head: options.head ?? [0, 0, 0, 0],
      protoVersion: options.protoVersion ?? 0,
      serverVersion: options.serverVersion ?? 0,
    });
    this.errorCommand = checkU32(options.errorCommand ?? 0xffffffff, 'errorCommand');
    this.heartbeatCommand = checkU32(options.heartbeatCommand ?? 0, 'heartbeatCommand');
    if (this.heartbeatCommand !== 0 && this.heartbeatCommand === this.errorCommand)
      throw new RangeError('heartbeatCommand must differ from errorCommand');
    this.heartbeatIntervalMs = positive(options.heartbeatIntervalMs, 30000, 'heartbeatIntervalMs');
    this.maxBody = positive(options.maxBody, 65536, 'maxBody');
    this.limits = {
      prefix: this.prefix,
      maxIncomingBody: positive(options.maxIncomingBody, 4 << 20, 'maxIncomingBody'),
    };
    this.maxPending = positive(options.maxPending, 4096, 'maxPending');
    this.maxBufferedBytes = positive(options.maxBufferedBytes, 4 << 20, 'maxBufferedBytes');
    this.requestTimeoutMs = positive(options.requestTimeoutMs, 15000, 'requestTimeoutMs');
    this.connectTimeoutMs = positive(options.connectTimeoutMs, 5000, 'connectTimeoutMs');
    this.reconnect = options.reconnect ?? true;
    this.reconnectMinMs = positive(options.reconnectMinMs, 100, 'reconnectMinMs');
    this.reconnectMaxMs = Math.max(this.reconnectMinMs, positive(options.reconnectMaxMs, 5000, 'reconnectMaxMs'));
    this.reconnectAttempts = positive(options.reconnectAttempts, Infinity, 'reconnectAttempts');
  }

  get state(): ClientState {
    return this.stateValue;
  }

  /** Opens the first connection. Rejects with ConnectError (no retry: the caller decides). */
  async start(): Promise<void> {
    if (this.stateValue !== 'connecting' || this.generation !== 0) throw new LampyrError('closed', 'start() runs once');
    try {
      this.attach(await this.open());
    } catch (e) {
      this.finish(`connect failed: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    }
  }

  /**
   * Sends a request; resolves with the reply body, rejects with a LampyrError:
   * ServerError (the error reply, with its code), TimeoutError, DeclinedError,
   * ConnectionLostError, ClosedError, TooLargeError, OverloadedError.
   * Made while reconnecting, it waits for the new connection (its timeout runs).
   */
  request(command: number, body: Uint8Array | string = new Uint8Array(0), options: RequestOptions = {}): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      if (this.stateValue === 'closed') throw new ClosedError();
      const bytes = typeof body === 'string' ? encoder.encode(body) : body;
      const frame = encodeFrame(this.prefix, command, bytes, this.maxBody);
      if (this.sent.length + this.unsent.length >= this.maxPending)
        throw new OverloadedError(`${this.maxPending} requests are already waiting (maxPending)`);
      const p: Pending = { command, frame, resolve, reject, timer: undefined, done: false };
      const timeoutMs = positive(options.timeoutMs, this.requestTimeoutMs, 'timeoutMs');
      if (timeoutMs > 0 && timeoutMs !== Infinity) p.timer = setTimeout(() => this.onTimeout(p, timeoutMs), timeoutMs);
      if (this.transport) this.transmit(p);
      else this.unsent.push(p);
    });
  }

  /**
   * One heartbeat now (needs heartbeatCommand, answered by the host itself);
   * resolves with the round trip in ms. Its reply keeps its place in the
   * reply order, so it also waits for the requests sent before it.
   */
  async heartbeat(options: RequestOptions = {}): Promise<number> {
    if (this.heartbeatCommand === 0) throw new LampyrError('unsupported', 'heartbeat() needs the heartbeatCommand option');
    const t0 = performance.now();
    await this.request(this.heartbeatCommand, new Uint8Array(0), options);
    return performance.now() - t0;
  }

  /** A handler for pushes with this command id; returns a function that removes it. */
  on(command: number, handler: PushHandler): () => void;
  /** A listener for a client event; returns a function that removes it. */
  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void;
  on(what: number | keyof ClientEvents, fn: PushHandler | ClientEvents[keyof ClientEvents]): () => void {
    if (typeof what === 'number') {
      checkU32(what, 'command');
      let set = this.pushHandlers.get(what);
      if (!set) this.pushHandlers.set(what, (set = new Set()));
      const handler = fn as PushHandler;
      set.add(handler);
      return () => {
        set.delete(handler);
        if (set.size === 0 && this.pushHandlers.get(what) === set) this.pushHandlers.delete(what);
      };
    }
    const set = this.listeners[what] as Set<unknown> | undefined;
    if (!set) throw new RangeError(`unknown event ${String(what)}`);
    set.add(fn);
    return () => set.delete(fn);
  }

  /** Closes for good: rejects what is waiting with ClosedError, stops reconnecting. */
  close(): Promise<void> {
    if (!this.closing) this.closing = this.finish('closed by the client');
    return this.closing;
  }

  // --- connection lifecycle ---------------------------------------------------

  private async open(): Promise<Transport> {
    const abort = new AbortController();
    this.connecting = abort;
    const gen = this.generation + 1;
    const timer = setTimeout(
      () => abort.abort(new Error(`timed out after ${this.connectTimeoutMs} ms`)),
      this.connectTimeoutMs,
    );
    try {
      const events = {
        onFrame: (frame: Frame) => {
          if (gen === this.generation) this.guard(() => this.onFrame(frame));
        },
        onClosed: (reason: string, error?: Error) => {
          if (gen === this.generation) this.guard(() => this.lost(reason, error));
        },
      };
      return await this.factory(events, this.limits, abort.signal);
    } finally {
      clearTimeout(timer);
      if (this.connecting === abort) this.connecting = null;
    }
  }

  private attach(transport: Transport): void {
    this.generation++;
    this.transport = transport;
    this.stateValue = 'open';
    this.heardSinceTick = false;
    this.heartbeatOutstanding = false;
    if (this.heartbeatCommand !== 0 && this.heartbeatIntervalMs > 0)
      this.heartbeatTimer = setInterval(() => this.guard(() => this.onHeartbeatTick()), this.heartbeatIntervalMs);
    for (const p of this.unsent.drain()) this.transmit(p);
  }

  private detach(): Transport | null {
    const t = this.transport;
    this.transport = null;
    this.generation++;
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
    return t;
  }

  // The connection ended without close(): the server session is gone with it.
  private lost(reason: string, error?: Error): void {
    if (this.stateValue !== 'open') return;
    void this.detach()?.close();
    const failure = new ConnectionLostError(reason, error);
    for (const p of this.sent.drain()) this.settle(p, failure);
    this.stateValue = 'reconnecting';
    this.emit('sessionlost', error ? { reason, error } : { reason });
    if (this.stateValue !== 'reconnecting') return; // a listener closed the client
    if (!this.reconnect) {
      this.closing ??= this.finish(`connection lost: ${reason}`);
      return;
    }
    this.scheduleReconnect(1);
  }

  private scheduleReconnect(attempt: number, error?: Error): void {
    if (attempt > this.reconnectAttempts) {
      this.closing ??= this.finish(`gave up reconnecting after ${attempt - 1} attempts`);
      return;
    }
    // Exponential backoff with jitter, so clients dropped together do not return together.
    const base = Math.min(this.reconnectMaxMs, this.reconnectMinMs * 2 ** Math.min(attempt - 1, 30));
    const delayMs = Math.round(base * (0.5 + Math.random() / 2));
    this.emit('reconnecting', error ? { attempt, delayMs, error } : { attempt, delayMs });
    if (this.stateValue !== 'reconnecting') return;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.open().then(
        (transport) => {
          if (this.stateValue !== 'reconnecting') {
            void transport.close();
            return;
          }
          this.attach(transport);
          this.emit('reconnect', { attempt });
        },
        (e: unknown) => {
          if (this.stateValue !== 'reconnecting') return;
          this.scheduleReconnect(attempt + 1, e instanceof Error ? e : new ConnectError(String(e)));
        },
      );
    }, delayMs);
  }

  private async finish(reason: string): Promise<void> {
    if (this.stateValue === 'closed') return;
    this.stateValue = 'closed';
    clearTimeout(this.reconnectTimer);
    this.connecting?.abort(new Error('the client is closed'));
    const transport = this.detach();
    const failure = new ClosedError(reason === 'closed by the client' ? undefined : `the client is closed: ${reason}`);
    for (const p of this.sent.drain()) this.settle(p, failure);
    for (const p of this.unsent.drain()) this.settle(p, failure);
    this.emit('close', { reason });
    await transport?.close();
  }

  private onHeartbeatTick(): void {
    // A heartbeat still unanswered and not one frame since the last tick: the
    // peer or the path is dead even if TCP has not noticed.
    if (this.heartbeatOutstanding && !this.heardSinceTick) {
      this.lost(`heartbeat: nothing received for ${this.heartbeatIntervalMs} ms`);
      return;
    }
    this.heardSinceTick = false;
    if (this.heartbeatOutstanding) return;
    this.heartbeatOutstanding = true;
    const gen = this.generation;
    this.heartbeat({ timeoutMs: 0 }).then(
      () => {
        if (gen === this.generation) this.heartbeatOutstanding = false;
      },
      () => {}, // connection lost or closed: reported by their own events
    );
  }

  // --- requests and replies -----------------------------------------------------

  private transmit(p: Pending): void {
    const frame = p.frame as Uint8Array;
    const transport = this.transport as Transport;
    if (transport.bufferedAmount + frame.length > this.maxBufferedBytes) {
      this.settle(p, new OverloadedError(`${transport.bufferedAmount} bytes are still unsent (maxBufferedBytes)`));
      return;
    }
    p.frame = null;
    this.sent.push(p);
    transport.send(frame);
  }

  private onTimeout(p: Pending, timeoutMs: number): void {
    p.timer = undefined;
    // Unsent: it never reaches the server. Sent: it stays as a tombstone.
    if (p.frame) this.unsent.remove(p);
    this.settle(p, new TimeoutError(p.command, timeoutMs));
  }

  private settle(p: Pending, outcome: Uint8Array | Error): void {
    clearTimeout(p.timer);
    p.timer = undefined;
    if (p.done) return;
    p.done = true;
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  private onFrame(frame: Frame): void {
    this.heardSinceTick = true;
    let command = frame.command;
    let outcome: Uint8Array | Error = frame.body;
    if (command === this.errorCommand) {
      const error = this.parseErrorReply(frame.body);
      outcome = error;
      command = error.command;
    }
    const index = this.oldestWaiting(command);
    if (index < 0) {
      this.dispatchPush(frame);
      return;
    }
    const declined = this.sent.take(index + 1);
    const reply = declined.pop() as Pending;
    for (const p of declined) this.settle(p, new DeclinedError(p.command));
    this.settle(reply, outcome);
  }

  private oldestWaiting(command: number): number {
    for (let i = 0; i < this.sent.length; i++) if (this.sent.at(i).command === command) return i;
    return -1;
  }

  // {"code","error","command","message"}; an unreadable one is taken as the
  // reply to the oldest waiting request (replies keep request order).
  private parseErrorReply(body: Uint8Array): ServerError {
    let v: unknown;
    try {
      v = JSON.parse(decoder.decode(body));
    } catch {
      v = null;
    }
    const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
    const oldest = this.sent.length > 0 ? this.sent.at(0).command : this.errorCommand;
    const u32 = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
    return new ServerError(
      u32(o.code) ? (o.code as number) : 0,
      typeof o.error === 'string' ? o.error : 'unreadable_error_reply',
      u32(o.command) ? (o.command as number) : oldest,
      typeof o.message === 'string' ? o.message : '',
    );
  }

  private dispatchPush(frame: Frame): void {
    const handlers = this.pushHandlers.get(frame.command);
    if (handlers) for (const h of [...handlers]) this.guard(() => h(frame.body, frame.command));
    this.emit('push', frame.command, frame.body);
  }

  // --- events -----------------------------------------------------------------------

  private emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>): void {
    for (const fn of [...this.listeners[event]]) this.guard(() => (fn as (...a: unknown[]) => void)(...args));
  }

  // A throwing handler must not break the connection that called it.
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (this.listeners.error.size === 0) {
        console.error('lampyr-client: a handler threw:', e);
        return;
      }
      for (const l of [...this.listeners.error]) {
        try {
          l(e);
        } catch (e2) {
          console.error('lampyr-client: an error listener threw:', e2);
        }
      }
    }
  }
}
