/**
 * Counts an interface's frames with an XDP program for a while: the smallest
 * end-to-end use of the XDP loading path (raw BPF instructions, bpf syscall,
 * BPF link). Run inside a lab namespace, it also shows that a replica node's
 * interface sees the client's frames to another node (the switch mirrors).
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { XdpCounter, type XdpMode } from "../native.ts";
import { runCommand } from "./_command.ts";

/** Options of `countFrames`. */
export interface CountFramesOptions {
  readonly mode?: XdpMode;
  /** How long to count, in ms. */
  readonly durationMs: number;
  /** Called once the program is attached (traffic may start). */
  readonly onAttached?: () => void;
  /** Ends the count early. */
  readonly signal?: AbortSignal;
}

/** Result of `countFrames`. */
export interface FrameCount {
  readonly iface: string;
  readonly ifindex: number;
  readonly mode: XdpMode;
  readonly packets: bigint;
  readonly durationMs: number;
}

/**
 * Attaches the XDP counter to `iface` (in this process's network namespace),
 * waits, and returns how many frames it saw. Always detaches.
 *
 * @example
 * ```ts
 * const count = await countFrames("eth0", { durationMs: 1000 });
 * ```
 */
export async function countFrames(iface: string, options: CountFramesOptions): Promise<FrameCount> {
  const ifindex = await interfaceIndex(iface);
  const mode = options.mode ?? "generic";
  const started = performance.now();
  using counter = XdpCounter.attach(ifindex, mode);
  options.onAttached?.();
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, options.durationMs);
    options.signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
  return {
    iface,
    ifindex,
    mode,
    packets: counter.packets(),
    durationMs: performance.now() - started,
  };
}

async function interfaceIndex(iface: string): Promise<number> {
  if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(iface)) {
    throw new ConfigError(`Invalid interface name "${iface}"`, {
      code: "bad_interface",
      hint: "use a name from 'ip link' (at most 15 characters)",
    });
  }
  // Asked of `ip`, not read from /sys: Deno allows /sys only with --allow-all.
  const result = await runCommand("ip", ["-j", "link", "show", "dev", iface]);
  const parsed: unknown = result.code === 0 ? JSON.parse(result.stdout) : [];
  const ifindex = Array.isArray(parsed) ? (parsed[0] as { ifindex?: unknown })?.ifindex : undefined;
  if (typeof ifindex !== "number") {
    throw new ConfigError(`Cannot attach XDP program to "${iface}": interface not found`, {
      code: "interface_not_found",
      hint:
        "run it in the interface's namespace ('ip netns exec NS ...'); list them with 'ip link'",
    });
  }
  return ifindex;
}
