// Every failure the client reports is a LampyrError; `kind` says which one,
// so callers can switch on a string instead of importing every class.

export type ErrorKind =
  | 'server' // the server answered with the protocol's error reply
  | 'timeout' // no reply within the request's timeout
  | 'declined' // the server answered later requests and not this one
  | 'connection_lost' // the connection dropped before the reply came
  | 'closed' // close() was called, or the client gave up reconnecting
  | 'too_large' // the body is over the client's maxBody: nothing was sent
  | 'overloaded' // too many unanswered requests or unsent bytes: nothing was sent
  | 'protocol' // the peer sent something that is not a valid frame
  | 'connect' // the connection could not be opened
  | 'unsupported'; // e.g. heartbeat() without a heartbeat command

export class LampyrError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = new.target.name;
  }
}

// The protocol's error codes (docs/protocol.md "Error reply").
export const ErrorCode = {
  UNKNOWN_COMMAND: 1,
  HANDLER_ERROR: 2,
  TIMEOUT: 3,
  UNAVAILABLE: 4,
  OVERLOADED: 5,
} as const;

// The server's error reply: {"code","error","command","message"}.
export class ServerError extends LampyrError {
  /** Stable number from the protocol (ErrorCode). 0 if the reply was not readable. */
  readonly code: number;
  /** Stable name of the code, e.g. "unknown_command". */
  readonly error: string;
  /** Command id of the request that failed. */
  readonly command: number;
  /** The server's human-readable detail (do not parse). */
  readonly detail: string;
  constructor(code: number, error: string, command: number, detail: string) {
    super('server', `command ${command}: ${error} (${code})${detail ? `: ${detail}` : ''}`);
    this.code = code;
    this.error = error;
    this.command = command;
    this.detail = detail;
  }
}

export class TimeoutError extends LampyrError {
  readonly command: number;
  readonly timeoutMs: number;
  constructor(command: number, timeoutMs: number) {
    super('timeout', `command ${command}: no reply within ${timeoutMs} ms`);
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
}

export class DeclinedError extends LampyrError {
  readonly command: number;
  constructor(command: number) {
    super('declined', `command ${command}: the server declined to reply (a later request was answered first)`);
    this.command = command;
  }
}

export class ConnectionLostError extends LampyrError {
  readonly reason: string;
  constructor(reason: string, cause?: unknown) {
    super('connection_lost', `connection lost: ${reason}`, cause === undefined ? undefined : { cause });
    this.reason = reason;
  }
}

export class ClosedError extends LampyrError {
  constructor(message = 'the client is closed') {
    super('closed', message);
  }
}

export class TooLargeError extends LampyrError {
  readonly size: number;
  readonly max: number;
  constructor(size: number, max: number) {
    super('too_large', `body of ${size} bytes is over the limit of ${max} bytes`);
    this.size = size;
    this.max = max;
  }
}

export class OverloadedError extends LampyrError {
  constructor(message: string) {
    super('overloaded', message);
  }
}

export class ProtocolError extends LampyrError {
  /** bad_head, bad_version, bad_length, too_large, bad_message, text_message */
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('protocol', `${reason}: ${message}`);
    this.reason = reason;
  }
}

export class ConnectError extends LampyrError {
  constructor(message: string, cause?: unknown) {
    super('connect', message, cause === undefined ? undefined : { cause });
  }
}
