/**
 * CPU caches of cpu0 from sysfs (`cache/index*`): level, type, size, ways,
 * line size, sets and which CPUs share each one.
 *
 * @module
 */
import { type Json, known, unknown } from "../schema.ts";
import { listDir, parseCpuList, parseScalar, parseSize, type Props, readText } from "./_io.ts";

const CACHE = "/sys/devices/system/cpu/cpu0/cache";

/**
 * The property prefix of a cache: `l1d`, `l1i`, `l2`, `l3` (unified caches
 * get no suffix).
 *
 * @example
 * ```ts
 * cacheName(1, "Data"); // "l1d"
 * ```
 */
export function cacheName(level: number, type: string): string {
  const suffix = { Data: "d", Instruction: "i" }[type] ?? "";
  return `l${level}${suffix}`;
}

/**
 * Cache properties under `cache.<name>.*`.
 *
 * @example
 * ```ts
 * const props = await collectCaches();
 * ```
 */
export async function collectCaches(): Promise<Props> {
  const listing = await listDir(CACHE, {
    missing: "the kernel exposes no cache information for cpu0",
  });
  if (listing.kind === "error") return { "cache.levels": unknown(CACHE, listing.reason) };
  const indexes = listing.names.filter((n) => /^index\d+$/.test(n));
  const props: Props = {};
  const names: string[] = [];
  await Promise.all(indexes.map(async (index) => {
    const dir = `${CACHE}/${index}`;
    const files = [
      "level",
      "type",
      "size",
      "ways_of_associativity",
      "coherency_line_size",
      "number_of_sets",
      "shared_cpu_list",
    ];
    const texts = await Promise.all(files.map((f) => readText(`${dir}/${f}`)));
    const get = (i: number) =>
      texts[i]!.kind === "ok" ? (texts[i] as { text: string }).text.trim() : undefined;
    const level = Number(get(0));
    const type = get(1) ?? "Unified";
    if (!Number.isInteger(level)) return;
    const name = cacheName(level, type);
    names.push(name);
    const put = (key: string, i: number, parse: (t: string) => Json | undefined) => {
      const r = texts[i]!;
      const value = r.kind === "ok" ? parse(r.text) : undefined;
      props[`cache.${name}.${key}`] = r.kind === "error"
        ? unknown(`${dir}/${files[i]}`, r.reason)
        : value === undefined
        ? unknown(`${dir}/${files[i]}`, `unexpected content "${r.text.trim()}"`)
        : known(value, `${dir}/${files[i]}`);
    };
    put("size_bytes", 2, parseSize);
    put("ways", 3, parseScalar);
    put("line_bytes", 4, parseScalar);
    put("sets", 5, parseScalar);
    put("shared_cpus", 6, parseCpuList);
  }));
  props["cache.levels"] = known(names.sort(), `${CACHE}/index*`);
  return props;
}
