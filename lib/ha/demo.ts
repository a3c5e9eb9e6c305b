/**
 * `reliab ha demo`: the whole story in one command. A lab of its own, an
 * agent on every node with the reference echo NF behind it, many clients
 * streaming verified bytes both ways, the primary killed mid-stream, then the
 * report: did every connection survive with every byte intact, how long was
 * the longest stall, how fast was the takeover. Everything it made is
 * removed at the end, also on failure and on Ctrl-C (through `signal`).
 *
 * The demo uses its own lab name (`rlhd`), so it never touches a lab the user
 * made with `reliab ha lab up` (`rlha`). If `rlhd` is still there it is
 * taken down first — unless processes run in it: then another demo is
 * running and the demo refuses with a clear message.
 *
 * @module
 */
import { ConfigError, ReliabError } from "../errors.ts";
import { checkCapabilities, type Lab, labDown, labLeftovers, labPlan, labUp } from "./lab.ts";
import { interrupted, netnsPids, NetnsProcess } from "./_netns_process.ts";
import {
  type Cluster,
  KILL_MODES,
  type KillMode,
  NF_PORT_DEFAULT,
  startCluster,
} from "./lab_cluster.ts";
import {
  type HaRole,
  type LoadSummary,
  parseLoadProgress,
  parseLoadSummary,
} from "./child_output.ts";
import {
  buildDemoReport,
  type DemoReport,
  type FailoverFacts,
  type Takeover,
} from "./demo_report.ts";
import { reliabArgv } from "./self_command.ts";

/** The demo's lab name: not the default `rlha`, so a user's lab is never touched. */
export const DEMO_LAB_NAME = "rlhd";
/** Largest demo cluster: a primary and 8 replicas, as in HA/TCP. */
export const DEMO_NODES_MAX = 9;
/** Largest stream per connection (1 GiB). */
export const DEMO_BYTES_MAX = 1024 * 1024 * 1024;
const PROGRESS_MS = 50;
/** How long the load may run; it bounds itself per connection too (30 s without progress). */
const LOAD_TIMEOUT_MS = 600_000;
const NEW_PRIMARY_TIMEOUT_MS = 5_000;

/** Options of `runDemo`. */
export interface DemoOptions {
  /** Concurrent client connections (default 64). */
  readonly connections?: number;
  /** Bytes each connection sends and gets echoed (default 4 MiB). */
  readonly bytesPerConnection?: number;
  /** Nodes: one primary and the rest replicas (default 2). */
  readonly nodes?: number;
  /** How the primary dies (default `sigkill`). */
  readonly kill?: KillMode;
  /** Lab name (default `rlhd`). */
  readonly name?: string;
  /** The NF's port on the VIP (default 7000). */
  readonly port?: number;
  /** Share of the stream verified before the kill, 0 < f < 1 (default 0.25). */
  readonly killAtFraction?: number;
  /** A netem SPEC for every lab link (`lab up --netem`); none by default. */
  readonly netem?: string;
  /** Aborting stops the demo and removes everything it made. */
  readonly signal?: AbortSignal;
  /** One line per step. */
  readonly onProgress?: (message: string) => void;
}

/** Demo options with every default filled in. */
export type CheckedDemoOptions =
  & Required<Omit<DemoOptions, "signal" | "onProgress" | "netem">>
  & Pick<DemoOptions, "signal" | "onProgress" | "netem">;

/**
 * Checks the demo's options and fills the defaults; throws RangeError.
 *
 * @example
 * ```ts
 * checkDemoOptions({ kill: "link" }).connections; // 64
 * ```
 */
export function checkDemoOptions(options: DemoOptions = {}): CheckedDemoOptions {
  const checked = {
    connections: options.connections ?? 64,
    bytesPerConnection: options.bytesPerConnection ?? 4 * 1024 * 1024,
    nodes: options.nodes ?? 2,
    kill: options.kill ?? "sigkill",
    name: options.name ?? DEMO_LAB_NAME,
    port: options.port ?? NF_PORT_DEFAULT,
    killAtFraction: options.killAtFraction ?? 0.25,
    ...(options.netem === undefined ? {} : { netem: options.netem }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress }),
  };
  const within = (value: number, low: number, high: number, what: string) => {
    if (!Number.isInteger(value) || value < low || value > high) {
      throw new RangeError(`Invalid ${what} "${value}": use ${low} to ${high}`);
    }
  };
  within(checked.connections, 1, 4096, "connection count");
  within(checked.bytesPerConnection, 1, DEMO_BYTES_MAX, "byte count");
  // One node could not fail over to anything.
  within(checked.nodes, 2, DEMO_NODES_MAX, "node count");
  within(checked.port, 1, 65535, "port");
  if (!KILL_MODES.includes(checked.kill)) {
    throw new RangeError(`Invalid kill mode "${checked.kill}": use ${KILL_MODES.join(", ")}`);
  }
  if (!(checked.killAtFraction > 0 && checked.killAtFraction < 1)) {
    throw new RangeError(
      `Invalid kill point "${checked.killAtFraction}": use a fraction in (0, 1)`,
    );
  }
  // Checks the name and the netem SPEC.
  labPlan({
    name: checked.name,
    nodes: checked.nodes,
    ...(checked.netem === undefined ? {} : { netem: checked.netem }),
  });
  return checked;
}

/**
 * Makes lab `name` fresh for a run: refuses if processes run in it (another
 * demo or bench), else takes any leftover down and brings it up (with
 * `options.netem` on every link when given).
 *
 * @example
 * ```ts
 * const lab = await claimLab("rlhd", 3, { netem: "loss 1%" });
 * ```
 */
export async function claimLab(
  name: string,
  nodes: number,
  options: { readonly netem?: string | undefined } = {},
): Promise<Lab> {
  await checkCapabilities(`bring lab "${name}" up`);
  for (const ns of await labLeftovers(name)) {
    const pids = await netnsPids(ns);
    if (pids.length > 0) {
      throw new ConfigError(
        `Cannot use lab "${name}": processes ${pids.join(", ")} run in "${ns}"`,
        {
          code: "lab_busy",
          hint:
            `another demo or bench is running; if not, stop them and run 'reliab ha lab down --name ${name}'`,
        },
      );
    }
  }
  await labDown({ name });
  return await labUp({
    name,
    nodes,
    ...(options.netem === undefined ? {} : { netem: options.netem }),
  });
}

/**
 * Runs the demo and returns its report (`report.ok` is the verdict). Throws
 * a ReliabError only when the demo itself cannot run (no privileges, an
 * agent that does not start, Ctrl-C); a failover that loses bytes is a report.
 *
 * @example
 * ```ts
 * const report = await runDemo({ connections: 64, kill: "sigkill" });
 * console.log(report.ok, report.longestStallMs);
 * ```
 */
export async function runDemo(options: DemoOptions = {}): Promise<DemoReport> {
  const o = checkDemoOptions(options);
  const say = o.onProgress ?? (() => {});
  const action = "Cannot finish the demo";
  if (o.signal?.aborted) throw interrupted(action);
  // Before the try: a lab that is busy (another demo) must not be taken down,
  // and a half-made one is removed by labUp itself.
  const lab = await claimLab(o.name, o.nodes, { netem: o.netem });
  let cluster: Cluster | undefined;
  try {
    say(`lab "${lab.name}" up: ${o.nodes} nodes, client ${lab.client.netns}, VIP ${lab.vip}`);
    if (lab.netem !== undefined) say(`netem on every link: ${lab.netem.spec} (${lab.netem.mode})`);
    cluster = await startCluster(lab, {
      port: o.port,
      ...(o.signal === undefined ? {} : { signal: o.signal }),
      onProgress: say,
    });
    const { summary, facts } = await failoverUnderLoad(cluster, o);
    return buildDemoReport(summary, facts, {
      lab: lab.name,
      nodes: o.nodes,
      vip: lab.vip,
      netem: lab.netem ?? null,
    });
  } finally {
    say(`stopping the agents and taking lab "${o.name}" down`);
    await cluster?.stop();
    await labDown({ name: o.name });
  }
}

/** Options of `failoverUnderLoad`. */
export interface FailoverUnderLoadOptions {
  readonly connections: number;
  readonly bytesPerConnection: number;
  readonly kill: KillMode;
  /** Share of the stream verified before the kill, 0 < f < 1. */
  readonly killAtFraction: number;
  /** How long each load connection may take in all (default 30 s; lossy networks need more). */
  readonly loadTimeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((message: string) => void) | undefined;
}

/**
 * On a running cluster: starts the verifying load in the client namespace,
 * fails node 1 (the primary) once `killAtFraction` of the stream came back,
 * waits for the load to end and asks the survivors who took over. Returns
 * what the load client saw and the failover facts; the caller stops the
 * cluster.
 *
 * @example
 * ```ts
 * const { summary, facts } = await failoverUnderLoad(cluster, {
 *   connections: 64, bytesPerConnection: 4 << 20, kill: "sigkill", killAtFraction: 0.25,
 * });
 * ```
 */
export async function failoverUnderLoad(
  cluster: Cluster,
  o: FailoverUnderLoadOptions,
): Promise<{ summary: LoadSummary; facts: FailoverFacts }> {
  const say = o.onProgress ?? (() => {});
  const action = "Cannot finish the failover run";
  const lab = cluster.lab;
  const statusErrors: string[] = [];
  const epochBefore = await cluster.status(1).then((s) => s.epoch, (error: unknown) => {
    statusErrors.push(errorText(error));
    return null;
  });
  say(`streaming: ${o.connections} connections, ${o.bytesPerConnection} B each way per connection`);
  const loadStart = performance.now();
  const load = new NetnsProcess(lab.client.netns, [
    ...reliabArgv(),
    "ha",
    "load",
    "--connect",
    `${lab.vip}:${cluster.port}`,
    "--connections",
    String(o.connections),
    "--bytes",
    String(o.bytesPerConnection),
    "--progress-ms",
    String(PROGRESS_MS),
    ...(o.loadTimeoutMs === undefined ? [] : ["--timeout-ms", String(o.loadTimeoutMs)]),
    "--json",
  ]);
  try {
    const notMidStream = await waitForKillPoint(load, o);
    const progress = parseLoadProgress(
      load.lines("stderr").findLast((l) => parseLoadProgress(l) !== undefined) ?? "",
    );
    const share = progress === undefined ? 1 : progress.verified / Math.max(1, progress.total);
    say(`killing node 1, the primary (${o.kill}), ${(share * 100).toFixed(0)} % into the stream`);
    const killAfterMs = performance.now() - loadStart;
    const killStartUnixMs = Date.now();
    const killAtUnixMs = await cluster.kill(1, o.kill);
    const finished = await untilAborted(load.output(), o.signal, action);
    const summary = readLoadSummary(finished.stdout, load, action);
    say(`load done: ${summary.completed}/${summary.connections} connections complete`);
    const next = await cluster.waitForPrimary(1, epochBefore ?? -1, NEW_PRIMARY_TIMEOUT_MS);
    let oldPrimaryRole: HaRole | null = null;
    if (!cluster.isDead(1)) {
      oldPrimaryRole = await cluster.status(1).then((s) => s.role, () => null);
    }
    // Every takeover a survivor made: more than one means a spurious failover.
    const takeovers: Takeover[] = [];
    for (const node of cluster.nodes) {
      if (node.id === 1) continue;
      const s = await cluster.status(node.id).catch(() => undefined);
      if (s?.takeover) takeovers.push({ id: s.id, epoch: s.epoch, role: s.role, ...s.takeover });
    }
    if (next !== undefined) say(`node ${next.id} is primary now (epoch ${next.epoch})`);
    const facts: FailoverFacts = {
      kill: o.kill,
      killedNode: 1,
      midStream: notMidStream === null,
      notMidStream,
      killAfterMs,
      killAtUnixMs,
      killStartUnixMs,
      epochBefore,
      newPrimary: next === undefined
        ? null
        : { id: next.id, epoch: next.epoch, takeover: next.takeover },
      oldPrimaryRole,
      takeovers,
      statusErrors,
    };
    return { summary, facts };
  } finally {
    await load.terminate(2_000);
  }
}

/**
 * Waits until every connection is up and `killAtFraction` of the stream was
 * verified; returns null then, or why that point never came (the load ended
 * first).
 */
async function waitForKillPoint(
  load: NetnsProcess,
  o: FailoverUnderLoadOptions,
): Promise<string | null> {
  try {
    await load.waitForLine("stderr", (line) => {
      const p = parseLoadProgress(line);
      return p !== undefined && p.connected === o.connections &&
        p.verified >= o.killAtFraction * p.total;
    }, {
      timeoutMs: LOAD_TIMEOUT_MS,
      action: "Cannot stream through the cluster",
      hint: "the load made no progress; see 'reliab ha status' on the nodes",
      signal: o.signal,
    });
    return null;
  } catch (error) {
    if (load.running || o.signal?.aborted) throw error;
    const last = load.lines("stderr").findLast((l) => parseLoadProgress(l) !== undefined);
    const p = parseLoadProgress(last ?? "");
    if (p !== undefined && p.connected < o.connections) {
      return `the load ended before the kill: only ${p.connected} of ${o.connections} connections were ever established`;
    }
    return "the load ended before the kill: give more --bytes";
  }
}

/**
 * Awaits `promise`, or rejects with `interrupted(action)` when `signal` aborts first.
 *
 * @example
 * ```ts
 * const out = await untilAborted(child.output(), signal, "Cannot finish the bench");
 * ```
 */
export function untilAborted<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  action: string,
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(interrupted(action));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(interrupted(action));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * The load client's JSON report; a ReliabError with its last error line when
 * it printed none (it crashed, or could not connect at all).
 *
 * @example
 * ```ts
 * const summary = readLoadSummary((await load.output()).stdout, load, "Cannot finish the demo");
 * ```
 */
export function readLoadSummary(stdout: string, load: NetnsProcess, action: string): LoadSummary {
  try {
    return parseLoadSummary(stdout);
  } catch (error) {
    const why = load.lastError();
    throw new ReliabError(`${action}: the load client gave no report: ${why || errorText(error)}`, {
      code: "load_failed",
      hint: `run it by hand: ip netns exec ${load.netns} ${load.argv.join(" ")}`,
    });
  }
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
