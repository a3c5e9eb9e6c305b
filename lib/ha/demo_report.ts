/**
 * The demo's report: what the load client saw end to end plus what the
 * cluster says about the takeover, the verdict (clean failover or not, and
 * why) and its text form. Pure, so every verdict rule is unit-tested.
 *
 * @module
 */
import type { HaRole, LoadSummary, TakeoverView } from "./child_output.ts";
import type { KillMode } from "./lab_cluster.ts";
import type { LabNetem } from "./lab_netem.ts";
import { stallAcross } from "./load_client.ts";

/** A takeover a surviving node reports (its status's `takeover`). */
export interface Takeover {
  readonly id: number;
  readonly epoch: number;
  /** Its role now (a later takeover by another node fences it). */
  readonly role: HaRole;
  readonly atUnixMs: number;
  readonly detectMs: number;
}

/** What the demo learned about the failover. */
export interface FailoverFacts {
  readonly kill: KillMode;
  readonly killedNode: number;
  /** False when the load had already finished when the kill came. */
  readonly midStream: boolean;
  /** Why the kill did not come mid-stream (null when it did). */
  readonly notMidStream?: string | null;
  /** When the kill started, in ms since the load client was started (null: no kill). */
  readonly killAfterMs: number | null;
  /**
   * When the failure took effect, wall clock (to compare with the agent's
   * takeover time): the first SIGKILL, the link going down, `ha fail` returning.
   */
  readonly killAtUnixMs: number | null;
  /** When the kill command started, wall clock (null: no kill). */
  readonly killStartUnixMs?: number | null;
  readonly epochBefore: number | null;
  /** The surviving node that reports role primary with the highest epoch, if any. */
  readonly newPrimary: {
    readonly id: number;
    readonly epoch: number;
    readonly takeover: TakeoverView | null;
  } | null;
  /** The killed node's role afterwards, when it could still be asked (link, fail). */
  readonly oldPrimaryRole: HaRole | null;
  /** Every takeover the survivors report; more than one is a spurious failover. */
  readonly takeovers?: readonly Takeover[];
  /** Status reads that failed, one line each. */
  readonly statusErrors: readonly string[];
}

/** The demo's result (`reliab ha demo --json` prints it). */
export interface DemoReport {
  readonly ok: boolean;
  /** Why `ok` is false; empty when it is true. */
  readonly problems: readonly string[];
  readonly lab: string;
  readonly nodes: number;
  readonly vip: string;
  /** The impairment on every link (`--netem`), or null on a clean lab. */
  readonly netem: LabNetem | null;
  readonly connections: number;
  readonly survived: number;
  readonly resets: number;
  /** Bytes the clients sent (the NF echoes each back). */
  readonly bytesSent: number;
  /** Echoed bytes that matched, at their place in the stream. */
  readonly bytesVerified: number;
  readonly bytesLost: number;
  readonly bytesDuplicated: number;
  readonly bytesCorrupted: number;
  /** Largest gap between received bytes any connection saw, in ms. */
  readonly longestStallMs: number;
  /**
   * The longest gap that spanned the failover (see `failoverStall`): the
   * stall it caused, apart from gaps elsewhere in the run. Null when there
   * was no kill.
   */
  readonly failoverStallMs: number | null;
  readonly elapsedMs: number;
  readonly goodputMbps: number;
  readonly failover: {
    readonly kill: KillMode;
    readonly killedNode: number;
    readonly midStream: boolean;
    readonly killAfterMs: number | null;
    readonly newPrimary: number | null;
    readonly epochBefore: number | null;
    readonly epochAfter: number | null;
    /** How long the new primary took to declare the old one dead (the agent's own figure). */
    readonly detectMs: number | null;
    /** Wall-clock time from the failure taking effect to the takeover (negative: before `ha fail` returned). */
    readonly takeoverAfterKillMs: number | null;
    readonly oldPrimaryRole: HaRole | null;
    /** Every survivor's takeover, in time order, with its delay after the kill. */
    readonly takeovers: readonly (Takeover & { readonly afterKillMs: number | null })[];
  };
}

/**
 * The stall the failure caused: the longest gap any connection saw that
 * overlaps the failover (see `stallAcross`). The failover is the span the
 * new primary reports, from the old one's last sign of life to its own
 * takeover (same host, same clock); without a takeover, the kill command
 * from start to effect. (A command's span also covers the CLI starting,
 * ~200 ms, so gaps unrelated to the failover would count.)
 *
 * @example
 * ```ts
 * failoverStall(load, facts); // 57.3
 * ```
 */
export function failoverStall(load: LoadSummary, facts: FailoverFacts): number | null {
  if (facts.killAtUnixMs === null) return null;
  const takeover = facts.newPrimary?.takeover;
  if (takeover) {
    return stallAcross(load.gaps, takeover.atUnixMs - takeover.detectMs, takeover.atUnixMs);
  }
  return stallAcross(load.gaps, facts.killStartUnixMs ?? facts.killAtUnixMs, facts.killAtUnixMs);
}

/** Where the demo ran. */
export interface DemoSetup {
  readonly lab: string;
  readonly nodes: number;
  readonly vip: string;
  /** The impairment on every link (`--netem`), or null on a clean lab. */
  readonly netem?: LabNetem | null;
}

/**
 * Builds the report and its verdict: ok only when the kill came mid-stream,
 * every connection completed, no reset and no byte lost, duplicated or
 * corrupted, and a surviving node took over with a higher epoch.
 *
 * @example
 * ```ts
 * const report = buildDemoReport(load, facts, { lab: "rlhd", nodes: 3, vip: "10.77.0.1" });
 * if (!report.ok) console.log(report.problems.join("\n"));
 * ```
 */
export function buildDemoReport(
  load: LoadSummary,
  facts: FailoverFacts,
  setup: DemoSetup,
): DemoReport {
  const problems: string[] = [];
  const lostConnections = load.connections - load.completed;
  if (lostConnections > 0) {
    problems.push(`${lostConnections} of ${load.connections} connections did not complete`);
  }
  if (load.resets > 0) problems.push(`${load.resets} connections were reset`);
  const damaged = [
    [load.bytesLost, "lost"],
    [load.bytesDuplicated, "duplicated"],
    [load.bytesCorrupted, "corrupted"],
  ] as const;
  for (const [bytes, what] of damaged) if (bytes > 0) problems.push(`${bytes} bytes ${what}`);
  if (!facts.midStream) {
    problems.push(facts.notMidStream ?? "the load ended before the kill: give more --bytes");
  }
  const next = facts.newPrimary;
  if (next === null) {
    problems.push("no surviving node reports role primary");
  } else {
    if (next.id === facts.killedNode) problems.push(`the killed node ${next.id} is still primary`);
    if (facts.epochBefore !== null && next.epoch <= facts.epochBefore) {
      problems.push(`the new primary's epoch ${next.epoch} is not above ${facts.epochBefore}`);
    }
  }
  problems.push(...facts.statusErrors);
  const takeoverAt = next?.takeover?.atUnixMs;
  return {
    ok: problems.length === 0,
    problems,
    lab: setup.lab,
    nodes: setup.nodes,
    vip: setup.vip,
    netem: setup.netem ?? null,
    connections: load.connections,
    survived: load.completed,
    resets: load.resets,
    bytesSent: load.bytesSent,
    bytesVerified: load.bytesVerified,
    bytesLost: load.bytesLost,
    bytesDuplicated: load.bytesDuplicated,
    bytesCorrupted: load.bytesCorrupted,
    longestStallMs: load.longestStallMs,
    failoverStallMs: failoverStall(load, facts),
    elapsedMs: load.elapsedMs,
    goodputMbps: load.goodputMbps,
    failover: {
      kill: facts.kill,
      killedNode: facts.killedNode,
      midStream: facts.midStream,
      killAfterMs: facts.killAfterMs,
      newPrimary: next?.id ?? null,
      epochBefore: facts.epochBefore,
      epochAfter: next?.epoch ?? null,
      detectMs: next?.takeover?.detectMs ?? null,
      takeoverAfterKillMs: takeoverAt === undefined || facts.killAtUnixMs === null
        ? null
        : takeoverAt - facts.killAtUnixMs,
      oldPrimaryRole: facts.oldPrimaryRole,
      takeovers: [...facts.takeovers ?? []].sort((a, b) => a.atUnixMs - b.atUnixMs).map((t) => ({
        ...t,
        afterKillMs: facts.killAtUnixMs === null ? null : t.atUnixMs - facts.killAtUnixMs,
      })),
    },
  };
}

const KILL_WORDS: Record<KillMode, string> = {
  sigkill: "SIGKILL of everything in its namespaces",
  link: "its link set down",
  fail: "'reliab ha fail'",
  migrate: "'reliab ha migrate --to 2' (a planned handover)",
};

/**
 * The report as text for people.
 *
 * @example
 * ```ts
 * console.log(renderDemoText(report));
 * ```
 */
export function renderDemoText(report: DemoReport): string {
  const f = report.failover;
  const ms = (value: number | null, digits = 1) =>
    value === null ? "?" : `${value.toFixed(digits)} ms`;
  const lines = [
    `reliab ha demo: ${report.ok ? "every connection survived the failover" : "FAILED"}`,
    `  connections     ${report.connections} (${report.survived} survived, ${report.resets} resets)`,
    `  bytes           sent ${mib(report.bytesSent)}, echoed and verified ${
      mib(report.bytesVerified)
    }`,
    `  damaged bytes   lost ${report.bytesLost}, duplicated ${report.bytesDuplicated}, corrupted ${report.bytesCorrupted}`,
    `  stall           ${ms(report.failoverStallMs)} across the failover, ${
      ms(report.longestStallMs)
    } the longest gap in the run`,
    `  killed          node ${f.killedNode} (primary) by ${KILL_WORDS[f.kill]}${
      f.killAfterMs === null
        ? ""
        : `, ${(f.killAfterMs / 1000).toFixed(2)} s after the load started`
    }`,
    f.newPrimary === null
      ? `  new primary     none`
      : `  new primary     node ${f.newPrimary}, epoch ${f.epochBefore ?? "?"} -> ${f.epochAfter}`,
    `  failover        detected in ${ms(f.detectMs, 2)}, took over ${
      ms(f.takeoverAfterKillMs)
    } after the kill`,
    `  run             ${report.nodes} nodes in lab "${report.lab}", VIP ${report.vip}, ${
      (report.elapsedMs / 1000).toFixed(2)
    } s, ${report.goodputMbps.toFixed(0)} Mbit/s verified`,
  ];
  if (report.netem !== null) {
    lines.push(
      `  network         netem "${report.netem.spec}" on every link, both ways${
        report.netem.mode === "emulated" ? " (emulated)" : ""
      }`,
    );
  }
  if (f.oldPrimaryRole !== null) lines.push(`  old primary     now ${f.oldPrimaryRole}`);
  if (f.takeovers.length > 1) {
    lines.push(
      `  takeovers       ${
        f.takeovers.map((t) =>
          `node ${t.id} (epoch ${t.epoch}, now ${t.role}) ${
            t.afterKillMs === null ? "" : `${t.afterKillMs.toFixed(1)} ms after the kill`
          }`.trimEnd()
        ).join("; ")
      }`,
    );
  }
  for (const problem of report.problems) lines.push(`  problem: ${problem}`);
  return lines.join("\n");
}

function mib(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB (${bytes} B)`;
}
