/**
 * SOCKS5 (RFC 1928), the part a CONNECT proxy needs: no authentication,
 * IPv4 destinations. Byte parsing, and a reader that feeds it, so the
 * reference NF's `socks5` mode and the load client's `--socks5` share it
 * and it is tested without sockets.
 *
 * The proxy's replies carry 0.0.0.0:0 as the bound address (RFC 1928 lets
 * the server choose): the real one is the NF's own port for the backend
 * connection, which differs on every node, and a replicated NF must write
 * the same bytes everywhere.
 *
 * @module
 */

/** Reply codes (RFC 1928 section 6) the proxy uses. */
export const SOCKS_OK = 0;
export const SOCKS_GENERAL_FAILURE = 1;
export const SOCKS_REFUSED = 5;
export const SOCKS_COMMAND_NOT_SUPPORTED = 7;
export const SOCKS_ADDRESS_NOT_SUPPORTED = 8;

/** The client's greeting: `undefined` until it is all there. */
export function parseGreeting(
  bytes: Uint8Array,
): { consumed: number; noAuth: boolean } | undefined {
  if (bytes.length < 2) return undefined;
  if (bytes[0] !== 5) return { consumed: bytes.length, noAuth: false };
  const count = bytes[1]!;
  if (bytes.length < 2 + count) return undefined;
  return { consumed: 2 + count, noAuth: bytes.subarray(2, 2 + count).includes(0) };
}

/** A CONNECT request: the destination, or the reply code refusing it. */
export type SocksRequest =
  | { consumed: number; hostname: string; port: number }
  | { consumed: number; refuse: number };

/**
 * The client's request: `undefined` until it is all there.
 *
 * @example
 * ```ts
 * parseRequest(new Uint8Array([5, 1, 0, 1, 10, 77, 0, 2, 0x23, 0x28])); // { consumed: 10, hostname: "10.77.0.2", port: 9000 }
 * ```
 */
export function parseRequest(bytes: Uint8Array): SocksRequest | undefined {
  if (bytes.length < 4) return undefined;
  if (bytes[0] !== 5) return { consumed: bytes.length, refuse: SOCKS_GENERAL_FAILURE };
  const type = bytes[3]!;
  const length = type === 1 ? 4 : type === 4 ? 16 : type === 3 ? 1 + (bytes[4] ?? 255) : -1;
  if (length < 0) return { consumed: bytes.length, refuse: SOCKS_ADDRESS_NOT_SUPPORTED };
  if (type === 3 && bytes.length < 5) return undefined;
  const consumed = 4 + length + 2;
  if (bytes.length < consumed) return undefined;
  if (bytes[1] !== 1) return { consumed, refuse: SOCKS_COMMAND_NOT_SUPPORTED };
  // Names would be resolved on every node, perhaps differently: IPv4 only.
  if (type !== 1) return { consumed, refuse: SOCKS_ADDRESS_NOT_SUPPORTED };
  const port = (bytes[8]! << 8) | bytes[9]!;
  return { consumed, hostname: [...bytes.subarray(4, 8)].join("."), port };
}

/** The proxy's reply, bound address 0.0.0.0:0 (see the module comment). */
export function reply(code: number): Uint8Array {
  return new Uint8Array([5, code, 0, 1, 0, 0, 0, 0, 0, 0]);
}

/** The client's greeting (no authentication) and CONNECT request, as one write. */
export function connectRequest(hostname: string, port: number): Uint8Array {
  const octets = hostname.split(".").map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255)) {
    throw new RangeError(`Invalid SOCKS5 destination "${hostname}": use an IPv4 address`);
  }
  return new Uint8Array([5, 1, 0, 5, 1, 0, 1, ...octets, port >> 8, port & 0xff]);
}

/**
 * The proxy's two answers to `connectRequest` (method choice, then reply):
 * `undefined` until both are there, else the reply code and bytes used.
 */
export function parseAnswers(bytes: Uint8Array): { consumed: number; code: number } | undefined {
  if (bytes.length < 2) return undefined;
  if (bytes[0] !== 5 || bytes[1] !== 0) return { consumed: 2, code: SOCKS_GENERAL_FAILURE };
  if (bytes.length < 2 + 10) return undefined;
  return { consumed: 12, code: bytes[3]! };
}

/**
 * Reads a connection message by message: each `next` reads until `parse`
 * finds a whole one, and keeps what came after it for the next (or `rest`).
 *
 * @example
 * ```ts
 * const reader = new MessageReader(conn);
 * const greeting = await reader.next(parseGreeting); // undefined: the peer closed first
 * ```
 */
export class MessageReader {
  #pending = new Uint8Array();
  readonly #conn: { read(buffer: Uint8Array): Promise<number | null> };

  constructor(conn: { read(buffer: Uint8Array): Promise<number | null> }) {
    this.#conn = conn;
  }

  /** The next message `parse` recognises; undefined if the peer closed first. */
  async next<T extends { consumed: number }>(
    parse: (bytes: Uint8Array) => T | undefined,
  ): Promise<T | undefined> {
    const buffer = new Uint8Array(512);
    let message;
    while ((message = parse(this.#pending)) === undefined) {
      const n = await this.#conn.read(buffer);
      if (n === null) return undefined;
      const joined = new Uint8Array(this.#pending.length + n);
      joined.set(this.#pending);
      joined.set(buffer.subarray(0, n), this.#pending.length);
      this.#pending = joined;
    }
    this.#pending = this.#pending.subarray(message.consumed);
    return message;
  }

  /** Bytes read past the last message. */
  rest(): Uint8Array {
    return this.#pending;
  }
}
