/**
 * `reliab ha bench`: one run on a lab of its own (`rlhb`, two nodes), side
 * by side — the direct path (client to the reference NF on node 1, no agent)
 * against HA with one replica — then repeated failovers with fresh agents.
 *
 * - Latency: small echo round trips, one at a time, on one connection
 *   (`reliab ha latency` in the client namespace): p50 and p99.
 * - Throughput: the verifying bulk load (`reliab ha load`), echoed bytes per second.
 * - CPU: user + system time of every process in the node namespaces (agent,
 *   NF, and on the HA path the replica's too) over the bulk load, per MB echoed.
 * - Failover: SIGKILL of the primary's namespaces mid-stream, N times, each
 *   on a fresh lab; the longest stall any client saw, its median and max.
 * - With `netem`: the same failovers again on labs with that SPEC on every
 *   link — the stall under a hostile network, reported on its own.
 *
 * The clients run in the client namespace on the same 2 CPUs as the rest, so
 * every figure includes their cost on both paths alike.
 *
 * @module
 */
import { ReliabError } from "../errors.ts";
import { type Lab, labDown } from "./lab.ts";
import { interrupted, namespaceProcesses, NetnsProcess } from "./_netns_process.ts";
import { type Cluster, NF_PORT_DEFAULT, referenceNfCommand, startCluster } from "./lab_cluster.ts";
import { parseLatencySummary } from "./child_output.ts";
import { claimLab, failoverUnderLoad, readLoadSummary, untilAborted } from "./demo.ts";
import { type LabNetem, parseNetemSpec } from "./lab_netem.ts";
import { clockTicksPerSecond, cpuDeltaMs, cpuSnapshot } from "./proc_cpu.ts";
import {
  type BenchReport,
  buildBenchReport,
  type FailoverRun,
  type PathFigures,
  withNetemFailovers,
  withTwoReplicas,
} from "./bench_report.ts";
import { reliabArgv } from "./self_command.ts";
import { failoverStall } from "./demo_report.ts";

/** The bench's lab name: its own, so neither a user's lab nor a running demo is touched. */
export const BENCH_LAB_NAME = "rlhb";
/** Most failover runs of one bench. */
export const BENCH_FAILOVERS_MAX = 100;

/** Options of `runBench`. */
export interface BenchOptions {
  /** Failover runs (default 5; 0 skips them). */
  readonly failovers?: number;
  /** Planned migrations (`ha migrate`), each on a fresh lab (default 3; 0 skips them). */
  readonly migrations?: number;
  /** Timed echo round trips per path (default 5000). */
  readonly latencyRequests?: number;
  /** Connections of the bulk load (default 4). */
  readonly bulkConnections?: number;
  /** Bytes per bulk connection (default 32 MiB). */
  readonly bulkBytesPerConnection?: number;
  /** Connections streaming during each failover (default 16). */
  readonly failoverConnections?: number;
  /** Bytes per connection during each failover (default 4 MiB). */
  readonly failoverBytesPerConnection?: number;
  /**
   * A netem SPEC: when given, the failover runs are repeated on labs with it
   * on every link (`lab up --netem`), for the stall under a hostile network.
   */
  readonly netem?: string;
  /** Lab name (default `rlhb`). */
  readonly name?: string;
  readonly port?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (message: string) => void;
}

type Checked =
  & Required<Omit<BenchOptions, "signal" | "onProgress" | "netem">>
  & Pick<BenchOptions, "netem">;

/**
 * Checks the bench's options and fills the defaults; throws RangeError.
 *
 * @example
 * ```ts
 * checkBenchOptions({ failovers: 3 }).latencyRequests; // 5000
 * ```
 */
export function checkBenchOptions(options: BenchOptions = {}): Checked {
  const checked: Checked = {
    failovers: options.failovers ?? 5,
    migrations: options.migrations ?? 3,
    latencyRequests: options.latencyRequests ?? 5000,
    bulkConnections: options.bulkConnections ?? 4,
    bulkBytesPerConnection: options.bulkBytesPerConnection ?? 32 * 1024 * 1024,
    failoverConnections: options.failoverConnections ?? 16,
    failoverBytesPerConnection: options.failoverBytesPerConnection ?? 4 * 1024 * 1024,
    name: options.name ?? BENCH_LAB_NAME,
    port: options.port ?? NF_PORT_DEFAULT,
  };
  const within = (value: number, low: number, high: number, what: string) => {
    if (!Number.isInteger(value) || value < low || value > high) {
      throw new RangeError(`Invalid ${what} "${value}": use ${low} to ${high}`);
    }
  };
  within(checked.failovers, 0, BENCH_FAILOVERS_MAX, "failover count");
  within(checked.migrations, 0, BENCH_FAILOVERS_MAX, "migration count");
  within(checked.latencyRequests, 1, 1_000_000, "request count");
  within(checked.bulkConnections, 1, 4096, "bulk connection count");
  within(checked.bulkBytesPerConnection, 1, 1024 * 1024 * 1024, "bulk byte count");
  within(checked.failoverConnections, 1, 4096, "failover connection count");
  within(checked.failoverBytesPerConnection, 1, 1024 * 1024 * 1024, "failover byte count");
  within(checked.port, 1, 65535, "port");
  if (options.netem !== undefined) {
    // A bad SPEC fails here, before the first lab is made.
    return { ...checked, netem: parseNetemSpec(options.netem).text };
  }
  return checked;
}

/**
 * Runs the bench and returns its report. Everything it made is removed at
 * the end, also on failure and when `signal` aborts.
 *
 * @example
 * ```ts
 * const report = await runBench({ failovers: 5 });
 * console.log(report.throughputRatio);
 * ```
 */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const o = checkBenchOptions(options);
  const say = options.onProgress ?? (() => {});
  const signal = options.signal;
  const hz = await clockTicksPerSecond();
  // Before the try: a lab that is busy (another bench) must not be taken
  // down, and a half-made one is removed by labUp itself.
  let lab = await claimLab(o.name, 2);
  try {
    const node1 = lab.nodes[0]!;
    say(`direct path: the reference NF on node 1 (${node1.addr}), no agent`);
    const nf = new NetnsProcess(node1.netns, referenceNfCommand(node1.addr, o.port));
    let direct: PathFigures;
    try {
      await nf.waitForLine("stdout", (l) => l.startsWith("listening"), {
        timeoutMs: 60_000,
        action: "Cannot start the reference NF",
        hint: `run it by hand: ip netns exec ${node1.netns} ${nf.argv.join(" ")}`,
        signal,
      });
      direct = await measurePath(lab, node1.addr, [node1.netns], o, hz, options);
    } finally {
      await nf.terminate();
    }
    say("HA path: agents on both nodes, node 1 primary, node 2 replica");
    const ha = await measureCluster(lab, o, hz, options);
    say("HA path with 2 replicas: three nodes, node 1 primary");
    lab = await claimLab(o.name, 3);
    const ha2 = await measureCluster(lab, o, hz, options);
    const runs: FailoverRun[] = [];
    const migrations: FailoverRun[] = [];
    const plan = [
      ...Array.from({ length: o.failovers }, () => "sigkill" as const),
      ...Array.from({ length: o.migrations }, () => "migrate" as const),
      ...Array.from({ length: o.netem === undefined ? 0 : o.failovers }, () => "netem" as const),
    ];
    const netemRuns: FailoverRun[] = [];
    let netem: LabNetem | null = null;
    for (const [i, kill] of plan.entries()) {
      say(
        kill === "netem"
          ? `failover ${i - o.failovers - o.migrations + 1} of ${o.failovers} under netem ` +
            `"${o.netem}": fresh lab and agents, SIGKILL of the primary`
          : kill === "sigkill"
          ? `failover ${i + 1} of ${o.failovers}: fresh lab and agents, SIGKILL of the primary`
          : `migration ${i - o.failovers + 1} of ${o.migrations}: fresh lab and agents, ` +
            "'ha migrate --to 2' on the primary",
      );
      // A SIGKILLed agent cleans nothing up: a fresh lab each time.
      lab = await claimLab(o.name, 2, kill === "netem" ? { netem: o.netem } : {});
      netem = lab.netem ?? netem;
      let cluster: Cluster | undefined;
      try {
        cluster = await startCluster(lab, clusterOptions(o, options));
        const { summary, facts } = await failoverUnderLoad(cluster, {
          connections: o.failoverConnections,
          bytesPerConnection: o.failoverBytesPerConnection,
          kill: kill === "netem" ? "sigkill" : kill,
          killAtFraction: 0.25,
          signal,
        });
        const takeover = facts.newPrimary?.takeover;
        const stall = failoverStall(summary, facts) ?? summary.longestStallMs;
        (kill === "sigkill" ? runs : kill === "netem" ? netemRuns : migrations).push({
          failoverStallMs: stall,
          longestStallMs: summary.longestStallMs,
          connections: summary.connections,
          completed: summary.completed,
          resets: summary.resets,
          bytesDamaged: summary.bytesLost + summary.bytesDuplicated + summary.bytesCorrupted,
          midStream: facts.midStream,
          newPrimary: facts.newPrimary?.id ?? null,
          detectMs: takeover?.detectMs ?? null,
          // A migration counts from the command on the old primary when the
          // clocks allow it (one host), else from the handover's arrival.
          resumeMs: takeover?.commandToResumeMs ?? takeover?.resumeMs ?? null,
          resumedConnections: takeover?.resumed ?? null,
        });
        say(
          `  stall across the kill ${stall.toFixed(1)} ms, ` +
            `longest gap in the run ${summary.longestStallMs.toFixed(1)} ms`,
        );
      } finally {
        await cluster?.stop();
      }
    }
    const report = buildBenchReport(direct, ha, runs, {
      cpus: navigator.hardwareConcurrency,
      kernel: Deno.osRelease(),
    }, migrations);
    const full = withTwoReplicas(report, ha2);
    return netem === null ? full : withNetemFailovers(full, netem, netemRuns);
  } finally {
    say(`taking lab "${o.name}" down`);
    await labDown({ name: o.name });
  }
}

/** Agents on every node of `lab`, then the path through the VIP, with their CPU. */
async function measureCluster(
  lab: Lab,
  o: Checked,
  hz: number,
  options: BenchOptions,
): Promise<PathFigures> {
  const cluster = await startCluster(lab, clusterOptions(o, options));
  try {
    const namespaces = cluster.nodes.flatMap((n) => [n.lab.netns, n.nfNetns]);
    return await measurePath(lab, lab.vip, namespaces, o, hz, options);
  } finally {
    await cluster.stop();
  }
}

function clusterOptions(o: Checked, options: BenchOptions) {
  return {
    port: o.port,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  };
}

/** Latency, then the bulk load with the CPU of `namespaces` measured around it. */
async function measurePath(
  lab: Lab,
  host: string,
  namespaces: readonly string[],
  o: Checked,
  hz: number,
  options: BenchOptions,
): Promise<PathFigures> {
  const action = "Cannot finish the bench";
  const latencyProcess = new NetnsProcess(lab.client.netns, [
    ...reliabArgv(),
    "ha",
    "latency",
    "--connect",
    `${host}:${o.port}`,
    "--requests",
    String(o.latencyRequests),
    "--json",
  ]);
  const latencyOut = await untilAborted(latencyProcess.output(), options.signal, action)
    .finally(() => latencyProcess.terminate(1000));
  if (!latencyOut.status.success) {
    throw new ReliabError(`${action}: the latency client failed: ${latencyProcess.lastError()}`, {
      code: "latency_failed",
      hint: `run it by hand: ip netns exec ${lab.client.netns} ${latencyProcess.argv.join(" ")}`,
    });
  }
  const latency = parseLatencySummary(latencyOut.stdout);
  options.onProgress?.(
    `  latency p50 ${latency.p50Us.toFixed(1)} µs, p99 ${latency.p99Us.toFixed(1)} µs`,
  );
  if (options.signal?.aborted) throw interrupted(action);
  const before = await cpuSnapshot(await namespaceProcesses(namespaces));
  const load = new NetnsProcess(lab.client.netns, [
    ...reliabArgv(),
    "ha",
    "load",
    "--connect",
    `${host}:${o.port}`,
    "--connections",
    String(o.bulkConnections),
    "--bytes",
    String(o.bulkBytesPerConnection),
    "--json",
  ]);
  const loadOut = await untilAborted(load.output(), options.signal, action)
    .finally(() => load.terminate(1000));
  const after = await cpuSnapshot(await namespaceProcesses(namespaces));
  const summary = readLoadSummary(loadOut.stdout, load, action);
  const megabytes = summary.bytesVerified / 1e6;
  const throughputMBps = summary.elapsedMs > 0 ? megabytes / (summary.elapsedMs / 1000) : 0;
  options.onProgress?.(`  throughput ${throughputMBps.toFixed(1)} MB/s`);
  return {
    latencyP50Us: latency.p50Us,
    latencyP99Us: latency.p99Us,
    latencyMismatches: latency.mismatches,
    throughputMBps,
    cpuMsPerMB: megabytes > 0 ? cpuDeltaMs(before, after, hz) / megabytes : null,
    bulkClean: summary.completed === summary.connections && summary.resets === 0 &&
      summary.bytesLost + summary.bytesDuplicated + summary.bytesCorrupted === 0,
  };
}
