/**
 * A hostile network for the `ha` lab (`reliab ha lab up --netem SPEC`): loss,
 * delay, reordering and duplication on every lab link, both directions.
 *
 * Where: every port of the lab's switch, in the switch namespace only. Each
 * port's egress qdisc impairs the frames going to its client or node; its
 * ingress is redirected through an IFB device whose qdisc impairs the frames
 * coming from them. Not on the nodes' own `eth0`: the agent sends there
 * through AF_XDP, whose copy-mode transmit skips the qdisc
 * (`__dev_direct_xmit`), so a qdisc on the node's end would impair only the
 * replication channel. A frame from the client to a node crosses two links
 * (the client's and the node's), so it meets the impairment twice, as on two
 * lossy hops; the switch floods the client's frames to every node and each
 * node port draws its own losses, so a replica can miss what the primary got.
 *
 * How: `tc qdisc ... netem SPEC` when the kernel has `sch_netem`. Some
 * kernels do not (CONFIG_NET_SCH_NETEM off, as on the 6.18 VM this was
 * written on); then loss and duplication are emulated with what is there —
 * a classic-BPF filter drawing `ld rand` (cls_bpf) per frame, `mirred` to a
 * black-hole IFB (its `pfifo limit 0` drops everything) for loss, and
 * `mirred ingress mirror` back into the port for duplication. Delay and
 * reordering cannot be emulated without a delaying qdisc (netem, fq, etf):
 * such a SPEC is refused on those kernels with a KernelSupportError.
 *
 * Accepted SPEC words, each at most once: `loss P%`, `delay TIME [JITTER]`,
 * `reorder P%` (needs a delay: netem reorders by sending some frames
 * undelayed), `duplicate P%`. TIME is a number with `us`, `ms` or `s`.
 * Refused: `corrupt` (the lab carries real checksums, so a flipped bit is
 * loss as far as TCP goes — and a header the agent reads before any checksum
 * is checked would test a different thing), and everything else netem knows
 * (rate, slot, distributions, correlations), so a SPEC means the same on
 * both ways of applying it.
 *
 * @module
 */
import { ConfigError, KernelSupportError, ReliabError } from "../errors.ts";
import { runCommand } from "./_command.ts";

/** A parsed, checked SPEC. */
export interface NetemSpec {
  /** The SPEC's words joined by single spaces: what `tc ... netem` gets. */
  readonly text: string;
  readonly lossPercent: number | null;
  readonly delayUs: number | null;
  readonly jitterUs: number | null;
  readonly reorderPercent: number | null;
  readonly duplicatePercent: number | null;
}

/** How a lab's impairment is applied: the netem qdisc, or the emulation (loss, duplicate). */
export type NetemMode = "netem" | "emulated";

/** The impairment of a lab that is up (also in its state file). */
export interface LabNetem {
  readonly spec: string;
  readonly mode: NetemMode;
}

const HINT =
  'use any of: loss P%, delay TIME [JITTER], reorder P% (with a delay), duplicate P%; e.g. --netem "loss 1% delay 1ms 200us"';
const DELAY_US_MAX = 10_000_000;
/** The black-hole IFB of the emulation (one per switch namespace). */
export const NETEM_DROP_DEVICE = "rldrop";
/** A classic BPF program that matches every frame (`ret #-1`). */
const MATCH_ALL = "1,6 0 0 4294967295";

/**
 * Parses and checks a SPEC; throws a ConfigError naming the bad word.
 *
 * @example
 * ```ts
 * parseNetemSpec("loss 1% delay 1ms 200us").delayUs; // 1000
 * ```
 */
export function parseNetemSpec(spec: string): NetemSpec {
  const words = spec.trim().split(/\s+/).filter((w) => w !== "");
  const bad = (detail: string) =>
    new ConfigError(`Invalid netem spec "${spec}": ${detail}`, {
      code: "netem_spec_invalid",
      hint: HINT,
    });
  if (words.length === 0) throw bad("it is empty");
  const seen = new Set<string>();
  const out = {
    lossPercent: null as number | null,
    delayUs: null as number | null,
    jitterUs: null as number | null,
    reorderPercent: null as number | null,
    duplicatePercent: null as number | null,
  };
  const percent = (keyword: string, word: string | undefined): number => {
    const m = word === undefined ? null : /^(\d+(?:\.\d+)?)%$/.exec(word);
    const value = m === null ? NaN : Number(m[1]);
    if (!(value > 0 && value <= 100)) {
      throw bad(`${keyword} needs a percentage above 0 and at most 100, got "${word ?? ""}"`);
    }
    return value;
  };
  for (let i = 0; i < words.length;) {
    const keyword = words[i]!;
    if (seen.has(keyword)) throw bad(`"${keyword}" appears twice`);
    seen.add(keyword);
    if (keyword === "loss") {
      out.lossPercent = percent(keyword, words[i + 1]);
      i += 2;
    } else if (keyword === "duplicate") {
      out.duplicatePercent = percent(keyword, words[i + 1]);
      i += 2;
    } else if (keyword === "reorder") {
      out.reorderPercent = percent(keyword, words[i + 1]);
      i += 2;
    } else if (keyword === "delay") {
      const delay = time(words[i + 1]);
      if (delay === undefined || delay === 0 || delay > DELAY_US_MAX) {
        throw bad(`delay needs a time above 0 and at most 10s, got "${words[i + 1] ?? ""}"`);
      }
      out.delayUs = delay;
      const jitter = time(words[i + 2]);
      if (jitter !== undefined) {
        if (jitter > delay) throw bad(`the jitter "${words[i + 2]}" is larger than the delay`);
        out.jitterUs = jitter;
        i += 3;
      } else {
        i += 2;
      }
    } else if (keyword === "corrupt") {
      throw bad("corrupt is not accepted: a corrupted frame fails its checksum, use loss");
    } else {
      throw bad(`unknown word "${keyword}"`);
    }
  }
  if (out.reorderPercent !== null && out.delayUs === null) {
    throw bad("reorder needs a delay (netem reorders by sending some frames undelayed)");
  }
  return { text: words.join(" "), ...out };
}

/** A time word (`200us`, `1ms`, `0.5s`) in whole µs; undefined when it is none. */
function time(word: string | undefined): number | undefined {
  const m = word === undefined ? null : /^(\d+(?:\.\d+)?)(us|ms|s)$/.exec(word);
  if (m === null) return undefined;
  const scale = m[2] === "us" ? 1 : m[2] === "ms" ? 1000 : 1_000_000;
  return Math.round(Number(m[1]) * scale);
}

/**
 * Whether the emulation can apply `spec` (loss and duplication only).
 *
 * @example
 * ```ts
 * isEmulable(parseNetemSpec("loss 1% duplicate 1%")); // true
 * ```
 */
export function isEmulable(spec: NetemSpec): boolean {
  return spec.delayUs === null && spec.reorderPercent === null;
}

/**
 * A classic BPF program (tc `bytecode` syntax) that matches a frame with
 * probability `percent`: `ld rand; jge #T, nomatch; ret #-1; nomatch: ret #0`.
 *
 * @example
 * ```ts
 * randomMatchBytecode(25); // "4,32 0 0 4294963256,53 1 0 1073741824,6 0 0 4294967295,6 0 0 0"
 * ```
 */
export function randomMatchBytecode(percent: number): string {
  if (!(percent > 0 && percent <= 100)) throw new RangeError(`Invalid percentage "${percent}"`);
  // SKF_AD_OFF (-0x1000) + SKF_AD_RANDOM (56), as an unsigned 32-bit k.
  const ldRand = 2 ** 32 - 0x1000 + 56;
  const threshold = Math.min(2 ** 32 - 1, Math.round(percent / 100 * 2 ** 32));
  return `4,32 0 0 ${ldRand},53 1 0 ${threshold},6 0 0 4294967295,6 0 0 0`;
}

/**
 * The commands (`tc`/`ip` argv, without the program's `-n NETNS`) that
 * impair switch port `port`, both directions, in `mode`. In `emulated` mode
 * the caller first runs `netemDropDeviceCommands()` once.
 *
 * @example
 * ```ts
 * netemPortCommands(parseNetemSpec("loss 1%"), "netem", "n1")[0];
 * // ["tc", "qdisc", "replace", "dev", "n1", "root", "netem", "loss", "1%"]
 * ```
 */
export function netemPortCommands(spec: NetemSpec, mode: NetemMode, port: string): string[][] {
  const words = spec.text.split(" ");
  if (mode === "netem") {
    const ifb = `ifb-${port}`;
    return [
      ["tc", "qdisc", "replace", "dev", port, "root", "netem", ...words],
      ["ip", "link", "add", ifb, "type", "ifb"],
      ["ip", "link", "set", ifb, "up"],
      ["tc", "qdisc", "replace", "dev", ifb, "root", "netem", ...words],
      ["tc", "qdisc", "add", "dev", port, "clsact"],
      [
        ...filter(port, "ingress", 1, MATCH_ALL),
        "action",
        "mirred",
        "egress",
        "redirect",
        "dev",
        ifb,
      ],
    ];
  }
  if (!isEmulable(spec)) {
    throw new RangeError(`Cannot emulate netem spec "${spec.text}": only loss and duplicate`);
  }
  const commands = [["tc", "qdisc", "add", "dev", port, "clsact"]];
  const drop = ["action", "mirred", "egress", "redirect", "dev", NETEM_DROP_DEVICE];
  if (spec.duplicatePercent !== null) {
    // The copy re-enters the port's ingress past its filters: it is not lost here again.
    commands.push([
      ...filter(port, "ingress", 1, randomMatchBytecode(spec.duplicatePercent)),
      ...["action", "mirred", "ingress", "mirror", "dev", port],
    ]);
  }
  if (spec.lossPercent !== null) {
    const program = randomMatchBytecode(spec.lossPercent);
    commands.push([...filter(port, "ingress", 2, program), ...drop]);
    commands.push([...filter(port, "egress", 1, program), ...drop]);
  }
  return commands;
}

/**
 * The commands that make the emulation's black hole: an IFB whose queue
 * holds nothing, so whatever is redirected to it is dropped (and counted).
 *
 * @example
 * ```ts
 * netemDropDeviceCommands().length; // 3
 * ```
 */
export function netemDropDeviceCommands(): string[][] {
  return [
    ["ip", "link", "add", NETEM_DROP_DEVICE, "type", "ifb"],
    ["ip", "link", "set", NETEM_DROP_DEVICE, "up"],
    ["tc", "qdisc", "replace", "dev", NETEM_DROP_DEVICE, "root", "pfifo", "limit", "0"],
  ];
}

function filter(port: string, hook: "ingress" | "egress", prio: number, program: string) {
  return [
    ...["tc", "filter", "add", "dev", port, hook, "prio", String(prio)],
    ...["protocol", "all", "bpf", "bytecode", program],
  ];
}

/**
 * Applies `spec` to the ports `ports` of the switch in namespace `netns`.
 * Throws a ReliabError naming the command that failed.
 *
 * @example
 * ```ts
 * await applyNetem("rlha-sw", ["c", "n1", "n2"], parseNetemSpec("loss 1%"), "netem");
 * ```
 */
export async function applyNetem(
  netns: string,
  ports: readonly string[],
  options: { readonly spec: NetemSpec; readonly mode: NetemMode },
): Promise<void> {
  const action = `Cannot apply netem "${options.spec.text}" in "${netns}"`;
  const commands = [
    ...(options.mode === "emulated" ? netemDropDeviceCommands() : []),
    ...ports.flatMap((port) => netemPortCommands(options.spec, options.mode, port)),
  ];
  for (const [program, ...args] of commands) {
    const result = await runCommand(program!, ["-n", netns, ...args]);
    if (result.code !== 0) {
      throw new ReliabError(
        `${action}: "${program} ${args.join(" ")}" failed: ${firstLine(result.stderr)}`,
        { code: "netem_failed", hint: "run 'reliab ha lab down' to clear a half-made lab" },
      );
    }
  }
}

/**
 * Finds how `spec` can be applied on this kernel, by applying it to a veth
 * in a throwaway namespace `netns` (removed again, also on failure): netem
 * when `sch_netem` is there, else the emulation when the SPEC has only loss
 * and duplication. Throws KernelSupportError when neither can, ConfigError
 * when `tc` rejects the SPEC.
 *
 * @example
 * ```ts
 * const mode = await probeNetem("rlha-probe", parseNetemSpec("loss 1%")); // "netem" or "emulated"
 * ```
 */
export async function probeNetem(netns: string, spec: NetemSpec): Promise<NetemMode> {
  const run = (args: string[]) => runCommand("ip", args);
  await runCommand("tc", ["-V"]); // a missing tc is a ReliabError naming its package
  await run(["netns", "delete", netns]);
  const made = await run(["netns", "add", netns]);
  if (made.code !== 0) {
    throw new ReliabError(`Cannot check netem support: ${firstLine(made.stderr)}`, {
      code: "netem_probe_failed",
      hint: "run as root; is iproute2 installed?",
    });
  }
  try {
    const veth = await run([
      "-n",
      netns,
      "link",
      "add",
      "pa",
      "type",
      "veth",
      "peer",
      "name",
      "pb",
    ]);
    if (veth.code !== 0) {
      throw new KernelSupportError(`Cannot check netem support: ${firstLine(veth.stderr)}`, {
        code: "netem_probe_failed",
        hint: "the lab needs veth (CONFIG_VETH)",
      });
    }
    const tried = await tryApply(netns, spec, "netem");
    if (tried === undefined) return "netem";
    if (!/qdisc kind is unknown|No such file/i.test(tried)) {
      throw new ConfigError(`Invalid netem spec "${spec.text}": tc says: ${tried}`, {
        code: "netem_spec_invalid",
        hint: HINT,
      });
    }
    if (!isEmulable(spec)) {
      throw new KernelSupportError(
        `Cannot apply netem "${spec.text}": this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)`,
        {
          code: "netem_missing",
          hint:
            "without sch_netem only loss and duplicate can be emulated; drop delay and reorder, or use a kernel with sch_netem (modprobe sch_netem)",
        },
      );
    }
    // A fresh veth: the netem attempt may have left a clsact or an IFB behind.
    await run(["-n", netns, "link", "delete", "pa"]);
    await run(["-n", netns, "link", "delete", "ifb-pa"]);
    await run(["-n", netns, "link", "add", "pa", "type", "veth", "peer", "name", "pb"]);
    const emulated = await tryApply(netns, spec, "emulated");
    if (emulated !== undefined) {
      throw new KernelSupportError(
        `Cannot apply netem "${spec.text}": this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM), and the emulation failed: ${emulated}`,
        {
          code: "netem_missing",
          hint:
            "the emulation needs cls_bpf, act_mirred, clsact and ifb (CONFIG_NET_CLS_BPF, CONFIG_NET_ACT_MIRRED, CONFIG_NET_SCH_INGRESS, CONFIG_IFB)",
        },
      );
    }
    return "emulated";
  } finally {
    await run(["netns", "delete", netns]);
  }
}

/** Applies `spec` to `pa` in `netns`; the first failure's tc message, or undefined. */
async function tryApply(
  netns: string,
  spec: NetemSpec,
  mode: NetemMode,
): Promise<string | undefined> {
  try {
    await applyNetem(netns, ["pa"], { spec, mode });
    return undefined;
  } catch (error) {
    if (!(error instanceof ReliabError)) throw error;
    return error.message.replace(/^.*" failed: /, "");
  }
}

function firstLine(text: string): string {
  return text.trim().split("\n")[0] ?? "";
}
