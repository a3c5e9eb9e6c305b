/**
 * Memory from /proc/meminfo (every field, in kB) and the huge page pools
 * of each size from /sys/kernel/mm/hugepages.
 *
 * @module
 */
import { known, unknown } from "../schema.ts";
import { listDir, type Props, readAll, readText } from "./_io.ts";

const MEMINFO = "/proc/meminfo";

/**
 * /proc/meminfo as `name → {value, unit}`.
 *
 * @example
 * ```ts
 * parseMeminfo("MemTotal:  16318440 kB\nHugePages_Total:  0\n");
 * // { MemTotal: { value: 16318440, unit: "kB" }, HugePages_Total: { value: 0, unit: "" } }
 * ```
 */
export function parseMeminfo(text: string): Record<string, { value: number; unit: string }> {
  const out: Record<string, { value: number; unit: string }> = {};
  for (const match of text.matchAll(/^([\w()]+):\s+(\d+)\s*(\w*)$/gm)) {
    out[match[1]!] = { value: Number(match[2]), unit: match[3]! };
  }
  return out;
}

/**
 * The property path of a meminfo field: `MemTotal` → `memory.mem_total_kb`,
 * `Active(anon)` → `memory.active_anon_kb`, `HugePages_Free` → `hugepages.free`.
 *
 * @example
 * ```ts
 * meminfoPath("SwapTotal", "kB"); // "memory.swap_total_kb"
 * ```
 */
export function meminfoPath(name: string, unit: string): string {
  const huge = /^HugePages_(\w+)$/.exec(name);
  if (huge) return `hugepages.${huge[1]!.toLowerCase()}`;
  if (name === "Hugepagesize") return "hugepages.default_size_kb";
  const direct = /^DirectMap(\d+)([kMG])$/.exec(name);
  if (direct) return `memory.direct_map_${direct[1]}${direct[2]!.toLowerCase()}_kb`;
  const snake = name
    .replace(/\((\w+)\)/, "_$1")
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1_$2")
    .toLowerCase();
  return `memory.${snake}${unit.toLowerCase() === "kb" ? "_kb" : ""}`;
}

/**
 * Memory and huge page properties.
 *
 * @example
 * ```ts
 * const props = await collectMemory();
 * ```
 */
export async function collectMemory(): Promise<Props> {
  const [meminfo, pools] = await Promise.all([readText(MEMINFO), collectHugepagePools()]);
  if (meminfo.kind === "error") {
    return { "memory.mem_total_kb": unknown(MEMINFO, meminfo.reason), ...pools };
  }
  const props: Props = {};
  for (const [name, { value, unit }] of Object.entries(parseMeminfo(meminfo.text))) {
    props[meminfoPath(name, unit)] = known(value, MEMINFO);
  }
  return { ...props, ...pools };
}

async function collectHugepagePools(): Promise<Props> {
  const dir = "/sys/kernel/mm/hugepages";
  const listing = await listDir(dir, { missing: "the kernel was built without hugetlbfs" });
  if (listing.kind === "error") return { "hugepages.sizes_kb": unknown(dir, listing.reason) };
  const sizes = listing.names.flatMap((n) => {
    const m = /^hugepages-(\d+)kB$/.exec(n);
    return m ? [Number(m[1])] : [];
  }).sort((a, b) => a - b);
  const files: Record<string, readonly [string]> = {};
  for (const size of sizes) {
    const base = `${dir}/hugepages-${size}kB`;
    files[`hugepages.${size}kb.total`] = [`${base}/nr_hugepages`];
    files[`hugepages.${size}kb.free`] = [`${base}/free_hugepages`];
    files[`hugepages.${size}kb.overcommit`] = [`${base}/nr_overcommit_hugepages`];
  }
  return { "hugepages.sizes_kb": known(sizes, dir), ...await readAll(files) };
}
