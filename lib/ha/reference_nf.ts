/**
 * The reference network function: a small deterministic TCP server that
 * `ha` replicates. Two protocols, chosen per server:
 *
 * - `echo`: every byte received is sent back, in order. The load client
 *   checks every echoed byte, so loss, duplication and corruption anywhere on
 *   the path (including across a failover) show up end to end.
 * - `kv`: a line protocol (`SET k v`, `GET k`, `DEL k`) over one map shared by
 *   all connections. Replies depend only on the bytes received, which is what
 *   replication needs from an NF: same input, same output on every node.
 * - `proxy`: a TCP reverse proxy. Each client connection gets a connection
 *   of its own to the backend, and bytes are relayed both ways (half-closes
 *   too). Backend connections are opened one after another, in the order
 *   clients were accepted: replicas pair their NF's backend connections
 *   with the primary's by that order, so the NF keeps it deterministic.
 * - `socks5`: the same, but each client names its destination first with a
 *   SOCKS5 CONNECT (socks5.ts: no authentication, IPv4).
 *
 * @module
 */
import {
  MessageReader,
  parseGreeting,
  parseRequest,
  reply as socksReply,
  SOCKS_OK,
  SOCKS_REFUSED,
} from "./socks5.ts";

/** Protocol of the reference NF. */
export type NfMode = "echo" | "kv" | "proxy" | "socks5";

/** Options of `serveReferenceNf`. */
export interface ReferenceNfOptions {
  readonly hostname: string;
  readonly port: number;
  readonly mode?: NfMode;
  /** Where `proxy` connects (required for it). */
  readonly backend?: { readonly hostname: string; readonly port: number };
}

/** Counters of a running reference NF. */
export interface ReferenceNfStats {
  readonly connectionsAccepted: number;
  readonly connectionsOpen: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
}

/** A running reference NF; `close()` stops it and closes every connection. */
export interface ReferenceNf extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  stats(): ReferenceNfStats;
  close(): Promise<void>;
}

const READ_BUFFER_BYTES = 64 * 1024;
/** Longest accepted `kv` line; a longer one gets `ERR` and closes the connection. */
export const KV_LINE_BYTES_MAX = 4096;

/**
 * Starts the reference NF on `hostname:port` (port 0 picks a free one).
 *
 * @example
 * ```ts
 * await using nf = serveReferenceNf({ hostname: "127.0.0.1", port: 0 });
 * console.log(nf.port);
 * ```
 */
export function serveReferenceNf(options: ReferenceNfOptions): ReferenceNf {
  const listener = Deno.listen({
    hostname: options.hostname,
    port: options.port,
    transport: "tcp",
  });
  const mode = options.mode ?? "echo";
  const backend = options.backend;
  if (mode === "proxy" && backend === undefined) {
    listener.close();
    throw new RangeError("A proxy NF needs a backend");
  }
  // One backend connect at a time, in accept order (see the module comment).
  let connecting: Promise<unknown> = Promise.resolve();
  const store = new Map<string, string>();
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  let accepted = 0;
  let received = 0;
  let sent = 0;
  let closed = false;

  /** Connects to `target` after every connect asked for before (accept order). */
  const connectInTurn = async (target: { hostname: string; port: number }) => {
    const turn = connecting.then(() => Deno.connect({ ...target, transport: "tcp" }));
    connecting = turn.catch(() => {});
    try {
      return await turn;
    } catch (error) {
      if (!isDisconnect(error) && !(error instanceof Deno.errors.ConnectionRefused)) throw error;
      return undefined;
    }
  };

  const proxy = async (conn: Deno.Conn) => {
    const upstream = await connectInTurn(backend!);
    // No backend: the client's connection ends, as a proxy's would.
    if (upstream === undefined) return conn.close();
    await relay(conn, upstream, new Uint8Array());
  };

  const socks = async (conn: Deno.Conn) => {
    const reader = new MessageReader(conn);
    try {
      const greeting = await reader.next(parseGreeting);
      if (greeting === undefined) return conn.close();
      if (!greeting.noAuth) {
        await writeAll(conn, new Uint8Array([5, 0xff]));
        return conn.close();
      }
      await writeAll(conn, new Uint8Array([5, 0]));
      const request = await reader.next(parseRequest);
      if (request === undefined) return conn.close();
      if ("refuse" in request) {
        await writeAll(conn, socksReply(request.refuse));
        return conn.close();
      }
      const upstream = await connectInTurn(request);
      if (upstream === undefined) {
        await writeAll(conn, socksReply(SOCKS_REFUSED));
        return conn.close();
      }
      await writeAll(conn, socksReply(SOCKS_OK));
      await relay(conn, upstream, reader.rest());
    } catch (error) {
      if (!isDisconnect(error)) throw error;
      conn.close();
    }
  };

  /** Relays both ways (half-closes too); `head`: client bytes read already. */
  const relay = async (conn: Deno.Conn, upstream: Deno.Conn, head: Uint8Array) => {
    open.add(upstream);
    if (head.length > 0) {
      received += head.length;
      await writeAll(upstream, head);
    }
    const pipe = async (from: Deno.Conn, to: Deno.Conn, count: (n: number) => void) => {
      const buffer = new Uint8Array(READ_BUFFER_BYTES);
      try {
        while (true) {
          const n = await from.read(buffer);
          if (n === null) break;
          count(n);
          await writeAll(to, buffer.subarray(0, n));
        }
        await to.closeWrite();
      } catch (error) {
        if (!isDisconnect(error)) throw error;
      }
    };
    try {
      await Promise.all([
        pipe(conn, upstream, (n) => received += n),
        pipe(upstream, conn, (n) => sent += n),
      ]);
    } finally {
      for (const c of [conn, upstream]) {
        open.delete(c);
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
    }
  };

  const serve = async (conn: Deno.Conn) => {
    if (mode === "proxy") return await proxy(conn);
    if (mode === "socks5") return await socks(conn);
    const session = mode === "kv" ? new KvSession(store) : undefined;
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    try {
      while (true) {
        const n = await conn.read(buffer);
        if (n === null) break;
        received += n;
        const reply = session === undefined
          ? buffer.subarray(0, n)
          : session.feed(buffer.subarray(0, n));
        await writeAll(conn, reply);
        sent += reply.length;
        if (session?.failed) break;
      }
    } catch (error) {
      // A peer that resets or vanishes ends its own connection only.
      if (!isDisconnect(error)) throw error;
    } finally {
      open.delete(conn);
      try {
        conn.close();
      } catch {
        // Already closed by close().
      }
    }
  };

  const acceptLoop = (async () => {
    try {
      for await (const conn of listener) {
        accepted += 1;
        open.add(conn);
        const task = serve(conn).finally(() => tasks.delete(task));
        tasks.add(task);
      }
    } catch (error) {
      if (!closed) throw error;
    }
  })();

  const address = listener.addr as Deno.NetAddr;
  const close = async () => {
    if (closed) return;
    closed = true;
    listener.close();
    for (const conn of open) {
      try {
        conn.close();
      } catch {
        // Raced with the connection's own close.
      }
    }
    await acceptLoop;
    await Promise.allSettled([...tasks]);
  };
  return {
    hostname: address.hostname,
    port: address.port,
    stats: () => ({
      connectionsAccepted: accepted,
      connectionsOpen: open.size,
      bytesReceived: received,
      bytesSent: sent,
    }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * One `kv` connection: bytes in, reply bytes out. Pure apart from the shared
 * store, so it is tested without sockets.
 *
 * @example
 * ```ts
 * const s = new KvSession(new Map());
 * new TextDecoder().decode(s.feed(new TextEncoder().encode("SET a 1\nGET a\n"))); // "OK\nVALUE 1\n"
 * ```
 */
export class KvSession {
  #store: Map<string, string>;
  #pending = "";
  #failed = false;
  #decoder = new TextDecoder();
  #encoder = new TextEncoder();

  constructor(store: Map<string, string>) {
    this.#store = store;
  }

  /** True once a line was too long: the server closes the connection. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Consumes bytes; returns the replies to every complete line in them. */
  feed(bytes: Uint8Array): Uint8Array {
    if (this.#failed) return new Uint8Array();
    this.#pending += this.#decoder.decode(bytes, { stream: true });
    let replies = "";
    let newline: number;
    while ((newline = this.#pending.indexOf("\n")) >= 0) {
      replies += this.#execute(this.#pending.slice(0, newline).replace(/\r$/, ""));
      this.#pending = this.#pending.slice(newline + 1);
    }
    if (this.#pending.length > KV_LINE_BYTES_MAX) {
      this.#failed = true;
      replies += "ERR line too long\n";
    }
    return this.#encoder.encode(replies);
  }

  #execute(line: string): string {
    const [command = "", key, ...rest] = line.split(" ");
    switch (command.toUpperCase()) {
      case "SET":
        if (key === undefined || key === "") return "ERR usage: SET key value\n";
        this.#store.set(key, rest.join(" "));
        return "OK\n";
      case "GET": {
        if (key === undefined || key === "") return "ERR usage: GET key\n";
        const value = this.#store.get(key);
        return value === undefined ? "NONE\n" : `VALUE ${value}\n`;
      }
      case "DEL":
        if (key === undefined || key === "") return "ERR usage: DEL key\n";
        return this.#store.delete(key) ? "OK\n" : "NONE\n";
      case "":
        return "";
      default:
        return `ERR unknown command "${command}"\n`;
    }
  }
}

/**
 * Writes all of `bytes` (a socket write may take only part of it).
 *
 * @example
 * ```ts
 * await writeAll(conn, new TextEncoder().encode("hello"));
 * ```
 */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/**
 * Whether an error means the peer went away (reset, broken pipe, closed).
 *
 * @example
 * ```ts
 * try { await conn.read(buf); } catch (e) { if (!isDisconnect(e)) throw e; }
 * ```
 */
export function isDisconnect(error: unknown): boolean {
  return error instanceof Deno.errors.ConnectionReset ||
    error instanceof Deno.errors.BrokenPipe ||
    error instanceof Deno.errors.ConnectionAborted ||
    error instanceof Deno.errors.BadResource ||
    error instanceof Deno.errors.Interrupted ||
    error instanceof Deno.errors.NotConnected;
}
