/**
 * The host facts and tools the agent's control plane uses: interfaces and
 * addresses (from `ip -j`, not /sys: a namespace entered with `setns` alone
 * still shows the old /sys), named network namespaces, and the processes
 * inside one.
 *
 * @module
 */
import { ReliabError } from "../../errors.ts";
import { runCommand } from "../_command.ts";

/** One interface as `ip -j addr` shows it. */
export interface InterfaceInfo {
  readonly name: string;
  readonly ifindex: number;
  readonly mtu: number;
  readonly mac: string;
  /** IPv4 addresses, without prefix length. */
  readonly ipv4: readonly string[];
}

/** Interface names the kernel accepts (IFNAMSIZ - 1) and that are safe in argv. */
const IFACE_NAME = /^[A-Za-z0-9_.:-]{1,15}$/;

/**
 * Runs `program args...`; a failure is a ReliabError naming the command.
 *
 * @example
 * ```ts
 * await must("ip", ["netns", "add", "rlha-n1-nf"], "Cannot make the NF namespace");
 * ```
 */
export async function must(
  program: string,
  args: readonly string[],
  action: string,
): Promise<string> {
  const result = await runCommand(program, args);
  if (result.code !== 0) {
    const detail = result.stderr.trim().split("\n")[0] || `exit ${result.code}`;
    throw new ReliabError(`${action}: "${program} ${args.join(" ")}" failed: ${detail}`, {
      code: "command_failed",
      hint: "reliab removed what it had made; fix the cause and retry",
    });
  }
  return result.stdout;
}

/**
 * Whether `name` can be an interface name (checked before it reaches argv).
 *
 * @example
 * ```ts
 * isInterfaceName("eth0"); // true
 * ```
 */
export function isInterfaceName(name: string): boolean {
  return IFACE_NAME.test(name);
}

/**
 * An interface of this namespace (or of `netns`), or undefined if absent.
 *
 * @example
 * ```ts
 * const eth0 = await interfaceInfo("eth0");
 * console.log(eth0?.ipv4[0]);
 * ```
 */
export async function interfaceInfo(
  iface: string,
  options: { readonly netns?: string } = {},
): Promise<InterfaceInfo | undefined> {
  if (!isInterfaceName(iface)) return undefined;
  const ns = options.netns === undefined ? [] : ["-n", options.netns];
  const result = await runCommand("ip", [...ns, "-j", "addr", "show", "dev", iface]);
  if (result.code !== 0) return undefined;
  const [link] = JSON.parse(result.stdout) as IpAddrJson[];
  if (link === undefined) return undefined;
  return {
    name: link.ifname,
    ifindex: link.ifindex,
    mtu: link.mtu,
    mac: link.address,
    ipv4: (link.addr_info ?? []).filter((a) => a.family === "inet").map((a) => a.local),
  };
}

interface IpAddrJson {
  ifname: string;
  ifindex: number;
  mtu: number;
  address: string;
  addr_info?: { family: string; local: string }[];
}

/**
 * Every IPv4 address of this network namespace.
 *
 * @example
 * ```ts
 * (await localIpv4()).includes("10.77.0.11");
 * ```
 */
export async function localIpv4(): Promise<string[]> {
  const out = await must("ip", ["-j", "-4", "addr", "show"], "Cannot list addresses");
  const links = JSON.parse(out) as IpAddrJson[];
  return links.flatMap((link) => (link.addr_info ?? []).map((a) => a.local));
}

/**
 * Name of this process's network namespace as `ip netns` knows it; "" when
 * it has none (the host's own namespace, or one made without a name).
 *
 * @example
 * ```ts
 * await currentNetnsName(); // "rlha-n1" under 'ip netns exec rlha-n1'
 * ```
 */
export async function currentNetnsName(): Promise<string> {
  return (await must("ip", ["netns", "identify"], "Cannot name this network namespace")).trim();
}

/**
 * Names of the named network namespaces.
 *
 * @example
 * ```ts
 * (await listNetns()).includes("rlha-n1-nf");
 * ```
 */
export async function listNetns(): Promise<string[]> {
  const out = await must("ip", ["netns", "list"], "Cannot list network namespaces");
  return out.split("\n").map((line) => line.split(" ")[0] ?? "").filter((ns) => ns !== "");
}

/**
 * SIGKILLs every process inside namespace `netns`: they would keep it (and
 * its veth) alive after `ip netns delete`. Returns how many it killed.
 *
 * @example
 * ```ts
 * await killNetnsProcesses("rlha-n1-nf");
 * ```
 */
export async function killNetnsProcesses(
  netns: string,
  signal: Deno.Signal = "SIGKILL",
): Promise<number> {
  const result = await runCommand("ip", ["netns", "pids", netns]);
  if (result.code !== 0) return 0;
  let killed = 0;
  for (const pid of result.stdout.split("\n").map(Number).filter((p) => p > 1)) {
    if (pid === Deno.pid) continue;
    try {
      Deno.kill(pid, signal);
      killed += 1;
    } catch {
      // Already gone.
    }
  }
  return killed;
}

/**
 * The argv prefix that runs `ip netns add/delete` where namespace names are
 * shared. Why: `ip netns exec NODE ...` (how `ha up` is started) gives its
 * command a private *slave* mount namespace, so a namespace `ip netns add`ed
 * from inside is bound under /run/netns for this process only: the host, the
 * tests and `lab down` would see an empty file. Mounts made in the mount
 * namespace of whoever ran `ip netns exec` (the nearest ancestor in another
 * mount namespace) do propagate down to us, so the name works on both sides.
 * Empty when no ancestor is in another mount namespace.
 *
 * @example
 * ```ts
 * const prefix = netnsNamingPrefix(); // ["nsenter", "--mount=/proc/812/ns/mnt", "--"]
 * ```
 */
export function netnsNamingPrefix(): string[] {
  const own = mountNamespace(Deno.pid);
  if (own === undefined) return [];
  let pid = parentOf(Deno.pid);
  for (let hops = 0; pid !== undefined && pid > 1 && hops < 64; hops++) {
    const mnt = mountNamespace(pid);
    if (mnt === undefined) return [];
    if (mnt !== own) return ["nsenter", `--mount=/proc/${pid}/ns/mnt`, "--"];
    pid = parentOf(pid);
  }
  return [];
}

function mountNamespace(pid: number): string | undefined {
  try {
    return Deno.readLinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

function parentOf(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    return Number.isInteger(ppid) ? ppid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Adds named network namespace `name` so that it is usable both here and by
 * whoever started us (see `netnsNamingPrefix`).
 *
 * @example
 * ```ts
 * await addNamedNetns("rlha-n1-nf", "Cannot make the NF namespace");
 * ```
 */
export async function addNamedNetns(name: string, action: string): Promise<void> {
  const [program, ...prefix] = netnsNamingPrefix();
  if (program !== undefined) {
    const added = await runCommand(program, [...prefix, "ip", "netns", "add", name]);
    // Seen here too only if our mount namespace receives the ancestor's mounts.
    if (
      added.code === 0 && (await runCommand("ip", ["-n", name, "link", "show", "lo"])).code === 0
    ) {
      return;
    }
    if (added.code === 0) await runCommand(program, [...prefix, "ip", "netns", "delete", name]);
  }
  await must("ip", ["netns", "add", name], action);
}

/**
 * Deletes named network namespace `name` in both places `addNamedNetns` may
 * have made it. Safe when it does not exist.
 *
 * @example
 * ```ts
 * await deleteNamedNetns("rlha-n1-nf", "Cannot remove the NF namespace");
 * ```
 */
export async function deleteNamedNetns(name: string, action: string): Promise<void> {
  const [program, ...prefix] = netnsNamingPrefix();
  if (program !== undefined) {
    // Fails harmlessly when the ancestor is gone or never had the name.
    await runCommand(program, [...prefix, "ip", "netns", "delete", name]);
  }
  if ((await listNetns()).includes(name)) await must("ip", ["netns", "delete", name], action);
}
