/**
 * What `reliab ha up` logs about divergence: the agent counts and lists
 * connections whose NF output differed between nodes (status), and the
 * node's log says so once per connection as it happens, so an operator
 * learns that the NF is not deterministic without polling status.
 *
 * @module
 */
import type { HaAgentStatus, HaDiverged } from "./status.ts";

/**
 * Turns successive agent statuses into log lines about divergence: one per
 * newly diverged connection, one per takeover that reset stale ones.
 *
 * @example
 * ```ts
 * const log = new DivergenceLog();
 * for (const line of log.lines(agent.status())) console.error(`reliab: ${line}`);
 * ```
 */
export class DivergenceLog {
  #logged = new Set<string>();
  #divergences = 0;
  #reported = 0;
  #resets = 0;

  /** Lines for what changed since the last call (none the first time nothing diverged). */
  lines(status: HaAgentStatus): string[] {
    const node = `node ${status.id}`;
    const lines: string[] = [];
    const current = new Set<string>();
    let detailed = 0;
    for (const d of status.diverged ?? []) {
      const key = `${d.client}>${d.port}:${d.here}:${d.reported_by.join(",")}`;
      current.add(key);
      if (this.#logged.has(key)) continue;
      lines.push(`${node}: ${describe(d, status.role)}`);
      detailed += 1;
    }
    // Entries leave the list when their connection is freed: forget them too.
    this.#logged = current;
    const divergences = count(status, "divergences");
    const reported = count(status, "divergences_reported");
    const resets = count(status, "stale_resets");
    const unlisted = divergences - this.#divergences + reported - this.#reported - detailed;
    if (unlisted > 0) {
      lines.push(
        `${node}: ${unlisted} more diverged connection(s), not listed: see 'reliab ha status'`,
      );
    }
    if (resets > this.#resets) {
      lines.push(
        `${node}: reset ${resets - this.#resets} stale connection(s) towards their clients ` +
          "instead of serving diverged bytes",
      );
    }
    this.#divergences = divergences;
    this.#reported = reported;
    this.#resets = resets;
    return lines;
  }
}

function describe(d: HaDiverged, role: HaAgentStatus["role"]): string {
  const conn = `connection ${d.client} -> port ${d.port}`;
  const at = `at output byte ${d.offset} (the NFs wrote different bytes)`;
  if (!d.here) {
    return `replica node ${d.reported_by.join(", ")} reports ${conn} diverged ${at}: ` +
      "no longer waiting for it there";
  }
  return role === "primary"
    ? `${conn} diverged from the old primary's ${at}: reset towards the client`
    : `${conn} diverged from the primary ${at}: the copy here is stale and is reset, ` +
      "never served, if this node takes over";
}

function count(status: HaAgentStatus, name: string): number {
  return status.counters[name] ?? 0;
}
