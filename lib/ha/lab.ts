/**
 * The `ha` lab: a client, a switch and N nodes on one machine, made of network
 * namespaces joined by veth pairs. Nothing is created in the caller's own
 * namespace, so deleting the lab's namespaces removes every link it made, and
 * its addresses (10.77.0.0/24) never meet the host's.
 *
 * Topology (name `rlha`, 3 nodes):
 *
 * ```
 *  rlha-c (client)          rlha-sw (switch)             rlha-n1 .. rlha-nN (nodes)
 *  eth0 10.77.0.2  <-veth->  c ─┐                ┌─ n1 <-veth-> eth0 10.77.0.11
 *                               └── br0 (bridge) ├─ n2 <-veth-> eth0 10.77.0.12
 *                                                └─ n3 <-veth-> eth0 10.77.0.13
 * ```
 *
 * Why the switch is set up this way: the client port learns, the node ports
 * neither learn nor filter (`learning off flood on`). So frames to the
 * client go to the client only, while frames to the VIP's MAC (never learned,
 * since it only ever appears behind node ports) reach *every* node: the
 * switch mirrors the client's traffic to all replicas for free.
 *
 * Why the lab stops at the node's `eth0`: the "bump in the wire" inside a
 * node — the NF in its own namespace behind a veth pair, carrying the VIP
 * (10.77.0.1) and one shared MAC on every node, with the agent forwarding
 * between the node's `eth0` and that veth — belongs to the agent
 * (`reliab ha up`), which must build it on real hosts too and remove it when
 * it stops. The lab is only the "physical" network. IPv6 is off in every lab
 * namespace so no router solicitations or DAD frames disturb measurements.
 *
 * With `netem`, the switch's ports impair every link both ways (loss, delay,
 * reordering, duplication): a hostile network (lib/ha/lab_netem.ts).
 *
 * @module
 */
import { CapabilityError, ConfigError } from "../errors.ts";
import { writeFileAtomic } from "../atomic_file.ts";
import { mustRun, runCommand } from "./_command.ts";
import { killNetnsProcesses } from "./agent/_host.ts";
import { OFFLOADS_OFF } from "./agent/offloads.ts";
import { sweepStaleControlSockets } from "./agent/control_socket.ts";
import { applyNetem, type LabNetem, parseNetemSpec, probeNetem } from "./lab_netem.ts";

/** One node of the lab. */
export interface LabNode {
  readonly id: number;
  readonly netns: string;
  /** The node's interface to the switch, inside `netns`. */
  readonly iface: string;
  readonly addr: string;
}

/** A lab as `up` made it (also its state file). */
export interface Lab {
  readonly name: string;
  readonly vip: string;
  readonly prefixLength: number;
  readonly client: { readonly netns: string; readonly iface: string; readonly addr: string };
  readonly switch: { readonly netns: string; readonly bridge: string };
  readonly nodes: readonly LabNode[];
  /** The impairment on every link (`--netem`); absent on a clean lab. */
  readonly netem?: LabNetem;
}

/** Options of `labUp` and `labDown`. */
export interface LabOptions {
  /** Lab name, also the prefix of everything it creates (default `rlha`). */
  readonly name?: string;
  /** Number of nodes (default 3). */
  readonly nodes?: number;
  /** Folder of the state file (default /run/reliab). */
  readonly stateDir?: string;
  /**
   * A netem SPEC applied to every lab link, both directions ("loss 1% delay
   * 1ms 200us reorder 5% duplicate 1%"); lib/ha/lab_netem.ts says how.
   */
  readonly netem?: string;
}

/** Default lab name: the prefix of every namespace the lab makes. */
export const LAB_NAME_DEFAULT = "rlha";
/** Largest lab: one primary and up to 8 replicas as in HA/TCP, plus room for spares. */
export const LAB_NODES_MAX = 16;
const SUBNET = "10.77.0";
const STATE_DIR_DEFAULT = "/run/reliab";
const CAP_NET_ADMIN = 12n;
const CAP_SYS_ADMIN = 21n;

/**
 * Describes the lab `labUp` would make, without touching the system.
 *
 * @example
 * ```ts
 * const lab = labPlan({ nodes: 2 });
 * console.log(lab.nodes[1]!.addr); // 10.77.0.12
 * ```
 */
export function labPlan(options: LabOptions = {}): Lab {
  const name = checkName(options.name ?? LAB_NAME_DEFAULT);
  const count = options.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > LAB_NODES_MAX) {
    throw new ConfigError(`Cannot plan a lab with "${count}" nodes`, {
      code: "lab_nodes_invalid",
      hint: `use --nodes 1 to ${LAB_NODES_MAX}`,
    });
  }
  // Checked here too, so a bad SPEC fails before anything is made.
  if (options.netem !== undefined) parseNetemSpec(options.netem);
  return {
    name,
    vip: `${SUBNET}.1`,
    prefixLength: 24,
    client: { netns: `${name}-c`, iface: "eth0", addr: `${SUBNET}.2` },
    switch: { netns: `${name}-sw`, bridge: "br0" },
    nodes: Array.from({ length: count }, (_, i) => ({
      id: i + 1,
      netns: `${name}-n${i + 1}`,
      iface: "eth0",
      addr: `${SUBNET}.${11 + i}`,
    })),
  };
}

/**
 * Name of a node's port on the lab's switch (inside `lab.switch.netns`):
 * setting it down cuts the node off, as a pulled cable would.
 *
 * @example
 * ```ts
 * switchPort(labPlan().nodes[0]!); // "n1"
 * ```
 */
export function switchPort(node: LabNode): string {
  return `n${node.id}`;
}

function checkName(name: string): string {
  // Namespace names become file names under /run/netns; keep them short and plain.
  if (!/^[a-z][a-z0-9]{1,9}$/.test(name)) {
    throw new RangeError(`Invalid lab name "${name}": use 2 to 10 lowercase letters and digits`);
  }
  return name;
}

/**
 * Brings the lab up; safe to call twice (an identical lab that is up is kept).
 *
 * @example
 * ```ts
 * const lab = await labUp({ nodes: 3 });
 * // ip netns exec lab.client.netns ...
 * await labDown();
 * ```
 */
export async function labUp(options: LabOptions = {}): Promise<Lab> {
  let lab = labPlan(options);
  await checkCapabilities("bring the lab up");
  const statePath = stateFile(lab.name, options.stateDir);
  const state = await readState(statePath);
  const existing = state?.complete === true && await isPresent(state.lab) ? state.lab : undefined;
  const spec = options.netem === undefined ? undefined : parseNetemSpec(options.netem);
  if (existing !== undefined) {
    if (existing.nodes.length !== lab.nodes.length) {
      throw new ConfigError(
        `Cannot bring lab "${lab.name}" up with ${lab.nodes.length} nodes: it is up with ${existing.nodes.length}`,
        { code: "lab_exists", hint: "run 'reliab ha lab down' first" },
      );
    }
    if (existing.netem?.spec !== spec?.text) {
      const what = (text: string | undefined) =>
        text === undefined ? "no netem" : `netem "${text}"`;
      throw new ConfigError(
        `Cannot bring lab "${lab.name}" up with ${what(spec?.text)}: it is up with ${
          what(existing.netem?.spec)
        }`,
        { code: "lab_exists", hint: "run 'reliab ha lab down' first" },
      );
    }
    return existing;
  }
  // Before anything is made: a SPEC this kernel cannot apply leaves nothing behind.
  if (spec !== undefined) {
    const mode = await probeNetem(`${lab.name}-probe`, spec);
    lab = { ...lab, netem: { spec: spec.text, mode } };
  }
  await sweep(lab.name);
  await Deno.mkdir(options.stateDir ?? STATE_DIR_DEFAULT, { recursive: true });
  // Recorded before anything is made, so `down` after a crash mid-way still knows the lab.
  await writeFileAtomic(statePath, JSON.stringify({ ...lab, complete: false }), { force: true });
  try {
    await build(lab);
  } catch (error) {
    await sweep(lab.name);
    await Deno.remove(statePath).catch(() => {});
    throw error;
  }
  await writeFileAtomic(statePath, JSON.stringify({ ...lab, complete: true }), { force: true });
  return lab;
}

/**
 * Removes everything the lab made, plus anything else carrying its prefix;
 * safe to call when no lab is up. Returns the namespaces removed.
 *
 * @example
 * ```ts
 * const removed = await labDown();
 * ```
 */
export async function labDown(options: LabOptions = {}): Promise<string[]> {
  const name = checkName(options.name ?? LAB_NAME_DEFAULT);
  await checkCapabilities("take the lab down");
  const statePath = stateFile(name, options.stateDir);
  const state = await readState(statePath);
  // Agents still running in the nodes get SIGTERM first (they detach their
  // XDP programs and remove their NF namespaces), then whatever is left
  // goes; a deleted namespace name would otherwise leave them running.
  if (state !== undefined) await stopNodeProcesses(state.lab);
  // NF namespaces of `ha up` agents next: an NF still running in one would
  // keep it, and its veth into the node, alive.
  const removed: string[] = await removeNfNamespaces(name);
  if (state !== undefined) {
    const live = await listNetns();
    for (const ns of labNamespaces(state.lab)) {
      if (live.includes(ns)) {
        await mustRun("ip", ["netns", "delete", ns], `Cannot take lab "${name}" down`);
        removed.push(ns);
      }
    }
  }
  removed.push(...await sweep(name));
  await sweepStaleControlSockets();
  await Deno.remove(statePath).catch((error) => {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  });
  return removed;
}

/**
 * Names of every lab namespace now present for `name` (for tests and status).
 *
 * @example
 * ```ts
 * const left = await labLeftovers("rlha");
 * ```
 */
export async function labLeftovers(name: string = LAB_NAME_DEFAULT): Promise<string[]> {
  const prefix = `${checkName(name)}-`;
  const namespaces = (await listNetns()).filter((ns) => ns.startsWith(prefix));
  const links = (await listLinks()).filter((link) => link.startsWith(name));
  return [...namespaces, ...links];
}

function labNamespaces(lab: Lab): string[] {
  return [lab.client.netns, lab.switch.netns, ...lab.nodes.map((n) => n.netns)];
}

async function build(lab: Lab): Promise<void> {
  const action = `Cannot bring lab "${lab.name}" up`;
  const sw = lab.switch.netns;
  for (const ns of labNamespaces(lab)) {
    await mustRun("ip", ["netns", "add", ns], action);
    await mustRun("ip", ["-n", ns, "link", "set", "lo", "up"], action);
    await mustRun("ip", [
      "netns",
      "exec",
      ns,
      "sysctl",
      "-qw",
      "net.ipv6.conf.all.disable_ipv6=1",
      "net.ipv6.conf.default.disable_ipv6=1",
    ], action);
  }
  await mustRun("ip", ["-n", sw, "link", "add", lab.switch.bridge, "type", "bridge"], action);
  await mustRun("ip", ["-n", sw, "link", "set", lab.switch.bridge, "up"], action);
  const ends = [
    {
      ns: lab.client.netns,
      iface: lab.client.iface,
      addr: lab.client.addr,
      port: "c",
      mirror: false,
    },
    ...lab.nodes.map((n) => ({
      ns: n.netns,
      iface: n.iface,
      addr: n.addr,
      port: switchPort(n),
      mirror: true,
    })),
  ];
  for (const end of ends) {
    await mustRun("ip", [
      "-n",
      end.ns,
      "link",
      "add",
      end.iface,
      "type",
      "veth",
      "peer",
      "name",
      end.port,
      "netns",
      sw,
    ], action);
    await mustRun("ip", ["-n", sw, "link", "set", end.port, "master", lab.switch.bridge], action);
    // Set before the port comes up, so no node MAC is ever learned (nothing to flush).
    if (end.mirror) {
      await mustRun("bridge", [
        "-n",
        sw,
        "link",
        "set",
        "dev",
        end.port,
        "learning",
        "off",
        "flood",
        "on",
      ], action);
    }
    await mustRun("ip", ["-n", sw, "link", "set", end.port, "up"], action);
    await mustRun("ip", [
      "-n",
      end.ns,
      "addr",
      "add",
      `${end.addr}/${lab.prefixLength}`,
      "dev",
      end.iface,
    ], action);
    await mustRun("ip", ["-n", end.ns, "link", "set", end.iface, "up"], action);
    // The lab stands for a wire: frames of at most the MTU with real checksums,
    // as the agent's AF_XDP frames need (lib/ha/agent/offloads.ts says why).
    await mustRun("ip", [
      "netns",
      "exec",
      end.ns,
      "ethtool",
      "-K",
      end.iface,
      ...OFFLOADS_OFF.flatMap((feature) => [feature, "off"]),
    ], action);
  }
  if (lab.netem !== undefined) {
    await applyNetem(sw, ends.map((end) => end.port), {
      spec: parseNetemSpec(lab.netem.spec),
      mode: lab.netem.mode,
    });
  }
}

const NODE_STOP_GRACE_MS = 3000;

async function stopNodeProcesses(lab: Lab): Promise<void> {
  const live = await listNetns();
  const nodes = lab.nodes.map((n) => n.netns).filter((ns) => live.includes(ns));
  let signalled = 0;
  for (const ns of nodes) signalled += await killNetnsProcesses(ns, "SIGTERM");
  if (signalled === 0) return;
  const deadline = Date.now() + NODE_STOP_GRACE_MS;
  while (Date.now() < deadline) {
    const left = await Promise.all(nodes.map((ns) => runCommand("ip", ["netns", "pids", ns])));
    if (left.every((r) => r.stdout.trim() === "")) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  for (const ns of nodes) await killNetnsProcesses(ns);
}

async function removeNfNamespaces(name: string): Promise<string[]> {
  const nf = new RegExp(`^${name}-n\\d+-nf$`);
  const removed: string[] = [];
  for (const ns of (await listNetns()).filter((ns) => nf.test(ns))) {
    await killNetnsProcesses(ns);
    await mustRun("ip", ["netns", "delete", ns], `Cannot remove NF namespace "${ns}"`);
    removed.push(ns);
  }
  return removed;
}

async function sweep(name: string): Promise<string[]> {
  const removed: string[] = [];
  for (const ns of await listNetns()) {
    if (!ns.startsWith(`${name}-`)) continue;
    await mustRun("ip", ["netns", "delete", ns], `Cannot remove leftover namespace "${ns}"`);
    removed.push(ns);
  }
  // The lab never makes links here, but a crashed older version might have.
  for (const link of await listLinks()) {
    if (!link.startsWith(name)) continue;
    await mustRun("ip", ["link", "delete", link], `Cannot remove leftover link "${link}"`);
    removed.push(link);
  }
  return removed;
}

async function listNetns(): Promise<string[]> {
  const out = await mustRun("ip", ["netns", "list"], "Cannot list network namespaces");
  return out.split("\n").map((line) => line.split(" ")[0] ?? "").filter((ns) => ns !== "");
}

async function listLinks(): Promise<string[]> {
  const out = await mustRun("ip", ["-o", "link", "show"], "Cannot list links");
  // "12: name@peer: <...>" -> "name"
  return out.split("\n").map((line) => (line.split(": ")[1] ?? "").split("@")[0] ?? "")
    .filter((link) => link !== "");
}

function stateFile(name: string, dir: string | undefined): string {
  return `${dir ?? STATE_DIR_DEFAULT}/ha-lab-${name}.json`;
}

interface LabState {
  readonly lab: Lab;
  /** False while `up` is still building (or died while building). */
  readonly complete: boolean;
}

async function readState(path: string): Promise<LabState | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === "object" && value !== null && "complete" in value && "nodes" in value) {
      const { complete, ...lab } = value as Lab & { complete: unknown };
      return { lab, complete: complete === true };
    }
  } catch {
    // A torn or foreign state file: `down` falls back to the prefix sweep.
  }
  return undefined;
}

async function isPresent(lab: Lab): Promise<boolean> {
  const live = await listNetns();
  return labNamespaces(lab).every((ns) => live.includes(ns));
}

/**
 * Throws a CapabilityError unless this process may create namespaces and links.
 *
 * @example
 * ```ts
 * await checkCapabilities("bring the lab up");
 * ```
 */
export async function checkCapabilities(action: string): Promise<void> {
  // Read by a child (which inherits our capabilities through exec as root):
  // Deno allows /proc/<pid> files only with --allow-all, which the launcher never grants.
  const status = (await runCommand("cat", ["/proc/self/status"])).stdout;
  const line = status.split("\n").find((l) => l.startsWith("CapEff:"));
  const effective = BigInt(`0x${line?.split(/\s+/)[1] ?? "0"}`);
  const missing = [
    [CAP_NET_ADMIN, "CAP_NET_ADMIN"],
    [CAP_SYS_ADMIN, "CAP_SYS_ADMIN"],
  ].filter(([bit]) => (effective & (1n << (bit as bigint))) === 0n).map(([, name]) => name);
  if (missing.length > 0) {
    throw new CapabilityError(`Cannot ${action}: missing ${missing.join(" and ")}`, {
      code: "capability_missing",
      hint: "run as root (sudo ./reliab ...)",
    });
  }
}
