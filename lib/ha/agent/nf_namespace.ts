/**
 * The node's "bump in the wire": the NF runs, unmodified, in its own network
 * namespace behind a veth pair, and the agent forwards between the node's
 * outer interface and the veth's agent end.
 *
 * ```
 *  node namespace (e.g. rlha-n1)                 NF namespace (rlha-n1-nf)
 *  eth0 (outer) <-agent-> rlha1a (no IP) <-veth-> nf0  VIP/32, lo
 *                                                 default via 169.254.0.1 onlink
 * ```
 *
 * Why each setting:
 * - The VIP lives on `nf0` on every node, so the NF binds it and no address
 *   is rewritten. The agent end has no address: the node's own stack never
 *   sees VIP traffic.
 * - The NF's default route points at a link-local gateway with a permanent
 *   neighbour entry for the agent end's MAC: every frame the NF sends goes to
 *   the agent, and no ARP runs inside the bump.
 * - `quickack 1`: the agent learns what a replica's stack holds from its
 *   ACKs; a delayed ACK (up to 40 ms) would stall replication.
 * - MTU equal to the outer interface's, and offloads off on all three
 *   interfaces (offloads.ts): frames cross the agent as they are.
 * - TCP sysctls pinned to the same values on every node, so every node's NF
 *   stack negotiates the same options (MSS, window scale, SACK, timestamps)
 *   with the client and replicas can stand in for the primary. IPv6 off: no
 *   router solicitations or DAD frames from the NF.
 *
 * @module
 */
import { ReliabError } from "../../errors.ts";
import { runCommand } from "../_command.ts";
import {
  addNamedNetns,
  currentNetnsName,
  deleteNamedNetns,
  interfaceInfo,
  killNetnsProcesses,
  listNetns,
  must,
} from "./_host.ts";
import { disableOffloads, type OffloadRestore, restoreOffloads } from "./offloads.ts";

/** Name of the veth's end inside the NF namespace. */
export const NF_IFACE = "nf0";
/** The NF's gateway: link-local, answered by a permanent neighbour entry. */
export const NF_GATEWAY = "169.254.0.1";

/**
 * TCP settings of every NF namespace (identical on every node). The buffer
 * triples are Linux's defaults, fixed so a host's tuning cannot differ.
 */
export const NF_SYSCTLS: Readonly<Record<string, string>> = {
  "net.ipv4.tcp_timestamps": "1",
  "net.ipv4.tcp_sack": "1",
  "net.ipv4.tcp_window_scaling": "1",
  "net.ipv4.tcp_ecn": "0",
  "net.ipv4.tcp_no_metrics_save": "1",
  "net.ipv4.tcp_rmem": "4096 131072 6291456",
  "net.ipv4.tcp_wmem": "4096 16384 4194304",
  "net.ipv6.conf.all.disable_ipv6": "1",
  "net.ipv6.conf.default.disable_ipv6": "1",
};

/** Options of `createNfNamespace`. */
export interface NfNamespaceOptions {
  /** Node id (1..15): names the agent's veth end `rlha<id>a`. */
  readonly id: number;
  /** The node's outer interface, in this namespace. */
  readonly outerIface: string;
  readonly vip: string;
}

/** A made NF namespace; `remove()` takes all of it away. */
export interface NfNamespace extends AsyncDisposable {
  /** The NF namespace's name (`<node namespace>-nf`). */
  readonly netns: string;
  /** The veth end in this (the node's) namespace. */
  readonly agentIface: string;
  readonly agentIfindex: number;
  readonly agentMac: string;
  readonly nfMac: string;
  readonly outerIfindex: number;
  /** The node's IPv4 address on the outer interface. */
  readonly nodeAddr: string;
  /** Kills what runs inside, deletes the namespace and the veth, restores offloads. Idempotent. */
  remove(): Promise<void>;
}

/**
 * Name of the NF namespace for node `id`: `<this namespace's name>-nf`, or
 * `reliab-ha<id>-nf` when this namespace has no name.
 *
 * @example
 * ```ts
 * await nfNamespaceName(1); // "rlha-n1-nf" under 'ip netns exec rlha-n1'
 * ```
 */
export async function nfNamespaceName(id: number): Promise<string> {
  const current = await currentNetnsName();
  return `${current === "" ? `reliab-ha${id}` : current}-nf`;
}

/**
 * Name of the agent's veth end for node `id`.
 *
 * @example
 * ```ts
 * agentIfaceName(3); // "rlha3a"
 * ```
 */
export function agentIfaceName(id: number): string {
  return `rlha${id}a`;
}

/**
 * The MAC the VIP answers with, the same on every node: `02:72:6c` (locally
 * administered, "rl") and the VIP's three low bytes.
 *
 * @example
 * ```ts
 * virtualMac("10.77.0.1"); // "02:72:6c:4d:00:01"
 * ```
 */
export function virtualMac(vip: string): string {
  const bytes = vip.split(".").map(Number);
  if (bytes.length !== 4 || bytes.some((b) => !Number.isInteger(b) || b < 0 || b > 255)) {
    throw new TypeError(`Invalid IPv4 address "${vip}"`);
  }
  const hex = bytes.slice(1).map((b) => b.toString(16).padStart(2, "0"));
  return `02:72:6c:${hex.join(":")}`;
}

/**
 * Makes the NF namespace of node `id` behind a veth pair, as the module
 * describes. A stale namespace of the same name (left by a killed agent) is
 * removed first. On any failure, everything made so far is removed.
 *
 * @example
 * ```ts
 * await using nf = await createNfNamespace({ id: 1, outerIface: "eth0", vip: "10.77.0.1" });
 * console.log(nf.netns, nf.agentIfindex);
 * ```
 */
export async function createNfNamespace(options: NfNamespaceOptions): Promise<NfNamespace> {
  if (!Number.isInteger(options.id) || options.id < 1 || options.id > 15) {
    throw new RangeError(`Invalid node id "${options.id}": use 1 to 15`);
  }
  virtualMac(options.vip); // Validates the VIP before anything is made.
  const outer = await interfaceInfo(options.outerIface);
  const nodeAddr = outer?.ipv4[0];
  if (outer === undefined || nodeAddr === undefined) {
    throw new ReliabError(`Cannot make the NF namespace: "${options.outerIface}" has no IPv4`, {
      code: "interface_not_found",
      hint: "run it in the node's namespace, on an interface with an address ('ip -4 addr')",
    });
  }
  const netns = await nfNamespaceName(options.id);
  const agentIface = agentIfaceName(options.id);
  let outerRestore: OffloadRestore | undefined;
  const remove = async () => {
    await removeNfNamespace(netns, agentIface);
    if (outerRestore !== undefined) {
      const restore = outerRestore;
      outerRestore = undefined;
      await restoreOffloads(restore);
    }
  };
  await removeNfNamespace(netns, agentIface);
  try {
    await build(netns, agentIface, outer.mtu, options.vip);
    const agent = await interfaceInfo(agentIface);
    const nf = await interfaceInfo(NF_IFACE, { netns });
    if (agent === undefined || nf === undefined) {
      throw new ReliabError(`Cannot make the NF namespace "${netns}": its veth pair vanished`, {
        code: "command_failed",
        hint: "another process removed it; retry",
      });
    }
    await must("ip", [
      "-n",
      netns,
      "neigh",
      "replace",
      NF_GATEWAY,
      "lladdr",
      agent.mac,
      "dev",
      NF_IFACE,
      "nud",
      "permanent",
    ], `Cannot make the NF namespace "${netns}"`);
    await disableOffloads(agentIface);
    await disableOffloads(NF_IFACE, { netns });
    outerRestore = await disableOffloads(options.outerIface);
    return {
      netns,
      agentIface,
      agentIfindex: agent.ifindex,
      agentMac: agent.mac,
      nfMac: nf.mac,
      outerIfindex: outer.ifindex,
      nodeAddr,
      remove,
      [Symbol.asyncDispose]: remove,
    };
  } catch (error) {
    await remove().catch(() => {});
    throw error;
  }
}

async function build(netns: string, agentIface: string, mtu: number, vip: string): Promise<void> {
  const action = `Cannot make the NF namespace "${netns}"`;
  const inNf = (args: string[]) => must("ip", ["-n", netns, ...args], action);
  await addNamedNetns(netns, action);
  await must("ip", [
    "netns",
    "exec",
    netns,
    "sysctl",
    "-qew",
    ...Object.entries(NF_SYSCTLS).map(([key, value]) => `${key}=${value}`),
  ], action);
  await inNf(["link", "set", "lo", "up"]);
  await must("ip", [
    "link",
    "add",
    agentIface,
    "mtu",
    String(mtu),
    "type",
    "veth",
    "peer",
    "name",
    NF_IFACE,
    "mtu",
    String(mtu),
    "netns",
    netns,
  ], action);
  await inNf(["addr", "add", `${vip}/32`, "dev", NF_IFACE]);
  await inNf(["link", "set", NF_IFACE, "up"]);
  await must("ip", ["link", "set", agentIface, "up"], action);
  await inNf([
    "route",
    "add",
    "default",
    "via",
    NF_GATEWAY,
    "dev",
    NF_IFACE,
    "onlink",
    "quickack",
    "1",
  ]);
}

/**
 * Removes NF namespace `netns` and the veth end `agentIface` of this
 * namespace if present: kills what runs inside first (a process would keep
 * the namespace, and so the veth, alive). Safe when neither exists.
 *
 * @example
 * ```ts
 * await removeNfNamespace("rlha-n1-nf", "rlha1a");
 * ```
 */
export async function removeNfNamespace(netns: string, agentIface: string): Promise<void> {
  if ((await listNetns()).includes(netns)) {
    if (await killNetnsProcesses(netns) > 0) await waitEmpty(netns);
    await deleteNamedNetns(netns, `Cannot remove the NF namespace "${netns}"`);
  }
  // Deleting one end deletes the pair, even if something still holds the namespace.
  if ((await interfaceInfo(agentIface)) !== undefined) {
    const result = await runCommand("ip", ["link", "delete", agentIface]);
    if (result.code !== 0 && (await interfaceInfo(agentIface)) !== undefined) {
      throw new ReliabError(`Cannot remove the veth "${agentIface}": ${result.stderr.trim()}`, {
        code: "command_failed",
        hint: `remove it by hand: ip link delete ${agentIface}`,
      });
    }
  }
}

/** Waits (up to 2 s) until SIGKILLed processes in `netns` are gone. */
async function waitEmpty(netns: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const result = await runCommand("ip", ["netns", "pids", netns]);
    if (result.code !== 0 || result.stdout.trim() === "") return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
