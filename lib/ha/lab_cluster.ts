/**
 * An HA cluster on a lab: `reliab ha up` on every node (node 1 primary) with
 * an NF behind it, the three ways to kill the primary, each node's status,
 * and a stop that leaves the lab as `lab up` made it. The demo, the bench and
 * the failover tests all stand on it.
 *
 * @module
 */
import { ReliabError } from "../errors.ts";
import { type Lab, type LabNode, switchPort } from "./lab.ts";
import { mustRun, runCommand } from "./_command.ts";
import {
  killNetns,
  killSnapshot,
  namespaceProcesses,
  NetnsProcess,
  sleep,
  snapshotProcesses,
} from "./_netns_process.ts";
import { type HaStatusView, parseHaStatus, parseUpLine } from "./child_output.ts";
import { reliabArgv } from "./self_command.ts";

/** How the primary is made to fail (`migrate`: a planned handover to node 2). */
export type KillMode = "sigkill" | "link" | "fail" | "migrate";
/** Every kill mode, in the order the demo's help lists them. */
export const KILL_MODES: readonly KillMode[] = ["sigkill", "link", "fail", "migrate"];

/** Port of the NF on the VIP when the caller names none. */
export const NF_PORT_DEFAULT = 7000;
/** A first run from source may build the native core before the agent starts. */
const READY_TIMEOUT_MS_DEFAULT = 120_000;
const STOP_GRACE_MS = 10_000;

/** Options of `startCluster`. */
export interface ClusterOptions {
  /** The NF's port on the VIP (default 7000). */
  readonly port?: number;
  /**
   * The NF command run behind each agent, given the VIP and port (default:
   * this reliab's reference echo NF).
   */
  readonly command?: (vip: string, port: number) => string[];
  /** `ha up --heartbeat-ms` (the agent's default when absent). */
  readonly heartbeatMs?: number;
  /** `ha up --miss` (the agent's default when absent). */
  readonly miss?: number;
  /** How long each agent may take to print its ready line (default 120 s). */
  readonly readyTimeoutMs?: number;
  readonly signal?: AbortSignal;
  /** One line per step, for the user. */
  readonly onProgress?: (message: string) => void;
}

/** One node of a running cluster. */
export interface ClusterNode {
  readonly id: number;
  readonly lab: LabNode;
  /** The NF's namespace, as the agent reported it. */
  readonly nfNetns: string;
  readonly primary: boolean;
  readonly agent: NetnsProcess;
}

/**
 * The reference echo NF as an argv, listening on `vip:port`.
 *
 * @example
 * ```ts
 * referenceNfCommand("10.77.0.1", 7000); // [".../reliab", "ha", "nf", "--listen", "10.77.0.1:7000", "--mode", "echo"]
 * ```
 */
export function referenceNfCommand(vip: string, port: number): string[] {
  return [...reliabArgv(), "ha", "nf", "--listen", `${vip}:${port}`, "--mode", "echo"];
}

/**
 * The `reliab ha up` argv of one node: every other node is a peer; node 1
 * starts as primary.
 *
 * @example
 * ```ts
 * const argv = agentArgv(labPlan(), 2, { command: ["socat", "..."] });
 * ```
 */
export function agentArgv(
  lab: Lab,
  id: number,
  options: {
    readonly command: readonly string[];
    readonly heartbeatMs?: number;
    readonly miss?: number;
    /** Node 1 starts as a replica too (a restart never claims primary). */
    readonly replica?: boolean;
  },
): string[] {
  const node = lab.nodes.find((n) => n.id === id);
  if (node === undefined) throw new RangeError(`No node "${id}" in lab "${lab.name}"`);
  if (options.command.length === 0) {
    throw new RangeError("Cannot start an agent without an NF command");
  }
  const peers = lab.nodes.filter((n) => n.id !== id).map((n) => n.addr);
  return [
    ...reliabArgv(),
    "ha",
    "up",
    "--id",
    String(id),
    "--vip",
    lab.vip,
    "--iface",
    node.iface,
    "--peers",
    peers.join(","),
    ...(id === 1 && options.replica !== true ? ["--primary"] : []),
    ...(options.heartbeatMs === undefined ? [] : ["--heartbeat-ms", String(options.heartbeatMs)]),
    ...(options.miss === undefined ? [] : ["--miss", String(options.miss)]),
    "--json",
    "--",
    ...options.command,
  ];
}

/**
 * A running cluster. `stop()` (or `await using`) SIGTERMs every agent still
 * running and clears what a killed one left (its NF namespace's processes);
 * the caller takes the lab down.
 */
export class Cluster implements AsyncDisposable {
  readonly lab: Lab;
  readonly port: number;
  readonly #nodes: ClusterNode[];
  /** Nodes whose processes were SIGKILLed: their status cannot be read. */
  readonly #dead = new Set<number>();
  readonly #signal: AbortSignal | undefined;
  readonly #options: ClusterOptions;

  constructor(
    lab: Lab,
    port: number,
    nodes: readonly ClusterNode[],
    signal?: AbortSignal,
    options: ClusterOptions = {},
  ) {
    this.lab = lab;
    this.port = port;
    this.#nodes = [...nodes];
    this.#signal = signal;
    this.#options = options;
  }

  /** Every node, restarted ones as they run now. */
  get nodes(): readonly ClusterNode[] {
    return this.#nodes;
  }

  /**
   * Starts node `id`'s agent and NF again after `kill(id, "sigkill")`, as a
   * replica: a restarted node follows whoever is primary, and the node
   * serving each open connection catches it up. Returns the node once its
   * agent printed its ready line.
   *
   * @example
   * ```ts
   * await cluster.kill(2, "sigkill");
   * await cluster.restart(2);
   * ```
   */
  async restart(id: number): Promise<ClusterNode> {
    const at = this.#nodes.findIndex((n) => n.id === id);
    if (at < 0) throw new RangeError(`No node "${id}" in the cluster`);
    if (!this.#dead.has(id)) throw new RangeError(`Node "${id}" is running: kill it first`);
    const argv = clusterArgv(this.lab, id, this.port, this.#options, true);
    const node = await startNode(this.#nodes[at]!.lab, argv, { ...this.#options, primary: false });
    this.#nodes[at] = node;
    this.#dead.delete(id);
    return node;
  }

  /** The node started as primary (node 1). */
  get first(): ClusterNode {
    return this.node(1);
  }

  /** Node `id`; throws RangeError for an unknown id. */
  node(id: number): ClusterNode {
    const node = this.nodes.find((n) => n.id === id);
    if (node === undefined) throw new RangeError(`No node "${id}" in the cluster`);
    return node;
  }

  /** Whether node `id`'s processes were killed. */
  isDead(id: number): boolean {
    return this.#dead.has(id);
  }

  /**
   * Makes node `id` fail: `sigkill` SIGKILLs every process in its namespace
   * and its NF's, `link` sets its switch port down, `fail` runs `reliab ha
   * fail` in its namespace, `migrate` runs `reliab ha migrate --to` the next
   * node there. Returns when the failure took effect (Unix ms): the first
   * SIGKILL, the end of the link change, the end of `ha fail` or `migrate`.
   */
  async kill(id: number, mode: KillMode): Promise<number> {
    const node = this.node(id);
    if (mode === "sigkill") {
      this.#dead.add(id);
      // Every process first, then one burst of signals: the agent and its NF die together.
      const pids = await namespaceProcesses([node.lab.netns, node.nfNetns]);
      const at = Date.now();
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // Exited in between.
        }
      }
      await killNetns(node.lab.netns, node.nfNetns);
      return at;
    }
    if (mode === "link") {
      await mustRun(
        "ip",
        ["-n", this.lab.switch.netns, "link", "set", switchPort(node.lab), "down"],
        `Cannot cut node ${id} off`,
      );
      return Date.now();
    }
    // A migration hands over to the next node up (node 1 -> node 2).
    const target = this.nodes.find((n) => n.id > id) ?? this.nodes.find((n) => n.id !== id);
    const result = await runCommand("ip", [
      "netns",
      "exec",
      node.lab.netns,
      ...reliabArgv(),
      "ha",
      ...(mode === "migrate" ? ["migrate", "--to", String(target?.id ?? 0)] : ["fail"]),
    ]);
    if (result.code !== 0) {
      throw new ReliabError(`Cannot fail node ${id} over: ${lastLine(result.stderr)}`, {
        code: "fail_failed",
        hint: `run 'ip netns exec ${node.lab.netns} reliab ha status' to see its state`,
      });
    }
    return Date.now();
  }

  /**
   * Undoes `kill(id, "link")`: sets node `id`'s switch port up again, as a
   * cable plugged back in (a split brain heals). Returns when it is up (Unix ms).
   *
   * @example
   * ```ts
   * await cluster.kill(1, "link");
   * await cluster.revive(1);
   * ```
   */
  async revive(id: number): Promise<number> {
    const node = this.node(id);
    await mustRun(
      "ip",
      ["-n", this.lab.switch.netns, "link", "set", switchPort(node.lab), "up"],
      `Cannot plug node ${id} back in`,
    );
    return Date.now();
  }

  /**
   * Waits until the primary hears every replica. A connection opened before
   * that is not replicated (the primary holds nothing for a member it does
   * not know), and a failover would leave it with a hole.
   */
  async waitForGroup(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status(1);
      if (s.peersAlive === s.peersTotal) return;
      if (Date.now() > deadline) {
        throw new ReliabError(
          `Cannot form the group: the primary hears ${s.peersAlive} of ${s.peersTotal} replicas`,
          {
            code: "group_incomplete",
            hint: "check the replicas' output and 'reliab ha status' on each node",
          },
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Node `id`'s `ha status --json`. */
  async status(id: number): Promise<HaStatusView> {
    const node = this.node(id);
    const result = await runCommand("ip", [
      "netns",
      "exec",
      node.lab.netns,
      ...reliabArgv(),
      "ha",
      "status",
      "--json",
    ]);
    if (result.code !== 0) {
      throw new ReliabError(`Cannot read the status of node ${id}: ${lastLine(result.stderr)}`, {
        code: "status_failed",
        hint: `is its agent running? see 'ip netns pids ${node.lab.netns}'`,
      });
    }
    return parseHaStatus(result.stdout);
  }

  /**
   * Waits until a node other than `except` reports role primary with an
   * epoch above `epochAbove`; returns its status, or undefined after `timeoutMs`.
   */
  async waitForPrimary(
    except: number,
    epochAbove: number,
    timeoutMs: number,
  ): Promise<HaStatusView | undefined> {
    const deadline = performance.now() + timeoutMs;
    while (true) {
      for (const node of this.nodes) {
        if (node.id === except || this.#dead.has(node.id)) continue;
        const status = await this.status(node.id).catch(() => undefined);
        if (status?.role === "primary" && status.epoch > epochAbove) return status;
      }
      if (performance.now() > deadline) return undefined;
      await sleep(100, this.#signal, "Cannot wait for a new primary");
    }
  }

  /**
   * Stops every agent (SIGTERM, then SIGKILL after a grace period) and kills
   * whatever an agent left running: its NF outlives an agent that had to be
   * SIGKILLed, so the processes are noted while the agents still run.
   */
  async stop(): Promise<void> {
    const before = await snapshotProcesses(this.nodes.flatMap((n) => [n.lab.netns, n.nfNetns]));
    await Promise.all(this.nodes.map((n) => n.agent.terminate(STOP_GRACE_MS)));
    await killSnapshot(before);
    await killNetns(...this.nodes.map((n) => n.nfNetns));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts `reliab ha up` on every node of `lab` and waits until every agent
 * printed its ready line (`ha up` prints it once its NF listens on the VIP). On any failure it stops what
 * it started and throws.
 *
 * @example
 * ```ts
 * await using cluster = await startCluster(lab, { port: 7000 });
 * await cluster.kill(1, "sigkill");
 * ```
 */
export async function startCluster(lab: Lab, options: ClusterOptions = {}): Promise<Cluster> {
  const port = options.port ?? NF_PORT_DEFAULT;
  const timeoutMs = options.readyTimeoutMs ?? READY_TIMEOUT_MS_DEFAULT;
  const started: NetnsProcess[] = [];
  try {
    const argvs = lab.nodes.map((n) => clusterArgv(lab, n.id, port, options, false));
    const start = (node: LabNode, i: number) =>
      startNode(node, argvs[i]!, { ...options, primary: node.id === 1 }, started);
    // The primary first: a replica that hears no primary would take over.
    const first = await start(lab.nodes[0]!, 0);
    const rest = await Promise.all(lab.nodes.slice(1).map((node, i) => start(node, i + 1)));
    const nodes = [first, ...rest];
    const cluster = new Cluster(lab, port, nodes, options.signal, options);
    await cluster.waitForGroup(timeoutMs);
    return cluster;
  } catch (error) {
    const namespaces = lab.nodes.flatMap((n) => [n.netns, `${n.netns}-nf`]);
    const before = await snapshotProcesses(namespaces);
    await Promise.all(started.map((p) => p.terminate(STOP_GRACE_MS)));
    await killSnapshot(before);
    await killNetns(...namespaces);
    throw error;
  }
}

/** Node `id`'s `ha up` argv under a cluster's options. */
function clusterArgv(
  lab: Lab,
  id: number,
  port: number,
  options: ClusterOptions,
  replica: boolean,
): string[] {
  return agentArgv(lab, id, {
    command: (options.command ?? referenceNfCommand)(lab.vip, port),
    ...(options.heartbeatMs === undefined ? {} : { heartbeatMs: options.heartbeatMs }),
    ...(options.miss === undefined ? {} : { miss: options.miss }),
    replica,
  });
}

/** Starts one agent (`argv`) in `node`'s namespace and waits for its ready line. */
async function startNode(
  node: LabNode,
  argv: string[],
  options: ClusterOptions & { readonly primary: boolean },
  started: NetnsProcess[] = [],
): Promise<ClusterNode> {
  const agent = new NetnsProcess(node.netns, argv);
  started.push(agent);
  try {
    await agent.waitForLine("stdout", () => parseUpLine(agent.lines("stdout")) !== undefined, {
      timeoutMs: options.readyTimeoutMs ?? READY_TIMEOUT_MS_DEFAULT,
      action: `Cannot start the agent on node ${node.id} ("${node.netns}")`,
      hint: `run it by hand to see why: ip netns exec ${node.netns} ${argv.map(quote).join(" ")}`,
      signal: options.signal,
    });
  } catch (error) {
    await agent.terminate(STOP_GRACE_MS);
    throw error;
  }
  const up = parseUpLine(agent.lines("stdout"))!;
  options.onProgress?.(`node ${node.id} up as ${up.role} (${node.netns}, NF in ${up.nfNetns})`);
  return { id: node.id, lab: node, nfNetns: up.nfNetns, primary: options.primary, agent };
}

/** The error line of a failed reliab child, else its last line. */
function lastLine(text: string): string {
  const lines = text.split("\n").map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("reliab: building"));
  const error = lines.find((l) => l.startsWith("reliab: error: "));
  return (error ?? lines.at(-1) ?? "no output").replace(/^reliab: error: /, "");
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}
