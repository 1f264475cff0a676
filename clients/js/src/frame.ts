// Firefly frames (docs/protocol.md): a 17-byte big-endian header, then the body.
//   0  4 x u8  head bytes (protocol.head)
//   4  u8      proto_version
//   5  u32     server_version
//   9  u32     length = body length + 4
//  13  u32     command id
import { ProtocolError, TooLargeError } from './errors.js';

export const HEADER_SIZE = 17;
// Bytes 0..8 are the same in every frame of a connection.
const PREFIX_SIZE = 9;
const MAX_U32 = 0xffffffff;

export interface Frame {
  command: number;
  body: Uint8Array;
}

export interface FrameFormat {
  /** The 4 head bytes (protocol.head). */
  head: ArrayLike<number>;
  protoVersion: number;
  serverVersion: number;
}

function checkByte(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 255) throw new RangeError(`${what} must be an integer 0..255`);
  return value;
}

export function checkU32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) throw new RangeError(`${what} must be an integer 0..4294967295`);
  return value;
}

// The fixed first 9 bytes, validated once per connection.
export function framePrefix(format: FrameFormat): Uint8Array {
  if (format.head.length !== 4) throw new RangeError('head must have exactly 4 bytes');
  const prefix = new Uint8Array(PREFIX_SIZE);
  for (let i = 0; i < 4; i++) prefix[i] = checkByte(format.head[i] ?? -1, `head[${i}]`);
  prefix[4] = checkByte(format.protoVersion, 'protoVersion');
  new DataView(prefix.buffer).setUint32(5, checkU32(format.serverVersion, 'serverVersion'));
  return prefix;
}

export function encodeFrame(prefix: Uint8Array, command: number, body: Uint8Array, maxBody: number): Uint8Array {
  checkU32(command, 'command');
  if (body.length > maxBody) throw new TooLargeError(body.length, maxBody);
  const frame = new Uint8Array(HEADER_SIZE + body.length);
  frame.set(prefix, 0);
  const view = new DataView(frame.buffer);
  view.setUint32(9, body.length + 4);
  view.setUint32(13, command);
  frame.set(body, HEADER_SIZE);
  return frame;
}

// Checks the bytes of a header present so far (as the server does: garbage is
// refused as soon as its first wrong byte arrives, not when 17 bytes did).
function checkPrefix(prefix: Uint8Array, header: Uint8Array, from: number, to: number): void {
  for (let i = Math.min(from, PREFIX_SIZE); i < Math.min(to, PREFIX_SIZE); i++) {
    if (header[i] !== prefix[i]) {
      if (i < 4) throw new ProtocolError('bad_head', `head byte ${i} is ${header[i]}, expected ${prefix[i]}`);
      throw new ProtocolError('bad_version', i === 4 ? 'proto_version differs' : 'server_version differs');
    }
  }
}

function bodyLength(header: Uint8Array, maxBody: number): number {
  const length = new DataView(header.buffer, header.byteOffset, HEADER_SIZE).getUint32(9);
  if (length < 4) throw new ProtocolError('bad_length', `length field ${length} < 4`);
  if (length - 4 > maxBody) throw new ProtocolError('too_large', `frame body of ${length - 4} bytes is over ${maxBody}`);
  return length - 4;
}

function commandOf(header: Uint8Array): number {
  return new DataView(header.buffer, header.byteOffset, HEADER_SIZE).getUint32(13);
}

function asPlainBytes(chunk: Uint8Array): Uint8Array {
  // A Node Buffer's slice() does not copy; a plain Uint8Array view's does.
  return Object.getPrototypeOf(chunk) === Uint8Array.prototype
    ? chunk
    : new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

// Reassembles frames from a byte stream cut anywhere (TCP). Memory is bounded
// by HEADER_SIZE + maxBody; the body buffer is allocated once its length is
// known and valid, so a huge length field costs nothing. After a ProtocolError
// the stream cannot be re-synchronised: every later push throws it again.
export class FrameDecoder {
  private readonly header = new Uint8Array(HEADER_SIZE);
  private headerFill = 0;
  private body: Uint8Array | null = null;
  private bodyFill = 0;
  private failure: ProtocolError | null = null;

  constructor(
    private readonly prefix: Uint8Array,
    private readonly maxBody: number,
  ) {}

  /** Frames completed by this chunk, in order. Throws ProtocolError on bad input. */
  push(chunk: Uint8Array): Frame[] {
    if (this.failure) throw this.failure;
    try {
      return this.consume(asPlainBytes(chunk));
    } catch (e) {
      if (e instanceof ProtocolError) this.failure = e;
      throw e;
    }
  }

  private consume(data: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let pos = 0;
    while (pos < data.length) {
      if (this.body === null) {
        const take = Math.min(HEADER_SIZE - this.headerFill, data.length - pos);
        this.header.set(data.subarray(pos, pos + take), this.headerFill);
        checkPrefix(this.prefix, this.header, this.headerFill, this.headerFill + take);
        this.headerFill += take;
        pos += take;
        if (this.headerFill < HEADER_SIZE) break;
        this.body = new Uint8Array(bodyLength(this.header, this.maxBody));
        this.bodyFill = 0;
      }
      const take = Math.min(this.body.length - this.bodyFill, data.length - pos);
      this.body.set(data.subarray(pos, pos + take), this.bodyFill);
      this.bodyFill += take;
      pos += take;
      if (this.bodyFill === this.body.length) {
        frames.push({ command: commandOf(this.header), body: this.body });
        this.body = null;
        this.headerFill = 0;
      }
    }
    return frames;
  }
}

// One WebSocket message must be exactly one frame (DESIGN §3a).
export function decodeMessage(prefix: Uint8Array, maxBody: number, message: Uint8Array): Frame {
  const bytes = asPlainBytes(message);
  if (bytes.length < HEADER_SIZE) throw new ProtocolError('bad_message', `message of ${bytes.length} bytes is shorter than a header`);
  checkPrefix(prefix, bytes, 0, HEADER_SIZE);
  const length = bodyLength(bytes, maxBody);
  if (HEADER_SIZE + length !== bytes.length)
    throw new ProtocolError('bad_message', `message of ${bytes.length} bytes holds a frame of ${HEADER_SIZE + length}`);
  return { command: commandOf(bytes), body: bytes.slice(HEADER_SIZE) };
}
