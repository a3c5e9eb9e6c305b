/**
 * Resource limits (ulimit) of this process from /proc/self/limits, as
 * `limits.<name>.soft` and `.hard` with the short names of `ulimit`/prlimit
 * (`nofile`, `stack`, `memlock`, …). Values are numbers or "unlimited".
 *
 * @module
 */
import { known, unknown } from "../schema.ts";
import { type Props, readText } from "./_io.ts";

const SOURCE = "/proc/self/limits";

/** /proc/self/limits row titles → short names. */
const NAMES: Record<string, string> = {
  "Max cpu time": "cpu",
  "Max file size": "fsize",
  "Max data size": "data",
  "Max stack size": "stack",
  "Max core file size": "core",
  "Max resident set": "rss",
  "Max processes": "nproc",
  "Max open files": "nofile",
  "Max locked memory": "memlock",
  "Max address space": "as",
  "Max file locks": "locks",
  "Max pending signals": "sigpending",
  "Max msgqueue size": "msgqueue",
  "Max nice priority": "nice",
  "Max realtime priority": "rtprio",
  "Max realtime timeout": "rttime",
};

/**
 * Parses /proc/self/limits.
 *
 * @example
 * ```ts
 * parseLimits("Limit  Soft Limit  Hard Limit  Units\nMax open files  1024  4096  files\n");
 * // { nofile: { soft: 1024, hard: 4096, unit: "files" } }
 * ```
 */
export function parseLimits(
  text: string,
): Record<string, { soft: number | "unlimited"; hard: number | "unlimited"; unit: string }> {
  const out: Record<
    string,
    { soft: number | "unlimited"; hard: number | "unlimited"; unit: string }
  > = {};
  for (const line of text.split("\n").slice(1)) {
    // Titles contain single spaces; columns are separated by two or more.
    const match = /^(.+?)\s{2,}(\S+)\s+(\S+)\s*(\S*)\s*$/.exec(line);
    if (!match) continue;
    const name = NAMES[match[1]!.trim()];
    if (name === undefined) continue;
    const value = (v: string) => (v === "unlimited" ? "unlimited" : Number(v));
    const soft = value(match[2]!);
    const hard = value(match[3]!);
    if (Number.isNaN(soft) || Number.isNaN(hard)) continue;
    out[name] = { soft, hard, unit: match[4]! };
  }
  return out;
}

/**
 * Limit properties.
 *
 * @example
 * ```ts
 * (await collectLimits())["limits.nofile.soft"]; // known(1024, "/proc/self/limits")
 * ```
 */
export async function collectLimits(): Promise<Props> {
  const r = await readText(SOURCE);
  if (r.kind === "error") return { "limits.nofile.soft": unknown(SOURCE, r.reason) };
  const props: Props = {};
  for (const [name, { soft, hard }] of Object.entries(parseLimits(r.text))) {
    props[`limits.${name}.soft`] = known(soft, SOURCE);
    props[`limits.${name}.hard`] = known(hard, SOURCE);
  }
  return props;
}
