/**
 * What `reliab ha up` logs about its node while it runs: role changes
 * (takeover, migration, fenced, failed), peers going silent and coming back,
 * and being dropped from the primary's group. Each is an event object (what
 * `ha up --json` prints, one JSON line each, for log pipelines) with a
 * one-line message (what people read on stderr). Built by diffing successive
 * agent statuses, so the agent's packet loop never formats text.
 *
 * @module
 */
import type { HaAgentStatus } from "./status.ts";

/** One log event: a name, the node, a message for people, and its facts. */
export interface HaLogEvent {
  readonly event:
    | "role"
    | "takeover"
    | "peer_down"
    | "peer_up"
    | "dropped_from_group"
    | "divergence";
  readonly node: number;
  readonly message: string;
  readonly [fact: string]: unknown;
}

/**
 * Turns successive agent statuses into log events for what changed.
 *
 * @example
 * ```ts
 * const log = new EventLog();
 * for (const e of log.events(agent.status())) console.error(`reliab: ${e.message}`);
 * ```
 */
export class EventLog {
  #last: HaAgentStatus | undefined;

  /** Events since the last call; none for the first status (it is the starting point). */
  events(status: HaAgentStatus): HaLogEvent[] {
    const before = this.#last;
    this.#last = status;
    if (before === undefined) return [];
    const node = status.id;
    const out: HaLogEvent[] = [];
    if (status.role !== before.role || status.epoch !== before.epoch) {
      const t = status.takeover;
      const took = status.role === "primary" && before.role !== "primary" && t !== null;
      if (took) {
        const how = t.kind === "migration"
          ? "by planned migration"
          : `after ${t.detect_ms.toFixed(1)} ms of silence`;
        out.push({
          event: "takeover",
          node,
          message: `node ${node}: took over as primary, epoch ${status.epoch}, ${how}`,
          epoch: status.epoch,
          kind: t.kind ?? "failover",
          detect_ms: t.detect_ms,
          connections: t.connections ?? null,
        });
      } else {
        const follows = status.role === "replica" && status.primary_id !== 0
          ? `, following node ${status.primary_id}`
          : "";
        out.push({
          event: "role",
          node,
          message:
            `node ${node}: ${before.role} -> ${status.role}, epoch ${status.epoch}${follows}`,
          from: before.role,
          to: status.role,
          epoch: status.epoch,
          primary_id: status.primary_id,
        });
      }
    }
    for (const peer of status.peers) {
      const was = before.peers.find((p) => p.id === peer.id && p.addr === peer.addr);
      if (was === undefined || was.alive === peer.alive || peer.heard === false) continue;
      out.push({
        event: peer.alive ? "peer_up" : "peer_down",
        node,
        message: `node ${node}: peer node ${peer.id} (${peer.addr}) ${
          peer.alive ? "heard again" : "went silent"
        }`,
        peer: peer.id,
        addr: peer.addr,
      });
    }
    const dropped = (status as { dropped_from_group?: unknown }).dropped_from_group === true;
    const wasDropped = (before as { dropped_from_group?: unknown }).dropped_from_group === true;
    if (dropped && !wasDropped) {
      out.push({
        event: "dropped_from_group",
        node,
        message: `node ${node}: the primary dropped this replica from its group: ` +
          "it will never take over (restart it to rejoin for new connections)",
      });
    }
    return out;
  }
}
