/**
 * /proc/cpuinfo: the kernel's view of the CPU. It differs from CPUID where
 * the kernel hides or adds features (`cpu.kernel_flags` has `constant_tsc`,
 * lacks what a boot option disabled) and it is the only place a guest sees
 * its microcode revision.
 *
 * @module
 */
import { known, type Property, unknown } from "../schema.ts";
import { type Props, readText } from "./_io.ts";

const CPUINFO = "/proc/cpuinfo";

/**
 * The processor blocks of /proc/cpuinfo as key → value maps.
 *
 * @example
 * ```ts
 * parseCpuinfo("processor\t: 0\nflags\t\t: fpu sse\n\n")[0]!.get("flags"); // "fpu sse"
 * ```
 */
export function parseCpuinfo(text: string): Map<string, string>[] {
  const blocks: Map<string, string>[] = [];
  for (const chunk of text.split(/\n\s*\n/)) {
    const block = new Map<string, string>();
    for (const line of chunk.split("\n")) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      block.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    if (block.size > 0) blocks.push(block);
  }
  return blocks;
}

/**
 * Properties from parsed cpuinfo blocks (the first processor, plus whether
 * all processors agree on microcode).
 *
 * @example
 * ```ts
 * cpuinfoProperties(parseCpuinfo(text))["cpu.microcode"];
 * ```
 */
export function cpuinfoProperties(blocks: readonly Map<string, string>[]): Props {
  const first = blocks[0];
  const props: Props = {};
  const get = (key: string, path: string, parse: (v: string) => Property | undefined) => {
    const raw = first?.get(key);
    props[path] = raw === undefined
      ? unknown(CPUINFO, `no "${key}" line in ${CPUINFO} (not reported on this architecture)`)
      : parse(raw) ?? unknown(CPUINFO, `unexpected "${key}" value ${JSON.stringify(raw)}`);
  };
  const text = (v: string) => known(v, CPUINFO);
  const number = (v: string) => {
    const n = Number.parseFloat(v);
    return Number.isFinite(n) ? known(n, CPUINFO) : undefined;
  };
  const list = (v: string) => known(v.split(/\s+/).filter((f) => f !== "").sort(), CPUINFO);
  get("model name", "cpu.kernel_model_name", text);
  get("vendor_id", "cpu.kernel_vendor", text);
  get("microcode", "cpu.microcode", text);
  get("cpu MHz", "cpu.mhz", number);
  get("bogomips", "cpu.bogomips", number);
  get("flags", "cpu.kernel_flags", list);
  get("bugs", "cpu.kernel_bugs", list);
  get("cache size", "cpu.cpuinfo_cache_kb", (v) => number(v.replace(/\s*KB$/i, "")));
  get("cpuid level", "cpu.kernel_cpuid_level", number);
  get("address sizes", "cpu.address_sizes", text);
  const microcodes = new Set(blocks.map((b) => b.get("microcode")).filter((m) => m !== undefined));
  props["cpu.microcode_uniform"] = microcodes.size === 0
    ? unknown(CPUINFO, `no "microcode" line in ${CPUINFO}`)
    : known(microcodes.size === 1, CPUINFO);
  return props;
}

/**
 * Reads /proc/cpuinfo into properties.
 *
 * @example
 * ```ts
 * const props = await collectCpuinfo();
 * ```
 */
export async function collectCpuinfo(): Promise<Props> {
  const result = await readText(CPUINFO);
  if (result.kind === "error") {
    return { "cpu.kernel_flags": unknown(CPUINFO, result.reason) };
  }
  return cpuinfoProperties(parseCpuinfo(result.text));
}
