/**
 * The request/response latency client: one connection to an echo NF, many
 * small round trips one after the other, each timed and its echo checked.
 * The bench runs it on the direct path and through the agent, so the
 * difference of the two medians is what the agent adds to a round trip.
 *
 * @module
 */
import { writeAll } from "./reference_nf.ts";
import { StreamPattern } from "./load_client.ts";
import { percentile } from "./percentile.ts";

/** Options of `runLatency`. */
export interface LatencyOptions {
  readonly hostname: string;
  readonly port: number;
  /** Timed round trips (default 5000). */
  readonly requests?: number;
  /** Bytes per request, echoed back whole (default 64). */
  readonly messageBytes?: number;
  /** Untimed round trips first, so caches, ARP and the JIT are warm (default 200). */
  readonly warmup?: number;
  /** Seed of the request bytes (default 1). */
  readonly seed?: number;
}

/** Result of `runLatency`; times in µs. */
export interface LatencyReport {
  readonly requests: number;
  readonly messageBytes: number;
  /** Round trips whose echo differed from the request. */
  readonly mismatches: number;
  readonly p50Us: number;
  readonly p90Us: number;
  readonly p99Us: number;
  readonly maxUs: number;
  readonly meanUs: number;
  readonly elapsedMs: number;
}

/** Largest request: one segment on any path, so a round trip is one exchange. */
export const LATENCY_MESSAGE_BYTES_MAX = 1400;
/** Most round trips of one run. */
export const LATENCY_REQUESTS_MAX = 1_000_000;

/**
 * Checks latency options and fills the defaults; throws RangeError.
 *
 * @example
 * ```ts
 * checkLatencyOptions({ hostname: "10.77.0.1", port: 7000 }).requests; // 5000
 * ```
 */
export function checkLatencyOptions(options: LatencyOptions): Required<LatencyOptions> {
  const checked = {
    hostname: options.hostname,
    port: options.port,
    requests: options.requests ?? 5000,
    messageBytes: options.messageBytes ?? 64,
    warmup: options.warmup ?? 200,
    seed: options.seed ?? 1,
  };
  const within = (value: number, low: number, high: number, what: string) => {
    if (!Number.isInteger(value) || value < low || value > high) {
      throw new RangeError(`Invalid ${what} "${value}": use ${low} to ${high}`);
    }
  };
  within(checked.requests, 1, LATENCY_REQUESTS_MAX, "request count");
  within(checked.messageBytes, 1, LATENCY_MESSAGE_BYTES_MAX, "message size");
  within(checked.warmup, 0, LATENCY_REQUESTS_MAX, "warm-up count");
  within(checked.port, 1, 65535, "port");
  return checked;
}

/**
 * Times `requests` echo round trips on one connection. Throws the network
 * error if the connection fails: a latency figure over a broken connection
 * would mean nothing.
 *
 * @example
 * ```ts
 * const r = await runLatency({ hostname: "10.77.0.11", port: 7000, requests: 1000 });
 * console.log(r.p50Us, r.p99Us);
 * ```
 */
export async function runLatency(options: LatencyOptions): Promise<LatencyReport> {
  const o = checkLatencyOptions(options);
  const pattern = new StreamPattern(o.seed, 0);
  const conn = await Deno.connect({ hostname: o.hostname, port: o.port });
  conn.setNoDelay(true);
  const echo = new Uint8Array(o.messageBytes);
  const samples: number[] = [];
  let mismatches = 0;
  const started = performance.now();
  try {
    for (let i = 0; i < o.warmup + o.requests; i++) {
      const request = pattern.slice((i * o.messageBytes) % 1_000_000, o.messageBytes);
      const sent = performance.now();
      await writeAll(conn, request);
      let got = 0;
      while (got < o.messageBytes) {
        const n = await conn.read(echo.subarray(got));
        if (n === null) throw new Deno.errors.ConnectionReset("echo closed mid-request");
        got += n;
      }
      const rtt = performance.now() - sent;
      if (!echo.every((b, k) => b === request[k])) mismatches += 1;
      if (i >= o.warmup) samples.push(rtt * 1000);
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
  return {
    requests: o.requests,
    messageBytes: o.messageBytes,
    mismatches,
    p50Us: percentile(samples, 50),
    p90Us: percentile(samples, 90),
    p99Us: percentile(samples, 99),
    maxUs: percentile(samples, 100),
    meanUs: samples.reduce((a, b) => a + b, 0) / samples.length,
    elapsedMs: performance.now() - started,
  };
}
