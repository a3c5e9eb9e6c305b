/**
 * A stand-in for the native agent, for tests of the control plane: same
 * `status()`/`fail()`/`stop()` surface, no packet loop. `fail()` behaves as
 * the native agent's does from outside: a primary becomes failed, a replica
 * sees a new epoch with itself as primary (as after a forwarded failover).
 *
 * @module
 */
import type { HaAgentStatus, HaRole } from "./status.ts";

/**
 * A fake agent whose status is built from a few mutable fields.
 *
 * @example
 * ```ts
 * const agent = new FakeAgent({ id: 1, role: "primary" });
 * agent.fail();
 * agent.status().role; // "failed"
 * ```
 */
export class FakeAgent {
  readonly id: number;
  role: HaRole;
  epoch = 17;
  primaryId: number;
  fails = 0;
  stops = 0;
  /** Targets `migrate()` was asked for, in order. */
  readonly migrations: number[] = [];
  /** When set, `status()` throws it (an agent whose loop broke). */
  broken: Error | undefined;

  constructor(options: { readonly id: number; readonly role: HaRole }) {
    this.id = options.id;
    this.role = options.role;
    this.primaryId = options.role === "primary" ? options.id : options.id + 1;
  }

  status(): HaAgentStatus & { readonly extra_field: string } {
    if (this.broken !== undefined) throw this.broken;
    return {
      id: this.id,
      role: this.role,
      epoch: this.epoch,
      primary_id: this.primaryId,
      uptime_ms: 1234.5,
      peers: [{
        id: this.id + 1,
        addr: "10.77.0.99",
        alive: true,
        heard: true,
        last_heard_ms: 0.5,
        role: this.role === "primary" ? "replica" : "primary",
      }],
      connections: 3,
      held_segments: 2,
      takeover: null,
      conn_migration: {
        request: this.connMigrations.length,
        result: this.connMigrations.length === 0 ? "none" : "handed",
        owner: this.connMigrations.length === 0
          ? 0
          : Number(this.connMigrations.at(-1)!.split(" ")[0]),
        matched: this.connMigrations.length === 0 ? 0 : 1,
        last_resume_ms: 0,
      },
      counters: { client_frames: 42, to_nf: 40 },
      extra_field: "kept",
    };
  }

  fail(): void {
    this.fails += 1;
    if (this.role === "primary") {
      this.role = "failed";
    } else {
      this.role = "primary";
      this.epoch += 16;
      this.primaryId = this.id;
    }
  }

  /** Connections asked for with `migrateConn`, as "to ip port". */
  readonly connMigrations: string[] = [];

  /** Records the request; the status then reports it handed. */
  migrateConn(to: number, clientIp: number, clientPort: number): void {
    this.connMigrations.push(`${to} ${clientIp} ${clientPort}`);
  }

  /** A primary becomes a replica of `to` at once (a handover). */
  migrate(to: number): void {
    this.migrations.push(to);
    if (this.role === "primary") {
      this.role = "replica";
      this.primaryId = to;
    }
  }

  stop(): void {
    this.stops += 1;
  }
}
