/**
 * `reliab ha up`: one node of an `ha` cluster, in the foreground. Checks
 * everything it can before it makes anything, then builds the NF namespace,
 * runs the NF in it, waits until the NF listens on the VIP, starts the native
 * agent and serves the control socket. It runs until stopped (the caller's
 * signal) or until the NF exits, and removes everything it made on every
 * path, failures included.
 *
 * @module
 */
import { CapabilityError, ConfigError, ReliabError } from "../../errors.ts";
import { HaAgent, type HaAgentConfig, type HaRole, type XdpMode } from "../../native.ts";
import { runCommand } from "../_command.ts";
import { currentNetnsName, interfaceInfo, isInterfaceName, localIpv4 } from "./_host.ts";
import {
  type ControlServer,
  controlSocketPath,
  type ControlTarget,
  probeControlSocket,
  serveControl,
} from "./control_socket.ts";
import { createNfNamespace, type NfNamespace, virtualMac } from "./nf_namespace.ts";
import { DivergenceLog } from "./divergence_log.ts";
import { EventLog, type HaLogEvent } from "./event_log.ts";

/** The native agent as `haUp` drives it (a fake in tests). */
export interface AgentHandle extends ControlTarget {
  stop(): void;
}

/** Options of `haUp`. */
export interface HaUpOptions {
  /** Node id, 1..15, unique in the cluster. */
  readonly id: number;
  readonly vip: string;
  /** The node's outer interface, in this namespace. */
  readonly iface: string;
  /** The other nodes' addresses. */
  readonly peers: readonly string[];
  /** Serve first (the other nodes are replicas). */
  readonly primary?: boolean;
  /** Heartbeat interval (0.1 ms .. 1 s; native default 1 ms). */
  readonly heartbeatMs?: number;
  /** Heartbeats missed before a replica takes over (2..1000; native default 50). */
  readonly missThreshold?: number;
  readonly xdpMode?: XdpMode;
  /** The NF and its arguments, run unmodified inside the NF namespace. */
  readonly command: readonly string[];
  /** Aborting it stops the node cleanly (SIGTERM/SIGINT in the CLI). */
  readonly signal?: AbortSignal;
  /** Called once, when the node serves. */
  readonly onReady?: (ready: HaUpReady) => void;
  /** The node's log while it runs: takeovers, role and peer changes, diverged connections. */
  readonly onLog?: (event: HaLogEvent) => void;
  /** Starts the agent (default: the native one). */
  readonly startAgent?: (config: HaAgentConfig) => AgentHandle;
  /** Folder of the control socket (default /run/reliab/ha). */
  readonly controlDir?: string;
  /** How long the NF may take to listen on the VIP (default 10 s). */
  readonly listenTimeoutMs?: number;
}

/** What `onReady` receives. */
export interface HaUpReady {
  readonly id: number;
  readonly role: HaRole;
  /** The node's namespace; null when it has no name. */
  readonly netns: string | null;
  readonly nfNetns: string;
  readonly vip: string;
  readonly controlPath: string;
  /** Process id of the NF (leader of its own process group). */
  readonly nfPid: number;
}

// Generous: an NF started through ./reliab may rebuild the native core first.
const LISTEN_TIMEOUT_MS_DEFAULT = 30_000;
const LISTEN_POLL_MS = 50;
/** Time the NF gets to exit after SIGTERM before SIGKILL. */
const NF_STOP_GRACE_MS = 2000;
const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;
const CAP_BPF = 39;
const NODE_ID_MAX = 15;
const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** What the checks found: everything the build needs. */
interface UpPlan {
  readonly nodeAddr: string;
  readonly controlPath: string;
}

/**
 * Runs one node until `options.signal` aborts (resolves) or the NF exits
 * (throws `NF "CMD" exited with status N`). Every failure is a one-line
 * ReliabError, and leaves nothing behind.
 *
 * @example
 * ```ts
 * const stop = new AbortController();
 * await haUp({
 *   id: 1, vip: "10.77.0.1", iface: "eth0", peers: ["10.77.0.12"], primary: true,
 *   command: ["./reliab", "ha", "nf", "--listen", "10.77.0.1:7000"],
 *   signal: stop.signal,
 *   onReady: (ready) => console.error(`ready: ${ready.role}`),
 * });
 * ```
 */
export async function haUp(options: HaUpOptions): Promise<void> {
  const plan = await checkUp(options);
  const cleanups: (() => Promise<void> | void)[] = [];
  let failure: { error: unknown } | undefined;
  try {
    await serve(options, plan, cleanups);
  } catch (error) {
    failure = { error };
  }
  const cleanupErrors: unknown[] = [];
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (error) {
      cleanupErrors.push(error);
    }
  }
  if (failure !== undefined) throw failure.error;
  if (cleanupErrors.length > 0) throw cleanupErrors[0];
}

async function serve(
  options: HaUpOptions,
  plan: UpPlan,
  cleanups: (() => Promise<void> | void)[],
): Promise<void> {
  const signal = options.signal ?? new AbortController().signal;
  const nfns: NfNamespace = await createNfNamespace({
    id: options.id,
    outerIface: options.iface,
    vip: options.vip,
  });
  cleanups.push(() => nfns.remove());
  if (signal.aborted) return;

  const nf = spawnNf(nfns.netns, options.command);
  cleanups.push(() => nf.stop());
  const listening = await waitListening(nfns.netns, options, nf, signal);
  if (!listening) return;

  const config: HaAgentConfig = {
    id: options.id,
    vip: options.vip,
    virtual_mac: virtualMac(options.vip),
    node_addr: plan.nodeAddr,
    outer_ifindex: nfns.outerIfindex,
    inner_ifindex: nfns.agentIfindex,
    inner_mac: nfns.agentMac,
    nf_mac: nfns.nfMac,
    peers: [...options.peers],
    primary: options.primary === true,
    ...(options.heartbeatMs === undefined
      ? {}
      : { heartbeat_us: Math.round(options.heartbeatMs * 1000) }),
    ...(options.missThreshold === undefined ? {} : { miss_threshold: options.missThreshold }),
    ...(options.xdpMode === undefined ? {} : { xdp_mode: options.xdpMode }),
  };
  const agent = (options.startAgent ?? ((c) => HaAgent.start(c)))(config);
  cleanups.push(() => agent.stop());
  const server: ControlServer = await serveControl(
    agent,
    options.controlDir === undefined ? {} : { dir: options.controlDir },
  );
  cleanups.push(() => server.close());
  if (signal.aborted) return;

  const netns = await currentNetnsName();
  options.onReady?.({
    id: options.id,
    role: roleOf(agent, options.primary === true),
    netns: netns === "" ? null : netns,
    nfNetns: nfns.netns,
    vip: options.vip,
    controlPath: server.path,
    nfPid: nf.pid,
  });
  const aborted = Promise.withResolvers<"stopped">();
  const onAbort = () => aborted.resolve("stopped");
  signal.addEventListener("abort", onAbort, { once: true });
  // The packet loop ends on its own when an interface goes away (the lab
  // was removed, a cable pulled for good): then this node serves nothing
  // and must say so rather than linger.
  const loopEnded = Promise.withResolvers<number>();
  // The same poll tells the log what changed: roles, peers, diverged connections.
  const divergence = new DivergenceLog();
  const events = new EventLog();
  const watch = setInterval(() => {
    try {
      const status = agent.status();
      const errno = status.loop_errno ?? 0;
      if (errno !== 0) loopEnded.resolve(errno);
      for (const event of events.events(status)) options.onLog?.(event);
      for (const message of divergence.lines(status)) {
        options.onLog?.({ event: "divergence", node: status.id, message });
      }
    } catch { /* status is best effort here */ }
  }, LOOP_WATCH_MS);
  try {
    const outcome = await Promise.race([nf.status, aborted.promise, loopEnded.promise]);
    if (typeof outcome === "number") {
      throw new ConfigError(
        `Agent stopped: its packet loop ended with errno ${outcome} (an interface went down or away)`,
        {
          code: "agent_loop_ended",
          hint: "check 'ip link' in the node's namespace, then start 'reliab ha up' again",
        },
      );
    }
    if (outcome !== "stopped") throw nfExited(options.command, outcome);
  } finally {
    clearInterval(watch);
    signal.removeEventListener("abort", onAbort);
  }
}

const LOOP_WATCH_MS = 250;

function roleOf(agent: AgentHandle, primary: boolean): HaRole {
  try {
    return agent.status().role;
  } catch {
    return primary ? "primary" : "replica";
  }
}

/** The NF, running in its own process group. */
interface RunningNf {
  readonly pid: number;
  readonly status: Promise<Deno.CommandStatus>;
  /** SIGTERM to its group, SIGKILL after the grace time; waits for it. Idempotent. */
  stop(): Promise<void>;
}

function spawnNf(netns: string, command: readonly string[]): RunningNf {
  // `ip netns exec` execs CMD in place (same pid). `detached` makes it a
  // session and process-group leader: a terminal's Ctrl-C reaches only us,
  // and we stop the NF and everything it started as one group.
  const child = new Deno.Command("ip", {
    args: ["netns", "exec", netns, ...command],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
    detached: true,
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  return {
    pid: child.pid,
    status,
    stop: async () => {
      if (!exited) {
        signalGroup(child.pid, "SIGTERM");
        await within(status, NF_STOP_GRACE_MS);
      }
      // Whatever of the group is left (children of an NF that exited) goes too.
      signalGroup(child.pid, "SIGKILL");
      await status;
    },
  };
}

function signalGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch {
    // The group is gone.
  }
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `promise`, at most `ms` (its timer cleared, so nothing lingers). */
async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise((resolve) => {
    timer = setTimeout(resolve, ms);
  });
  await Promise.race([promise, expired]);
  clearTimeout(timer);
}

/**
 * Polls the NF namespace's listening sockets until one covers the VIP.
 * False when stopped first; throws when the NF exits or the time runs out.
 */
async function waitListening(
  netns: string,
  options: HaUpOptions,
  nf: RunningNf,
  signal: AbortSignal,
): Promise<boolean> {
  let exit: Deno.CommandStatus | undefined;
  nf.status.then((s) => {
    exit = s;
  });
  const timeoutMs = options.listenTimeoutMs ?? LISTEN_TIMEOUT_MS_DEFAULT;
  const deadline = performance.now() + timeoutMs;
  const cmd = options.command.join(" ");
  while (true) {
    if (signal.aborted) return false;
    const result = await runCommand("ip", ["netns", "exec", netns, "ss", "-Hltn"]);
    if (result.code === 0 && listensOn(result.stdout, options.vip)) return true;
    if (exit !== undefined) {
      throw new ReliabError(
        `Cannot start the NF: "${cmd}" ${exitText(exit)} before listening on ${options.vip}`,
        { code: "nf_exited", hint: "see the NF's output above; it must listen on the VIP" },
      );
    }
    if (performance.now() > deadline) {
      throw new ReliabError(
        `Cannot start the NF: "${cmd}" does not listen on ${options.vip} after ${
          timeoutMs / 1000
        } s`,
        { code: "nf_not_listening", hint: `make it listen on ${options.vip} or 0.0.0.0` },
      );
    }
    await sleep(LISTEN_POLL_MS);
  }
}

/**
 * Whether `ss -Hltn` output shows a listener that accepts connections to
 * `vip` (bound to it, or to any address).
 *
 * @example
 * ```ts
 * listensOn("LISTEN 0 4096 10.77.0.1:7000 0.0.0.0:*", "10.77.0.1"); // true
 * ```
 */
export function listensOn(ssOutput: string, vip: string): boolean {
  return ssOutput.split("\n").some((line) => {
    const local = line.trim().split(/\s+/)[3];
    if (local === undefined) return false;
    const host = local.slice(0, local.lastIndexOf(":")).replace(/%.*$/, "");
    return host === vip || host === "0.0.0.0" || host === "*";
  });
}

function exitText(status: Deno.CommandStatus): string {
  return status.signal === null
    ? `exited with status ${status.code}`
    : `exited with status ${status.code} (${status.signal})`;
}

function nfExited(command: readonly string[], status: Deno.CommandStatus): ReliabError {
  return new ReliabError(`NF "${command.join(" ")}" ${exitText(status)}`, {
    code: "nf_exited",
    hint: "the agent stopped with it and removed what it made; see the NF's output above",
  });
}

/** Every check `ha up` can make before it creates anything. */
async function checkUp(options: HaUpOptions): Promise<UpPlan> {
  if (!Number.isInteger(options.id) || options.id < 1 || options.id > NODE_ID_MAX) {
    throw bad(`Invalid node id "${options.id}"`, `use 1 to ${NODE_ID_MAX}, unique per node`);
  }
  if (!IPV4.test(options.vip)) {
    throw bad(`Invalid VIP "${options.vip}": not an IPv4 address`, "use a dotted quad: 10.77.0.1");
  }
  if (options.peers.length === 0 || options.peers.length > NODE_ID_MAX) {
    throw bad(`Invalid peers: give 1 to ${NODE_ID_MAX} addresses`, "use --peers ADDR,ADDR,...");
  }
  for (const peer of options.peers) {
    if (!IPV4.test(peer)) {
      throw bad(`Invalid peer "${peer}": not an IPv4 address`, "use --peers ADDR,ADDR,...");
    }
  }
  if (new Set(options.peers).size !== options.peers.length) {
    throw bad(`Invalid peers "${options.peers.join(",")}": an address repeats`, "list each once");
  }
  if (options.peers.includes(options.vip)) {
    throw bad(`Invalid peer "${options.vip}": it is the VIP`, "list the other nodes' addresses");
  }
  if (options.heartbeatMs !== undefined) {
    const us = Math.round(options.heartbeatMs * 1000);
    if (!Number.isFinite(options.heartbeatMs) || us < 100 || us > 1_000_000) {
      throw bad(`Invalid heartbeat "${options.heartbeatMs}" ms`, "use 0.1 to 1000 ms");
    }
  }
  const miss = options.missThreshold;
  if (miss !== undefined && (!Number.isInteger(miss) || miss < 2 || miss > 1000)) {
    throw bad(`Invalid miss threshold "${miss}"`, "use 2 to 1000 heartbeats");
  }
  if (options.command.length === 0) {
    throw bad("Missing the NF command", "give it after '--': reliab ha up ... -- CMD [ARGS...]");
  }
  await checkCapabilities();
  await checkTools();
  const controlPath = controlSocketPath(
    options.controlDir === undefined ? {} : { dir: options.controlDir },
  );
  if (await probeControlSocket(controlPath) === "live") {
    throw new ConfigError("Cannot start the ha agent: another agent serves this namespace", {
      code: "agent_running",
      hint: "stop it first ('reliab ha status' shows it), or run in another node's namespace",
    });
  }
  return { nodeAddr: await checkAddresses(options), controlPath };
}

async function checkAddresses(options: HaUpOptions): Promise<string> {
  const outer = isInterfaceName(options.iface) ? await interfaceInfo(options.iface) : undefined;
  if (outer === undefined) {
    throw new ConfigError(`Cannot start the ha agent on "${options.iface}": interface not found`, {
      code: "interface_not_found",
      hint: "run it in the node's namespace (ip netns exec NODE ./reliab ha up ...); " +
        "list interfaces with 'ip link'",
    });
  }
  const nodeAddr = outer.ipv4[0];
  if (nodeAddr === undefined) {
    throw new ConfigError(`Cannot start the ha agent on "${options.iface}": it has no IPv4`, {
      code: "interface_no_address",
      hint: `give it the node's address: ip addr add ADDR/LEN dev ${options.iface}`,
    });
  }
  const local = await localIpv4();
  if (local.includes(options.vip)) {
    throw bad(
      `Invalid VIP "${options.vip}": it is an address of this node`,
      "the VIP must live only in the NF namespace; remove it here (ip addr del) or pick another",
    );
  }
  for (const peer of options.peers) {
    if (local.includes(peer)) {
      throw bad(
        `Invalid peer "${peer}": it is an address of this node`,
        "list the other nodes' addresses only",
      );
    }
  }
  return nodeAddr;
}

async function checkCapabilities(): Promise<void> {
  const status = await Deno.readTextFile("/proc/self/status");
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? "0";
  const effective = BigInt(`0x${hex}`);
  const lastCap = Number((await Deno.readTextFile("/proc/sys/kernel/cap_last_cap")).trim());
  const wanted: [number, string][] = [
    [CAP_NET_ADMIN, "CAP_NET_ADMIN"],
    [CAP_SYS_ADMIN, "CAP_SYS_ADMIN"],
    // Kernels before 5.8 have no CAP_BPF: CAP_SYS_ADMIN covers BPF there.
    ...(lastCap >= CAP_BPF ? [[CAP_BPF, "CAP_BPF"] as [number, string]] : []),
  ];
  const missing = wanted.filter(([bit]) => (effective & (1n << BigInt(bit))) === 0n)
    .map(([, name]) => name);
  if (missing.length > 0) {
    throw new CapabilityError(`Cannot start the ha agent: missing ${missing.join(", ")}`, {
      code: "capability_missing",
      hint: "run as root: sudo ip netns exec NODE ./reliab ha up ...",
    });
  }
}

async function checkTools(): Promise<void> {
  for (const [tool, args] of [["ethtool", ["--version"]], ["ss", ["-V"]]] as const) {
    await runCommand(tool, args);
  }
}

function bad(message: string, hint: string): ConfigError {
  return new ConfigError(message, { code: "bad_config", hint });
}
