/**
 * The `ha bench` report: direct path against HA with one replica, side by
 * side, the stall statistics over repeated failovers, and each figure next
 * to its target. Pure, so the arithmetic and the verdicts are unit-tested.
 *
 * @module
 */
import { median } from "./percentile.ts";
import type { LabNetem } from "./lab_netem.ts";

/** What one path (direct or HA) measured. */
export interface PathFigures {
  readonly latencyP50Us: number;
  readonly latencyP99Us: number;
  /** Round trips whose echo differed (should be 0). */
  readonly latencyMismatches: number;
  /** Echoed, verified bytes per second of the bulk load, in MB/s (10^6 bytes). */
  readonly throughputMBps: number;
  /** CPU ms of the agent and NF processes per MB echoed (null: nothing measured). */
  readonly cpuMsPerMB: number | null;
  /** Whether the bulk load completed clean (no reset, no damaged byte). */
  readonly bulkClean: boolean;
}

/** One failover run of the bench. */
export interface FailoverRun {
  /** The longest gap that spanned the kill: the stall the failover caused (see `failoverStall`). */
  readonly failoverStallMs: number;
  /** The longest gap anywhere in the run, for comparison. */
  readonly longestStallMs: number;
  readonly connections: number;
  readonly completed: number;
  readonly resets: number;
  /** Lost + duplicated + corrupted bytes. */
  readonly bytesDamaged: number;
  readonly midStream: boolean;
  /** The node that reported role primary afterwards (null: none did). */
  readonly newPrimary: number | null;
  readonly detectMs: number | null;
  /** From the takeover to its last connection resumed, and how many it resumed (null: not reported). */
  readonly resumeMs?: number | null;
  readonly resumedConnections?: number | null;
}

/** A figure next to its target. */
export interface TargetCheck {
  readonly name: string;
  readonly target: string;
  readonly value: number | null;
  readonly unit: string;
  /** null when the figure could not be measured. */
  readonly met: boolean | null;
}

/** Targets from the issue. */
export const BENCH_TARGETS = {
  stallMedianMsMax: 10,
  throughputRatioMin: 0.9,
  p50OverheadUsMax: 50,
  migrationUsPerConnectionMax: 100,
} as const;

/** The bench's result (`reliab ha bench --json` prints it). */
export interface BenchReport {
  readonly direct: PathFigures;
  readonly ha: PathFigures;
  /** HA p50 minus direct p50, µs. */
  readonly p50OverheadUs: number;
  readonly p99OverheadUs: number;
  /** HA throughput / direct throughput. */
  readonly throughputRatio: number;
  readonly failover: {
    readonly runs: readonly FailoverRun[];
    readonly stallMedianMs: number | null;
    readonly stallMaxMs: number | null;
    /** Runs where every connection completed with no reset and no damaged byte. */
    readonly cleanRuns: number;
  };
  /** Planned migrations (`ha migrate`) under the same load. */
  readonly migration: {
    readonly runs: readonly FailoverRun[];
    readonly stallMedianMs: number | null;
    readonly stallMaxMs: number | null;
    readonly cleanRuns: number;
    /** Median over runs of resume_ms / connections resumed, µs. */
    readonly usPerConnectionMedian: number | null;
  };
  /**
   * The same failovers on labs with a netem SPEC on every link (`bench
   * --netem`): the stall under a hostile network. Absent or null without.
   */
  readonly failoverNetem?: {
    readonly netem: LabNetem;
    readonly runs: readonly FailoverRun[];
    readonly stallMedianMs: number | null;
    readonly stallMaxMs: number | null;
    readonly cleanRuns: number;
  } | null;
  /** The HA path with two replicas (three nodes): its overhead over direct. */
  readonly ha2?: {
    readonly path: PathFigures;
    readonly p50OverheadUs: number;
    readonly throughputRatio: number;
  } | null;
  readonly targets: readonly TargetCheck[];
  readonly machine: { readonly cpus: number; readonly kernel: string };
}

/**
 * Builds the report from what the bench measured.
 *
 * @example
 * ```ts
 * const report = buildBenchReport(direct, ha, runs, { cpus: 2, kernel: "6.18" });
 * ```
 */
export function buildBenchReport(
  direct: PathFigures,
  ha: PathFigures,
  runs: readonly FailoverRun[],
  machine: BenchReport["machine"],
  migrations: readonly FailoverRun[] = [],
): BenchReport {
  const { stallMedianMs, stallMaxMs, cleanRuns } = stallFigures(runs);
  const migration = stallFigures(migrations);
  const perConnection = migrations.flatMap((r) =>
    r.resumeMs === undefined || r.resumeMs === null || !r.resumedConnections
      ? []
      : [r.resumeMs * 1000 / r.resumedConnections]
  );
  const usPerConnectionMedian = perConnection.length === 0 ? null : median(perConnection);
  const throughputRatio = direct.throughputMBps > 0 ? ha.throughputMBps / direct.throughputMBps : 0;
  const p50OverheadUs = ha.latencyP50Us - direct.latencyP50Us;
  const targets: TargetCheck[] = [
    {
      name: "failover stall, median",
      target: `<= ${BENCH_TARGETS.stallMedianMsMax} ms`,
      value: stallMedianMs,
      unit: "ms",
      met: stallMedianMs === null ? null : stallMedianMs <= BENCH_TARGETS.stallMedianMsMax,
    },
    {
      name: "throughput, HA / direct",
      target: `>= ${BENCH_TARGETS.throughputRatioMin * 100} %`,
      value: throughputRatio * 100,
      unit: "%",
      met: throughputRatio >= BENCH_TARGETS.throughputRatioMin,
    },
    {
      name: "p50 latency overhead",
      target: `<= ${BENCH_TARGETS.p50OverheadUsMax} µs`,
      value: p50OverheadUs,
      unit: "µs",
      met: p50OverheadUs <= BENCH_TARGETS.p50OverheadUsMax,
    },
    {
      name: "migration, per connection",
      target: `<= ${BENCH_TARGETS.migrationUsPerConnectionMax} µs`,
      value: usPerConnectionMedian,
      unit: "µs",
      met: usPerConnectionMedian === null
        ? null
        : usPerConnectionMedian <= BENCH_TARGETS.migrationUsPerConnectionMax,
    },
  ];
  return {
    direct,
    ha,
    p50OverheadUs,
    p99OverheadUs: ha.latencyP99Us - direct.latencyP99Us,
    throughputRatio,
    failover: { runs, stallMedianMs, stallMaxMs, cleanRuns },
    migration: { runs: migrations, ...migration, usPerConnectionMedian },
    targets,
    machine,
  };
}

/**
 * The report with the failovers under netem added (`bench --netem`).
 *
 * @example
 * ```ts
 * const full = withNetemFailovers(report, { spec: "loss 1%", mode: "netem" }, runs);
 * ```
 */
export function withNetemFailovers(
  report: BenchReport,
  netem: LabNetem,
  runs: readonly FailoverRun[],
): BenchReport {
  return { ...report, failoverNetem: { netem, runs, ...stallFigures(runs) } };
}

/**
 * The report with the two-replica path added.
 *
 * @example
 * ```ts
 * const full = withTwoReplicas(report, ha2);
 * ```
 */
export function withTwoReplicas(report: BenchReport, path: PathFigures): BenchReport {
  const d = report.direct;
  return {
    ...report,
    ha2: {
      path,
      p50OverheadUs: path.latencyP50Us - d.latencyP50Us,
      throughputRatio: d.throughputMBps > 0 ? path.throughputMBps / d.throughputMBps : 0,
    },
  };
}

function stallFigures(runs: readonly FailoverRun[]) {
  const stalls = runs.map((r) => r.failoverStallMs);
  return {
    stallMedianMs: stalls.length === 0 ? null : median(stalls),
    stallMaxMs: stalls.length === 0 ? null : Math.max(...stalls),
    cleanRuns:
      runs.filter((r) =>
        r.completed === r.connections && r.resets === 0 && r.bytesDamaged === 0 && r.midStream &&
        r.newPrimary !== null
      ).length,
  };
}

/**
 * The report as text for people: a table of both paths, the failovers, and
 * each target with its figure.
 *
 * @example
 * ```ts
 * console.log(renderBenchText(report));
 * ```
 */
export function renderBenchText(report: BenchReport): string {
  const d = report.direct;
  const h = report.ha;
  const cpu = (v: number | null) => v === null ? "?" : v.toFixed(2);
  const row = (name: string, direct: string, ha: string, note = "") =>
    `  ${name.padEnd(24)}${direct.padStart(12)}${ha.padStart(12)}  ${note}`.trimEnd();
  const f = report.failover;
  const m = report.migration;
  const lines = [
    `reliab ha bench (${report.machine.cpus} CPUs, Linux ${report.machine.kernel})`,
    row("", "direct", "HA (1 rep)"),
    row(
      "latency p50 (µs)",
      d.latencyP50Us.toFixed(1),
      h.latencyP50Us.toFixed(1),
      `+${report.p50OverheadUs.toFixed(1)}`,
    ),
    row(
      "latency p99 (µs)",
      d.latencyP99Us.toFixed(1),
      h.latencyP99Us.toFixed(1),
      `+${report.p99OverheadUs.toFixed(1)}`,
    ),
    row(
      "throughput (MB/s)",
      d.throughputMBps.toFixed(1),
      h.throughputMBps.toFixed(1),
      `${(report.throughputRatio * 100).toFixed(1)} %`,
    ),
    row("CPU (ms per MB)", cpu(d.cpuMsPerMB), cpu(h.cpuMsPerMB)),
    ...(report.ha2 ? twoReplicaLines(report.ha2, cpu) : []),
    `  failovers: ${f.runs.length} runs, ${f.cleanRuns} clean; stall across the kill median ${
      f.stallMedianMs?.toFixed(1) ?? "?"
    } ms, max ${f.stallMaxMs?.toFixed(1) ?? "?"} ms`,
    ...f.runs.map((r, i) => runText(r, i)),
    `  migrations: ${m.runs.length} runs, ${m.cleanRuns} clean; stall across the kill median ${
      m.stallMedianMs?.toFixed(1) ?? "?"
    } ms, max ${m.stallMaxMs?.toFixed(1) ?? "?"} ms; ${
      m.usPerConnectionMedian?.toFixed(1) ?? "?"
    } µs per connection (median)`,
    ...m.runs.map((r, i) => runText(r, i)),
    ...netemLines(report),
    "  targets:",
    ...report.targets.map((t) =>
      `    ${t.met === null ? "?   " : t.met ? "met " : "MISS"} ${t.name}: ${
        t.value === null ? "?" : `${t.value.toFixed(1)} ${t.unit}`
      } (target ${t.target})`
    ),
  ];
  for (const [name, path] of [["direct", d], ["HA", h]] as const) {
    if (path.latencyMismatches > 0) {
      lines.push(`  problem: ${path.latencyMismatches} ${name} round trips echoed wrong bytes`);
    }
    if (!path.bulkClean) lines.push(`  problem: the ${name} bulk load was not clean`);
  }
  return lines.join("\n");
}

function netemLines(report: BenchReport): string[] {
  const n = report.failoverNetem;
  if (n === undefined || n === null) return [];
  return [
    `  failovers under netem "${n.netem.spec}"${
      n.netem.mode === "emulated" ? " (emulated)" : ""
    }: ${n.runs.length} runs, ${n.cleanRuns} clean; stall across the kill median ${
      n.stallMedianMs?.toFixed(1) ?? "?"
    } ms, max ${n.stallMaxMs?.toFixed(1) ?? "?"} ms`,
    ...n.runs.map((r, i) => runText(r, i)),
  ];
}

function twoReplicaLines(
  t: NonNullable<BenchReport["ha2"]>,
  cpu: (v: number | null) => string,
): string[] {
  return [
    `  HA with 2 replicas: latency p50 ${t.path.latencyP50Us.toFixed(1)} µs ` +
    `(+${t.p50OverheadUs.toFixed(1)}), p99 ${t.path.latencyP99Us.toFixed(1)} µs, ` +
    `throughput ${t.path.throughputMBps.toFixed(1)} MB/s (${
      (t.throughputRatio * 100).toFixed(1)
    } %), ` +
    `CPU ${cpu(t.path.cpuMsPerMB)} ms per MB`,
  ];
}

function runText(r: FailoverRun, i: number): string {
  return `    run ${i + 1}: stall ${r.failoverStallMs.toFixed(1)} ms across the kill ` +
    `(longest gap in the run ${r.longestStallMs.toFixed(1)} ms), ` +
    `${r.completed}/${r.connections} complete, ${r.resets} resets, ` +
    `${r.bytesDamaged} bytes damaged, ${takeoverText(r)}` +
    (r.midStream ? "" : " (load ended before the kill)");
}

function takeoverText(run: FailoverRun): string {
  if (run.newPrimary === null) return "no new primary";
  const detect = run.detectMs === null ? "?" : `${run.detectMs.toFixed(2)} ms`;
  const resumed = run.resumeMs === undefined || run.resumeMs === null
    ? ""
    : `, ${run.resumedConnections ?? "?"} connections resumed in ${
      (run.resumeMs * 1000).toFixed(0)
    } µs`;
  return `node ${run.newPrimary} took over, detect ${detect}${resumed}`;
}
