/**
 * The status the native agent reports (one JSON object), checked once where
 * it enters TypeScript, and its text form for `reliab ha status`. The agent
 * may add fields: they are kept (so `--json` shows them) but not required.
 *
 * @module
 */
import { ReliabError } from "../../errors.ts";

/** Roles of a node. `fenced`: saw a newer epoch it is not part of, and never emits again. */
export const HA_ROLES = ["primary", "replica", "failed", "fenced"] as const;

/** Role of a node. */
export type HaRole = typeof HA_ROLES[number];

/** One peer as this node sees it. */
export interface HaPeerStatus {
  readonly id: number;
  readonly addr: string;
  readonly alive: boolean;
  /** False until the first message from the peer (then `last_heard_ms` means nothing). */
  readonly heard?: boolean;
  /** Milliseconds since this node last heard from the peer; null if never. */
  readonly last_heard_ms: number | null;
  /** The peer's role as last heard; "unknown" before its first message. */
  readonly role: HaRole | "unknown";
}

/** The last takeover this node performed, if any. */
export interface HaTakeover {
  /** Wall-clock time of the takeover (Unix ms). */
  readonly at_unix_ms: number;
  /** From the last heartbeat heard to the decision to take over (0 for a migration). */
  readonly detect_ms: number;
  /** "failover" after the primary went silent, "migration" after a handover. */
  readonly kind?: "failover" | "migration";
  /** Connections the takeover had to resume, and how many have. */
  readonly connections?: number;
  readonly resumed?: number;
  /** From the decision to the last connection resumed (its NF kicked, its output replayed). */
  readonly resume_ms?: number;
  /** A migration on one host: from the old primary's command to the last connection resumed. */
  readonly command_to_resume_ms?: number;
}

/**
 * A connection whose copy diverged: the nodes' NFs wrote different bytes
 * for it (a non-deterministic NF), so it cannot fail over transparently.
 */
export interface HaDiverged {
  /** The client's address and port, "10.78.0.1:40000". */
  readonly client: string;
  /** The NF's port on the VIP. */
  readonly port: number;
  /** The output checkpoint (bytes from the NF's first) whose digests differed. */
  readonly offset: number;
  /** This node's copy is stale (never served: reset at a takeover). */
  readonly here: boolean;
  /** Replicas (node ids) that reported their copy stale to this primary. */
  readonly reported_by: readonly number[];
  readonly closed: boolean;
}

/** What `reliab_ha_agent_status` returns (snake_case, as on the wire). */
export interface HaAgentStatus {
  readonly id: number;
  readonly role: HaRole;
  readonly epoch: number;
  /** Id of the primary this node follows (itself when primary); 0 when none is known. */
  readonly primary_id: number;
  readonly uptime_ms: number;
  readonly peers: readonly HaPeerStatus[];
  readonly connections: number;
  /** Client segments held until every replica acknowledged its copy. */
  readonly held_segments: number;
  readonly takeover: HaTakeover | null;
  /** The last `ha migrate --conn` request this node handled (`request` counts them). */
  readonly conn_migration?: {
    readonly request: number;
    readonly result: "none" | "handed" | "not_found" | "not_served_here" | "bad_target";
    readonly owner: number;
    readonly matched: number;
    /** From a connection handed to this node to it resumed here, the last time. */
    readonly last_resume_ms: number;
  };
  /** Non-zero when the packet loop stopped on a system error (its errno). */
  readonly loop_errno?: number;
  /** Connections with a diverged copy, here or on a replica (see `diverged`). */
  readonly connections_stale?: number;
  /** The first few of them. */
  readonly diverged?: readonly HaDiverged[];
  readonly counters: Readonly<Record<string, number>>;
}

/**
 * Checks that `value` is an agent status and returns it typed (extra fields
 * kept). Throws a ReliabError naming the first wrong field.
 *
 * @example
 * ```ts
 * const status = parseAgentStatus(JSON.parse(text));
 * console.log(status.role);
 * ```
 */
export function parseAgentStatus(value: unknown): HaAgentStatus {
  const s = object(value, "status");
  for (const key of ["id", "epoch", "primary_id", "uptime_ms", "connections", "held_segments"]) {
    number(s[key], key);
  }
  oneOf(s.role, HA_ROLES, "role");
  if (!Array.isArray(s.peers)) invalid("peers");
  for (const [i, raw] of s.peers.entries()) {
    const peer = object(raw, `peers[${i}]`);
    number(peer.id, `peers[${i}].id`);
    if (typeof peer.addr !== "string") invalid(`peers[${i}].addr`);
    if (typeof peer.alive !== "boolean") invalid(`peers[${i}].alive`);
    if (peer.heard !== undefined && typeof peer.heard !== "boolean") invalid(`peers[${i}].heard`);
    if (peer.last_heard_ms !== null) number(peer.last_heard_ms, `peers[${i}].last_heard_ms`);
    oneOf(peer.role, [...HA_ROLES, "unknown"], `peers[${i}].role`);
  }
  if (s.takeover !== null) {
    const takeover = object(s.takeover, "takeover");
    number(takeover.at_unix_ms, "takeover.at_unix_ms");
    number(takeover.detect_ms, "takeover.detect_ms");
  }
  if (s.loop_errno !== undefined) number(s.loop_errno, "loop_errno");
  if (s.connections_stale !== undefined) number(s.connections_stale, "connections_stale");
  if (s.diverged !== undefined) diverged(s.diverged);
  const counters = object(s.counters, "counters");
  for (const [key, count] of Object.entries(counters)) number(count, `counters.${key}`);
  return s as unknown as HaAgentStatus;
}

function diverged(value: unknown): void {
  if (!Array.isArray(value)) invalid("diverged");
  for (const [i, raw] of value.entries()) {
    const d = object(raw, `diverged[${i}]`);
    if (typeof d.client !== "string") invalid(`diverged[${i}].client`);
    number(d.port, `diverged[${i}].port`);
    number(d.offset, `diverged[${i}].offset`);
    if (typeof d.here !== "boolean") invalid(`diverged[${i}].here`);
    if (typeof d.closed !== "boolean") invalid(`diverged[${i}].closed`);
    if (!Array.isArray(d.reported_by)) invalid(`diverged[${i}].reported_by`);
    for (const id of d.reported_by) number(id, `diverged[${i}].reported_by`);
  }
}

function object(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== "object" || value === null || Array.isArray(value)) invalid(field);
  return value as Record<string, unknown>;
}

function number(value: unknown, field: string): void {
  if (typeof value !== "number" || !Number.isFinite(value)) invalid(field);
}

function oneOf(value: unknown, allowed: readonly string[], field: string): void {
  if (typeof value !== "string" || !allowed.includes(value)) invalid(field);
}

function invalid(field: string): never {
  throw new ReliabError(`Cannot read the ha agent's status: field "${field}" is missing or wrong`, {
    code: "agent_status_invalid",
    hint: "the agent and this reliab differ: rebuild ('./reliab task build') and restart the agent",
  });
}

/**
 * The text of `reliab ha status`: role, epoch, primary, peers with health and
 * last heard, connections, held segments, the last takeover and counters.
 *
 * @example
 * ```ts
 * for (const line of statusLines(status)) console.log(line);
 * // node 1: primary, epoch 17, up 12.3 s
 * // ...
 * ```
 */
export function statusLines(status: HaAgentStatus): string[] {
  const primary = status.primary_id === 0
    ? "no primary known"
    : status.primary_id === status.id
    ? "this node is primary"
    : `primary is node ${status.primary_id}`;
  const lines = [
    `node ${status.id}: ${status.role}, epoch ${status.epoch}, ${primary}, up ${
      seconds(status.uptime_ms)
    }`,
    `connections ${status.connections}, held segments ${status.held_segments}`,
  ];
  if (status.loop_errno !== undefined && status.loop_errno !== 0) {
    lines.push(`packet loop stopped: errno ${status.loop_errno}`);
  }
  if (status.takeover !== null) {
    const at = new Date(status.takeover.at_unix_ms).toISOString();
    const t = status.takeover;
    const how = t.kind === "migration"
      ? "by migration"
      : `detected in ${t.detect_ms.toFixed(1)} ms`;
    const resumed = t.connections === undefined || t.resumed === undefined ||
        t.resume_ms === undefined
      ? ""
      : `, ${t.resumed}/${t.connections} connections resumed in ${
        (t.resume_ms * 1000).toFixed(0)
      } µs`;
    lines.push(`took over at ${at}, ${how}${resumed}`);
  }
  lines.push(...divergedLines(status));
  lines.push(status.peers.length === 0 ? "peers: none" : "peers:");
  for (const peer of status.peers) {
    const heard = peer.last_heard_ms === null || peer.heard === false
      ? "never heard"
      : `last heard ${peer.last_heard_ms.toFixed(1)} ms ago`;
    lines.push(
      `  node ${peer.id} ${peer.addr.padEnd(15)} ${(peer.alive ? "alive" : "DEAD").padEnd(5)} ` +
        `${peer.role.padEnd(7)} ${heard}`,
    );
  }
  const counters = Object.entries(status.counters).sort(([a], [b]) => a.localeCompare(b));
  if (counters.length > 0) {
    lines.push("counters:");
    const width = Math.max(...counters.map(([key]) => key.length));
    for (const [key, count] of counters) lines.push(`  ${key.padEnd(width)} ${count}`);
  }
  return lines;
}

/**
 * The connections whose NF output differed between nodes, one line each.
 *
 * @example
 * ```ts
 * divergedLines(status);
 * // ["diverged connections 1 (the NFs wrote different bytes):",
 * //  "  10.78.0.1:40000 -> port 7000 differed at output byte 65536: stale here, reset at a takeover, never served"]
 * ```
 */
export function divergedLines(status: HaAgentStatus): string[] {
  const count = status.connections_stale ?? 0;
  if (count === 0) return [];
  const lines = [`diverged connections ${count} (the NFs wrote different bytes):`];
  for (const d of status.diverged ?? []) {
    const what = d.here
      ? status.role === "primary"
        ? "stale here, reset towards the client"
        : "stale here, reset at a takeover, never served"
      : `replica node ${d.reported_by.join(", ")} reported its copy stale, not waited for`;
    lines.push(
      `  ${d.client} -> port ${d.port} differed at output byte ${d.offset}: ${what}` +
        (d.closed ? " (closed)" : ""),
    );
  }
  const more = count - (status.diverged?.length ?? 0);
  if (more > 0) lines.push(`  and ${more} more`);
  return lines;
}

function seconds(ms: number): string {
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60_000).toFixed(1)} min`;
}
