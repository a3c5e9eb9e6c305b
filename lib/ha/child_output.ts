/**
 * Parsers of what the `ha` commands print with `--json`, for the demo, the
 * bench and the tests that run them as children: `ha up`'s ready line,
 * `ha status`, `ha load` and `ha latency`. Strict: a field missing or of the
 * wrong type is a ReliabError naming it, so a change on one side fails loudly
 * instead of turning into a silent 0 in a report.
 *
 * @module
 */
import { ReliabError } from "../errors.ts";
import type { LoadReport } from "./load_client.ts";
import type { LatencyReport } from "./latency_client.ts";

/** `ha up --json`'s line once the agent runs. */
export interface UpLine {
  readonly id: number;
  readonly role: string;
  readonly netns: string;
  readonly nfNetns: string;
  readonly vip: string;
}

/** Role of a node as `ha status` reports it. */
export type HaRole = "primary" | "replica" | "failed" | "fenced";
const ROLES: readonly HaRole[] = ["primary", "replica", "failed", "fenced"];

/** A node's last takeover, as its status reports it. */
export interface TakeoverView {
  readonly atUnixMs: number;
  readonly detectMs: number;
  /** "migration" after a handover; "failover" otherwise (and from older agents). */
  readonly kind: "failover" | "migration";
  /** Connections to resume, how many did, and how long the last one took (null when not reported). */
  readonly connections: number | null;
  readonly resumed: number | null;
  readonly resumeMs: number | null;
  /** A migration on one host: from the command on the old primary to the last connection resumed. */
  readonly commandToResumeMs: number | null;
}

/** The part of `ha status --json` the demo and the tests read. */
export interface HaStatusView {
  readonly id: number;
  readonly role: HaRole;
  readonly epoch: number;
  readonly primaryId: number | null;
  readonly connections: number;
  /** Set on a node that took over: when, and how long detection took. */
  readonly takeover: TakeoverView | null;
  /** Peers this node hears now, and peers configured. */
  readonly peersAlive: number;
  readonly peersTotal: number;
  /** The agent's counters by name (absent ones read as 0 to callers). */
  readonly counters: Readonly<Record<string, number>>;
}

/** `ha load --json`: the load client's summary (its report without the per-connection rows). */
export type LoadSummary = Omit<LoadReport, "perConnection">;

const LOAD_FIELDS = [
  "connections",
  "completed",
  "resets",
  "bytesSent",
  "bytesVerified",
  "bytesLost",
  "bytesDuplicated",
  "bytesCorrupted",
  "longestStallMs",
  "elapsedMs",
  "goodputMbps",
] as const;

type Json = Record<string, unknown>;

function object(text: string, what: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad(what, `not JSON: "${text.trim().slice(0, 80)}"`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw bad(what, "not a JSON object");
  }
  return value as Json;
}

function bad(what: string, detail: string): ReliabError {
  return new ReliabError(`Cannot read the output of "${what}": ${detail}`, {
    code: "bad_child_output",
    hint: "the agent and this reliab must be the same version: rebuild with 'zig build'",
  });
}

function num(value: Json, field: string, what: string): number {
  const v = value[field];
  if (typeof v !== "number" || !Number.isFinite(v)) throw bad(what, `"${field}" is not a number`);
  return v;
}

function str(value: Json, field: string, what: string): string {
  const v = value[field];
  if (typeof v !== "string" || v === "") throw bad(what, `"${field}" is not a string`);
  return v;
}

/**
 * The first JSON object in `lines`: one on a line of its own, or a pretty
 * one from a line `{` to a line `}`. Other lines (an NF's own output shares
 * the agent's stdout) are skipped. Undefined when there is none yet.
 *
 * @example
 * ```ts
 * findJsonObject(["listening 10.77.0.1:7000", "{", '  "id": 1', "}"]); // '{\n  "id": 1\n}'
 * ```
 */
export function findJsonObject(lines: readonly string[]): string | undefined {
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.startsWith("{") && line.endsWith("}")) return line;
    if (line !== "{") continue;
    const end = lines.findIndex((l, k) => k > i && l.trimEnd() === "}");
    if (end < 0) return undefined;
    return lines.slice(i, end + 1).join("\n");
  }
  return undefined;
}

/**
 * Parses `ha up --json`'s ready object out of the agent's stdout lines;
 * undefined while it has not been printed.
 *
 * @example
 * ```ts
 * parseUpLine(['{"id":1,"role":"primary","netns":"n1","nf_netns":"n1-nf","vip":"10.77.0.1"}']);
 * ```
 */
export function parseUpLine(lines: readonly string[]): UpLine | undefined {
  const text = findJsonObject(lines);
  if (text === undefined) return undefined;
  const value = object(text, "ha up --json");
  return {
    id: num(value, "id", "ha up --json"),
    role: str(value, "role", "ha up --json"),
    netns: str(value, "netns", "ha up --json"),
    nfNetns: str(value, "nf_netns", "ha up --json"),
    vip: str(value, "vip", "ha up --json"),
  };
}

/**
 * Parses `ha status --json`.
 *
 * @example
 * ```ts
 * const s = parseHaStatus(stdout);
 * if (s.role === "primary") console.log(s.epoch);
 * ```
 */
export function parseHaStatus(text: string): HaStatusView {
  const what = "ha status --json";
  const value = object(text, what);
  const role = value["role"];
  if (typeof role !== "string" || !(ROLES as readonly string[]).includes(role)) {
    throw bad(what, `"role" is not one of ${ROLES.join(", ")}`);
  }
  const primary = value["primary_id"];
  if (primary !== null && (typeof primary !== "number" || !Number.isInteger(primary))) {
    throw bad(what, `"primary_id" is not a number or null`);
  }
  const peers = Array.isArray(value["peers"]) ? value["peers"] as unknown[] : [];
  // The agent says 0 for "no primary known".
  const takeover = value["takeover"];
  let parsedTakeover: HaStatusView["takeover"] = null;
  if (takeover !== null && takeover !== undefined) {
    if (typeof takeover !== "object" || Array.isArray(takeover)) {
      throw bad(what, `"takeover" is not an object or null`);
    }
    const t = takeover as Json;
    const optional = (key: string) => typeof t[key] === "number" ? t[key] as number : null;
    parsedTakeover = {
      atUnixMs: num(t, "at_unix_ms", what),
      detectMs: num(t, "detect_ms", what),
      kind: t["kind"] === "migration" ? "migration" : "failover",
      connections: optional("connections"),
      resumed: optional("resumed"),
      resumeMs: optional("resume_ms"),
      commandToResumeMs: optional("command_to_resume_ms"),
    };
  }
  return {
    id: num(value, "id", what),
    role: role as HaRole,
    epoch: num(value, "epoch", what),
    primaryId: primary === 0 ? null : primary as number | null,
    connections: num(value, "connections", what),
    takeover: parsedTakeover,
    peersAlive:
      peers.filter((p) => typeof p === "object" && p !== null && (p as Json)["alive"] === true)
        .length,
    peersTotal: peers.length,
    counters: numbers(value["counters"]),
  };
}

/** The numeric fields of an object (counters); anything else is left out. */
function numbers(value: unknown): Record<string, number> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return {};
  return Object.fromEntries(
    Object.entries(value as Json).filter((e): e is [string, number] => typeof e[1] === "number"),
  );
}

/**
 * Parses `ha load --json`.
 *
 * @example
 * ```ts
 * const load = parseLoadSummary(stdout);
 * const clean = load.resets === 0 && load.bytesLost === 0;
 * ```
 */
export function parseLoadSummary(text: string): LoadSummary {
  const what = "ha load --json";
  const value = object(text, what);
  const entries = LOAD_FIELDS.map((field) => [field, num(value, field, what)]);
  const gaps = value.gaps;
  if (!Array.isArray(gaps)) throw bad(what, `"gaps" is not a list`);
  const parsed = gaps.map((g: unknown) => {
    if (typeof g !== "object" || g === null) throw bad(what, `a gap is not an object`);
    return { atUnixMs: num(g as Json, "atUnixMs", what), ms: num(g as Json, "ms", what) };
  });
  return { ...Object.fromEntries(entries), gaps: parsed } as unknown as LoadSummary;
}

/** `ha load --progress-ms`'s stderr line, parsed. */
export interface LoadProgressLine {
  readonly connected: number;
  readonly verified: number;
  readonly total: number;
}

/**
 * Parses a progress line of `ha load --progress-ms N` (on stderr); undefined
 * for other lines.
 *
 * @example
 * ```ts
 * parseLoadProgress("progress connected=64 verified=1000 total=4000")?.verified; // 1000
 * ```
 */
export function parseLoadProgress(line: string): LoadProgressLine | undefined {
  const match = /^progress connected=(\d+) verified=(\d+) total=(\d+)$/.exec(line.trim());
  if (match === null) return undefined;
  return { connected: Number(match[1]), verified: Number(match[2]), total: Number(match[3]) };
}

/**
 * Formats a progress line of `ha load --progress-ms N` (the inverse of
 * `parseLoadProgress`).
 *
 * @example
 * ```ts
 * formatLoadProgress({ connected: 2, verified: 10, total: 20 }); // "progress connected=2 verified=10 total=20"
 * ```
 */
export function formatLoadProgress(progress: LoadProgressLine): string {
  return `progress connected=${progress.connected} verified=${progress.verified} total=${progress.total}`;
}

/** `ha latency --json`: the latency client's report (µs), as it printed it. */
export type LatencySummary = LatencyReport;

const LATENCY_FIELDS = [
  "requests",
  "messageBytes",
  "mismatches",
  "p50Us",
  "p90Us",
  "p99Us",
  "maxUs",
  "meanUs",
  "elapsedMs",
] as const;

/**
 * Parses `ha latency --json`.
 *
 * @example
 * ```ts
 * const latency = parseLatencySummary(stdout);
 * console.log(latency.p50Us);
 * ```
 */
export function parseLatencySummary(text: string): LatencySummary {
  const value = object(text, "ha latency --json");
  const entries = LATENCY_FIELDS.map((field) => [field, num(value, field, "ha latency --json")]);
  return Object.fromEntries(entries) as unknown as LatencySummary;
}
