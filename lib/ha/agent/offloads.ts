/**
 * Segmentation, receive-coalescing and checksum offloads off, on the
 * interfaces the agent's packets cross. Why: a GSO/TSO super-frame (up to
 * 64 KiB) does not fit an AF_XDP frame, GRO merges the client's segments the
 * agent must see one by one, and tx checksum offload leaves partial checksums
 * that the agent would copy to the wire or to replicas as they are.
 *
 * What was switched off can be switched back (`restoreOffloads`): the outer
 * interface is the node's own and outlives the agent.
 *
 * @module
 */
import { must } from "./_host.ts";

/** The ethtool features turned off, by their short names. */
export const OFFLOADS_OFF = ["tso", "gso", "gro", "tx"] as const;

/** Features an interface had before `disableOffloads`, to put back. */
export interface OffloadRestore {
  readonly iface: string;
  readonly netns?: string;
  /** Leaf feature (ethtool long name) -> its state before. */
  readonly features: Readonly<Record<string, boolean>>;
}

/**
 * Turns tso, gso, gro and tx checksum offload off on `iface` (in `netns`, or
 * this namespace) and returns what changed, to restore later.
 *
 * @example
 * ```ts
 * const restore = await disableOffloads("eth0");
 * // ...
 * await restoreOffloads(restore);
 * ```
 */
export async function disableOffloads(
  iface: string,
  options: { readonly netns?: string } = {},
): Promise<OffloadRestore> {
  const action = `Cannot turn offloads off on "${iface}"`;
  const before = await features(iface, options.netns, action);
  await ethtool(options.netns, ["-K", iface, ...OFFLOADS_OFF.flatMap((f) => [f, "off"])], action);
  const after = await features(iface, options.netns, action);
  const changed: Record<string, boolean> = {};
  for (const [name, state] of before) {
    if (after.get(name)?.on !== state.on && !state.fixed) changed[name] = state.on;
  }
  return {
    iface,
    features: changed,
    ...(options.netns === undefined ? {} : { netns: options.netns }),
  };
}

/**
 * Puts back the features `disableOffloads` changed; a no-op when none did.
 *
 * @example
 * ```ts
 * await restoreOffloads(restore);
 * ```
 */
export async function restoreOffloads(restore: OffloadRestore): Promise<void> {
  const args = Object.entries(restore.features).flatMap(([name, on]) => [name, on ? "on" : "off"]);
  if (args.length === 0) return;
  await ethtool(
    restore.netns,
    ["-K", restore.iface, ...args],
    `Cannot restore offloads on "${restore.iface}"`,
  );
}

interface Feature {
  readonly on: boolean;
  readonly fixed: boolean;
}

/**
 * Leaf features of `ethtool -k` (a line followed by indented lines is a
 * group such as tx-checksumming: setting it would set all its members, so
 * only leaves are recorded and restored).
 */
async function features(
  iface: string,
  netns: string | undefined,
  action: string,
): Promise<Map<string, Feature>> {
  const lines = (await ethtool(netns, ["-k", iface], action)).split("\n");
  const leaves = new Map<string, Feature>();
  for (const [i, line] of lines.entries()) {
    const match = /^(\s*)([\w-]+): (on|off)( \[fixed\])?/.exec(line);
    if (match === null) continue;
    const next = lines[i + 1] ?? "";
    const isGroup = match[1] === "" && /^\s+\S/.test(next);
    if (!isGroup) leaves.set(match[2]!, { on: match[3] === "on", fixed: match[4] !== undefined });
  }
  return leaves;
}

async function ethtool(
  netns: string | undefined,
  args: readonly string[],
  action: string,
): Promise<string> {
  return netns === undefined
    ? await must("ethtool", args, action)
    : await must("ip", ["netns", "exec", netns, "ethtool", ...args], action);
}
