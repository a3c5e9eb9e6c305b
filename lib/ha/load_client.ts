/**
 * The verifying load client: N concurrent connections to an echo NF, each
 * streaming deterministic pseudo-random bytes and checking every byte that
 * comes back. It is how `ha` proves "no reset, no byte lost, duplicated or
 * corrupted" end to end, and how it measures the longest stall a client saw.
 *
 * @module
 */
import { isDisconnect, writeAll } from "./reference_nf.ts";
import { connectRequest, MessageReader, parseAnswers } from "./socks5.ts";

/**
 * Period of every stream, in bytes. A prime, so it never lines up with
 * segment or chunk sizes; a loss or duplication of exactly a multiple of it
 * would go unseen (about 1 MiB at once: not a plausible TCP fault).
 */
export const PATTERN_PERIOD_BYTES = 1_048_573;
/** Largest chunk written or checked at once. */
export const CHUNK_BYTES_MAX = 64 * 1024;
/** How far (bytes) a mismatch is searched for a shifted match, to tell loss and duplication apart. */
export const RESYNC_WINDOW_BYTES = 64 * 1024;
const RESYNC_PROBE_BYTES = 32;

/**
 * The byte stream of one connection: a seeded table read at a per-connection
 * offset, so any position is available at once (verification after a shift).
 *
 * @example
 * ```ts
 * const p = new StreamPattern(7, 0);
 * const first = p.slice(0, 16);
 * ```
 */
export class StreamPattern {
  static #tables = new Map<number, Uint8Array>();
  readonly #table: Uint8Array;
  readonly #start: number;

  constructor(seed: number, connection: number) {
    this.#table = StreamPattern.#makeTable(seed >>> 0);
    this.#start = mix32((seed ^ Math.imul(connection + 1, 0x9e3779b9)) >>> 0) %
      PATTERN_PERIOD_BYTES;
  }

  static #makeTable(seed: number): Uint8Array {
    const cached = StreamPattern.#tables.get(seed);
    if (cached !== undefined) return cached;
    const table = new Uint8Array(PATTERN_PERIOD_BYTES + CHUNK_BYTES_MAX + RESYNC_WINDOW_BYTES);
    let state = seed === 0 ? 0x6d2b79f5 : seed;
    for (let i = 0; i < PATTERN_PERIOD_BYTES; i += 4) {
      state = mix32(state + 0x9e3779b9);
      table[i] = state;
      table[i + 1] = state >>> 8;
      table[i + 2] = state >>> 16;
      table[i + 3] = state >>> 24;
    }
    table.copyWithin(PATTERN_PERIOD_BYTES, 0, table.length - PATTERN_PERIOD_BYTES);
    StreamPattern.#tables.set(seed, table);
    return table;
  }

  /** Bytes `[offset, offset + length)` of the stream (a view; do not modify). */
  slice(offset: number, length: number): Uint8Array {
    if (offset < 0 || length < 0 || length > CHUNK_BYTES_MAX + RESYNC_WINDOW_BYTES) {
      throw new RangeError(`Cannot slice the pattern at "${offset}" for "${length}" bytes`);
    }
    const at = (this.#start + offset) % PATTERN_PERIOD_BYTES;
    return this.#table.subarray(at, at + length);
  }
}

function mix32(value: number): number {
  let x = value >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d);
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b);
  return (x ^ (x >>> 16)) >>> 0;
}

/** What a verifier found so far on one connection. */
export interface VerifyCounts {
  /** Bytes that matched the stream at the expected position. */
  readonly verified: number;
  /** Bytes skipped over: the echo resumed further on in the stream. */
  readonly lost: number;
  /** Bytes received again: the echo resumed earlier in the stream. */
  readonly duplicated: number;
  /** Bytes that matched nowhere nearby. */
  readonly corrupted: number;
  /** Position in the sent stream the next received byte should have. */
  readonly position: number;
}

/**
 * Checks received bytes against a stream pattern. On a mismatch it looks for
 * the received bytes a little before or after the expected position, so a
 * duplicated or lost run is counted as such instead of as corruption.
 *
 * @example
 * ```ts
 * const v = new StreamVerifier(new StreamPattern(1, 0));
 * v.feed(new StreamPattern(1, 0).slice(0, 100));
 * v.counts().verified; // 100
 * ```
 */
export class StreamVerifier {
  readonly #pattern: StreamPattern;
  #verified = 0;
  #lost = 0;
  #duplicated = 0;
  #corrupted = 0;
  #position = 0;
  /** End of the furthest run verified; bytes before it seen again are duplicates, not new. */
  #highest = 0;

  constructor(pattern: StreamPattern) {
    this.#pattern = pattern;
  }

  /** Checks the next received bytes. */
  feed(bytes: Uint8Array): void {
    let index = 0;
    while (index < bytes.length) {
      const length = Math.min(CHUNK_BYTES_MAX, bytes.length - index);
      const expected = this.#pattern.slice(this.#position, length);
      let same = 0;
      while (same < length && bytes[index + same] === expected[same]) same += 1;
      const end = this.#position + same;
      this.#verified += Math.max(0, end - Math.max(this.#position, this.#highest));
      this.#highest = Math.max(this.#highest, end);
      this.#position = end;
      index += same;
      if (same === length) continue;
      index += this.#resync(bytes.subarray(index));
    }
  }

  /** Handles a mismatch at the start of `rest`; returns how many bytes it consumed. */
  #resync(rest: Uint8Array): number {
    const probe = rest.subarray(0, Math.min(RESYNC_PROBE_BYTES, rest.length));
    if (probe.length >= 8) {
      const low = Math.max(0, this.#position - RESYNC_WINDOW_BYTES);
      const window = this.#pattern.slice(low, this.#position - low + RESYNC_WINDOW_BYTES);
      // Nearest shift first, so a short duplication is not taken for a long loss.
      for (let distance = 1; distance <= RESYNC_WINDOW_BYTES; distance++) {
        for (const shift of [-distance, distance]) {
          const at = this.#position + shift - low;
          if (at < 0 || at + probe.length > window.length) continue;
          if (probe.every((b, i) => window[at + i] === b)) {
            if (shift < 0) this.#duplicated += -shift;
            else this.#lost += shift;
            this.#position += shift;
            return 0;
          }
        }
      }
    }
    this.#corrupted += 1;
    this.#position += 1;
    return 1;
  }

  /** Counts so far. */
  counts(): VerifyCounts {
    return {
      verified: this.#verified,
      lost: this.#lost,
      duplicated: this.#duplicated,
      corrupted: this.#corrupted,
      position: this.#position,
    };
  }
}

/** Options of `runLoad`. */
export interface LoadOptions {
  readonly hostname: string;
  readonly port: number;
  /** Concurrent connections (default 8). */
  readonly connections?: number;
  /** Bytes each connection sends (default 1 MiB). */
  readonly bytesPerConnection?: number;
  /** Seed of the streams (default 1). */
  readonly seed?: number;
  /** Bytes per write (default 16 KiB, at most CHUNK_BYTES_MAX). */
  readonly chunkBytes?: number;
  /**
   * Most bytes a connection has sent but not yet seen echoed (default 256 KiB).
   * Bounded so a connection's stall measures the path, not how far ahead its
   * writer ran while other connections had the event loop.
   */
  readonly windowBytes?: number;
  /**
   * Bytes per second each connection sends at most (default: as fast as the
   * path takes them). Paced streams keep connections open for a while at a
   * known cost, e.g. while a replica restarts and catches up.
   */
  readonly rateBytesPerSecond?: number;
  /**
   * A SOCKS5 proxy to go through (no authentication): each connection goes
   * to it and asks for `hostname:port` (an IPv4 address) with CONNECT.
   */
  readonly socks5?: { readonly hostname: string; readonly port: number };
  /** Give up on a connection after this long without its echo completing (default 30 s). */
  readonly timeoutMs?: number;
  /**
   * Called every `progressIntervalMs` while the load runs, and once at the
   * end: how a caller (the demo) acts mid-stream, e.g. kills the primary.
   */
  readonly onProgress?: (progress: LoadProgress) => void;
  /** Period of `onProgress` calls (default 100 ms). */
  readonly progressIntervalMs?: number;
}

/** Progress of a running load, over all connections. */
export interface LoadProgress {
  /** Connections established so far. */
  readonly connected: number;
  /** Echoed bytes verified so far. */
  readonly verified: number;
  /** Bytes every connection will send, summed (the verified total of a clean run). */
  readonly total: number;
}

/** What the connections of one run share with its progress reporter. */
interface Tracker {
  connected: number;
  readonly verifiers: StreamVerifier[];
}

/** A silence one connection saw: from the last byte it read before to the next. */
export interface Gap {
  /** When it began (the last byte before it), Unix ms. */
  readonly atUnixMs: number;
  readonly ms: number;
}

/** Gaps shorter than this are not kept (reads come faster than this under load). */
export const GAP_MS_MIN = 1;
/** The longest gaps kept per connection. */
const GAPS_KEPT = 32;

function keepGap(gaps: Gap[], gap: Gap): void {
  if (gap.ms < GAP_MS_MIN) return;
  gaps.push(gap);
  if (gaps.length <= GAPS_KEPT) return;
  let shortest = 0;
  for (let i = 1; i < gaps.length; i++) if (gaps[i]!.ms < gaps[shortest]!.ms) shortest = i;
  gaps.splice(shortest, 1);
}

/**
 * The longest gap that overlaps the span from `fromUnixMs` to `toUnixMs`
 * (a failover): the stall it caused, told apart from gaps elsewhere in the
 * run. 0 when none of `GAP_MS_MIN` or more overlaps it.
 *
 * @example
 * ```ts
 * stallAcross([{ atUnixMs: 1000, ms: 60 }, { atUnixMs: 5000, ms: 90 }], 1010, 1012); // 60
 * ```
 */
export function stallAcross(gaps: readonly Gap[], fromUnixMs: number, toUnixMs: number): number {
  let longest = 0;
  for (const g of gaps) {
    if (g.atUnixMs <= toUnixMs && g.atUnixMs + g.ms >= fromUnixMs) {
      longest = Math.max(longest, g.ms);
    }
  }
  return longest;
}

/** Result of one connection. */
export interface ConnectionReport extends VerifyCounts {
  readonly connection: number;
  readonly sent: number;
  /**
   * "complete": everything echoed; "reset": the peer reset the connection;
   * "closed": the peer closed before echoing everything; "timeout"; "refused".
   */
  readonly outcome: "complete" | "reset" | "closed" | "timeout" | "refused";
  /** Largest gap between received bytes while echo was outstanding, in ms. */
  readonly longestStallMs: number;
  /** Its longest gaps (at most 32, each at least `GAP_MS_MIN`). */
  readonly gaps: readonly Gap[];
}

/** Result of `runLoad`, summed over connections. */
export interface LoadReport {
  readonly connections: number;
  readonly completed: number;
  readonly resets: number;
  readonly bytesSent: number;
  readonly bytesVerified: number;
  readonly bytesLost: number;
  readonly bytesDuplicated: number;
  readonly bytesCorrupted: number;
  readonly longestStallMs: number;
  /** Every connection's longest gaps, longest first (see `stallAcross`). */
  readonly gaps: readonly Gap[];
  readonly elapsedMs: number;
  /** Verified echo bytes per second over all connections, in Mbit/s. */
  readonly goodputMbps: number;
  readonly perConnection: readonly ConnectionReport[];
}

/**
 * Runs the verifying load against an echo NF and reports what every
 * connection saw. Never throws for network faults: they are the result.
 *
 * @example
 * ```ts
 * const report = await runLoad({ hostname: "10.77.0.11", port: 7000, connections: 64 });
 * if (report.bytesCorrupted > 0) console.log("corruption");
 * ```
 */
export async function runLoad(options: LoadOptions): Promise<LoadReport> {
  const connections = options.connections ?? 8;
  const chunk = options.chunkBytes ?? 16 * 1024;
  if (!Number.isInteger(connections) || connections < 1 || connections > 4096) {
    throw new RangeError(`Invalid connection count "${connections}": use 1 to 4096`);
  }
  if (!Number.isInteger(chunk) || chunk < 1 || chunk > CHUNK_BYTES_MAX) {
    throw new RangeError(`Invalid chunk size "${chunk}": use 1 to ${CHUNK_BYTES_MAX}`);
  }
  const rate = options.rateBytesPerSecond;
  if (rate !== undefined && !(Number.isFinite(rate) && rate > 0)) {
    throw new RangeError(`Invalid rate "${rate}": use a positive number of bytes per second`);
  }
  const started = performance.now();
  const tracker: Tracker = { connected: 0, verifiers: [] };
  const total = connections * (options.bytesPerConnection ?? 1024 * 1024);
  const report = () =>
    options.onProgress?.({
      connected: tracker.connected,
      verified: tracker.verifiers.reduce((a, v) => a + v.counts().verified, 0),
      total,
    });
  const ticker = options.onProgress === undefined
    ? undefined
    : setInterval(report, options.progressIntervalMs ?? 100);
  let reports: ConnectionReport[];
  try {
    reports = await Promise.all(
      Array.from(
        { length: connections },
        (_, i) => runConnection(i, { ...options, chunkBytes: chunk }, tracker),
      ),
    );
  } finally {
    clearInterval(ticker);
  }
  report();
  const elapsedMs = performance.now() - started;
  const sum = (f: (r: ConnectionReport) => number) => reports.reduce((a, r) => a + f(r), 0);
  const verified = sum((r) => r.verified);
  return {
    connections,
    completed: reports.filter((r) => r.outcome === "complete").length,
    resets: reports.filter((r) => r.outcome === "reset").length,
    bytesSent: sum((r) => r.sent),
    bytesVerified: verified,
    // Bytes sent but never echoed count as lost too.
    bytesLost: sum((r) => r.lost + Math.max(0, r.sent - r.position)),
    bytesDuplicated: sum((r) => r.duplicated),
    bytesCorrupted: sum((r) => r.corrupted),
    longestStallMs: Math.max(...reports.map((r) => r.longestStallMs)),
    gaps: reports.flatMap((r) => r.gaps).sort((a, b) => b.ms - a.ms),
    elapsedMs,
    goodputMbps: elapsedMs > 0 ? (verified * 8) / (elapsedMs * 1000) : 0,
    perConnection: reports,
  };
}

/** Asks a SOCKS5 proxy on `conn` for `hostname:port`; refusals throw ConnectionRefused. */
async function socksConnect(conn: Deno.TcpConn, hostname: string, port: number) {
  try {
    await writeAll(conn, connectRequest(hostname, port));
    const answers = await new MessageReader(conn).next(parseAnswers);
    if (answers === undefined) throw new Deno.errors.ConnectionRefused("the SOCKS5 proxy closed");
    if (answers.code !== 0) {
      throw new Deno.errors.ConnectionRefused(`the SOCKS5 proxy refused: code ${answers.code}`);
    }
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** A connect that timed out: silent from the start. */
function timedOutConnecting(
  connection: number,
  sent: number,
  started: number,
  verifier: StreamVerifier,
): ConnectionReport {
  const ms = performance.now() - started;
  const gaps = [{ atUnixMs: performance.timeOrigin + started, ms }];
  return { connection, sent, outcome: "timeout", longestStallMs: ms, gaps, ...verifier.counts() };
}

async function runConnection(
  connection: number,
  options: LoadOptions & { chunkBytes: number },
  tracker: Tracker,
): Promise<ConnectionReport> {
  const total = options.bytesPerConnection ?? 1024 * 1024;
  const pattern = new StreamPattern(options.seed ?? 1, connection);
  const verifier = new StreamVerifier(pattern);
  tracker.verifiers.push(verifier);
  let sent = 0;
  let stall = 0;
  const gaps: Gap[] = [];
  const timeoutMs = options.timeoutMs ?? 30_000;
  // The kernel retries a SYN for about two minutes; the load gives up sooner.
  const started = performance.now();
  const connecting = options.socks5 === undefined
    ? Deno.connect({ hostname: options.hostname, port: options.port })
    : Deno.connect(options.socks5).then((c) => socksConnect(c, options.hostname, options.port));
  let connectTimer: ReturnType<typeof setTimeout> | undefined;
  const connectLate = new Promise<"late">((resolve) => {
    connectTimer = setTimeout(() => resolve("late"), timeoutMs);
  });
  let conn: Deno.TcpConn;
  try {
    const first = await Promise.race([connecting, connectLate]);
    if (first === "late") {
      connecting.then((c) => c.close(), () => {});
      return timedOutConnecting(connection, sent, started, verifier);
    }
    conn = first;
  } catch (error) {
    if (error instanceof Deno.errors.TimedOut) {
      return timedOutConnecting(connection, sent, started, verifier);
    }
    if (!(error instanceof Deno.errors.ConnectionRefused) && !isDisconnect(error)) throw error;
    return {
      connection,
      sent,
      outcome: "refused",
      longestStallMs: 0,
      gaps: [],
      ...verifier.counts(),
    };
  } finally {
    clearTimeout(connectTimer);
  }
  conn.setNoDelay(true);
  tracker.connected += 1;
  let outcome: ConnectionReport["outcome"] = "complete";
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    drained.resolve();
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }, timeoutMs);
  const window = Math.max(options.windowBytes ?? 256 * 1024, options.chunkBytes);
  let drained = Promise.withResolvers<void>();
  let readerDone = false;
  const pacedFrom = performance.now();
  const writer = (async () => {
    while (sent < total) {
      if (options.rateBytesPerSecond !== undefined) {
        const due = pacedFrom + (sent / options.rateBytesPerSecond) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        if (timedOut || readerDone) return;
      }
      while (sent - verifier.counts().position + options.chunkBytes > window) {
        if (timedOut || readerDone) return;
        await drained.promise;
      }
      const length = Math.min(options.chunkBytes, total - sent);
      await writeAll(conn, pattern.slice(sent, length));
      sent += length;
    }
    await conn.closeWrite();
  })();
  const reader = (async () => {
    const buffer = new Uint8Array(CHUNK_BYTES_MAX);
    let last = performance.now();
    // The silence from the last byte read until `until`.
    const silent = (until: number) => {
      stall = Math.max(stall, until - last);
      keepGap(gaps, { atUnixMs: performance.timeOrigin + last, ms: until - last });
    };
    try {
      while (true) {
        const n = await conn.read(buffer);
        const now = performance.now();
        if (n === null) break;
        silent(now);
        last = now;
        verifier.feed(buffer.subarray(0, n));
        drained.resolve();
        drained = Promise.withResolvers<void>();
      }
    } finally {
      // A connection that timed out was silent from its last byte to the
      // end: that silence is its longest stall (it read as a short one).
      if (timedOut) silent(performance.now());
      // The writer may wait for echo that never comes: let it see the end.
      readerDone = true;
      drained.resolve();
    }
  })();
  const results = await Promise.allSettled([writer, reader]);
  clearTimeout(timer);
  for (const result of results) {
    if (result.status === "fulfilled") continue;
    if (timedOut) break;
    // The kernel gave up retransmitting: the connection is dead, not reset.
    if (result.reason instanceof Deno.errors.TimedOut) {
      outcome = "timeout";
      break;
    }
    if (!isDisconnect(result.reason)) throw result.reason;
    outcome = "reset";
  }
  if (timedOut) outcome = "timeout";
  try {
    conn.close();
  } catch {
    // Closed by the timeout or the error path.
  }
  const counts = verifier.counts();
  if (outcome === "complete" && counts.position < sent) outcome = "closed";
  return { connection, sent, outcome, longestStallMs: stall, gaps, ...counts };
}
