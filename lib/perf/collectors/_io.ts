/**
 * Shared reading helpers of the collectors: read a file into a property,
 * and turn an error into a reason a person can act on ("permission denied
 * (needs root)", "no such file: the kernel has no cpufreq driver") instead of
 * a stack trace or, worse, a guessed "off".
 *
 * @module
 */
import { type Json, known, type Property, unknown } from "../schema.ts";

/** Properties collected by one collector, by dotted path. */
export type Props = Record<string, Property>;

/** A file's text, or why it could not be read. */
export type ReadResult =
  | { readonly kind: "ok"; readonly text: string }
  | { readonly kind: "error"; readonly reason: string };

/** Options of the read helpers. */
export interface ReadOptions {
  /** Explains a missing file: `no such file: <missing>`. */
  readonly missing?: string;
}

/**
 * A reason from an error: what failed and, for the common cases, why.
 *
 * @example
 * ```ts
 * reasonOf(new Deno.errors.NotFound("x"), { missing: "no cpufreq driver" }); // "no such file: no cpufreq driver"
 * ```
 */
export function reasonOf(error: unknown, options: ReadOptions = {}): string {
  if (error instanceof Deno.errors.NotFound) {
    return options.missing === undefined ? "no such file" : `no such file: ${options.missing}`;
  }
  if (error instanceof Deno.errors.PermissionDenied) {
    return Deno.uid() === 0
      ? "permission denied (even for root: the kernel restricts it)"
      : "permission denied (needs root)";
  }
  if (isNotCapable(error)) {
    return "Deno refused the read: /proc and /sys need --allow-all (run reliab through its launcher)";
  }
  const message = error instanceof Error ? error.message : String(error);
  const os = /\(os error (\d+)\)/.exec(message)?.[1];
  switch (os) {
    case "19": // ENODEV
    case "22": // EINVAL
    case "95": // EOPNOTSUPP
      return `not supported by this kernel or device (${message})`;
    case "5":
      return `I/O error: the driver refused the read (${message})`;
    case "16":
      return `device busy (${message})`;
    default:
      return message;
  }
}

/**
 * Whether Deno refused an operation for lack of permission (`NotCapable`:
 * /proc, /sys and /dev need --allow-all, whatever --allow-read grants).
 *
 * @example
 * ```ts
 * isNotCapable(new Deno.errors.NotCapable("x")); // true
 * ```
 */
export function isNotCapable(error: unknown): boolean {
  return error instanceof Error && error.name === "NotCapable";
}

/**
 * Reads a small text file (procfs, sysfs).
 *
 * @example
 * ```ts
 * const r = await readText("/proc/cmdline");
 * if (r.kind === "ok") console.log(r.text);
 * ```
 */
export async function readText(path: string, options: ReadOptions = {}): Promise<ReadResult> {
  try {
    return { kind: "ok", text: await Deno.readTextFile(path) };
  } catch (error) {
    return { kind: "error", reason: reasonOf(error, options) };
  }
}

/**
 * A property from a file: `parse(text)` as the value, or unknown with the
 * reason. A parse that returns `undefined` means the content was not what
 * was expected, which is reported rather than guessed.
 *
 * @example
 * ```ts
 * const p = await fileProperty("/proc/sys/vm/swappiness", parseScalar);
 * ```
 */
export async function fileProperty(
  path: string,
  parse: (text: string) => Json | undefined = parseScalar,
  options: ReadOptions = {},
): Promise<Property> {
  const result = await readText(path, options);
  if (result.kind === "error") return unknown(path, result.reason);
  return parsedProperty(result.text, path, parse);
}

/**
 * `parse(text)` as a known property, or unknown when it cannot be parsed.
 *
 * @example
 * ```ts
 * parsedProperty("42\n", "/x", parseScalar); // known(42, "/x")
 * ```
 */
export function parsedProperty(
  text: string,
  source: string,
  parse: (text: string) => Json | undefined,
): Property {
  const value = parse(text);
  if (value === undefined) {
    return unknown(source, `unexpected content ${JSON.stringify(text.trim().slice(0, 60))}`);
  }
  return known(value, source);
}

/**
 * The entries of a directory, sorted, or why it could not be listed.
 *
 * @example
 * ```ts
 * const r = await listDir("/sys/block");
 * ```
 */
export async function listDir(
  path: string,
  options: ReadOptions = {},
): Promise<
  { readonly kind: "ok"; readonly names: string[] } | {
    readonly kind: "error";
    readonly reason: string;
  }
> {
  try {
    const names: string[] = [];
    for await (const entry of Deno.readDir(path)) names.push(entry.name);
    return { kind: "ok", names: names.sort(naturalCompare) };
  } catch (error) {
    return { kind: "error", reason: reasonOf(error, options) };
  }
}

/**
 * Orders `cpu2` before `cpu10`.
 *
 * @example
 * ```ts
 * ["cpu10", "cpu2"].sort(naturalCompare); // ["cpu2", "cpu10"]
 * ```
 */
export function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}

/**
 * A trimmed scalar: an integer or decimal as a number, else the string.
 *
 * @example
 * ```ts
 * parseScalar("60\n"); // 60
 * parseScalar("[always] madvise never"); // "[always] madvise never"
 * ```
 */
export function parseScalar(text: string): Json {
  const trimmed = text.trim();
  if (/^-?\d+$/.test(trimmed)) {
    const n = Number(trimmed);
    // u64 values beyond 2^53 stay strings so they are not rounded.
    return Number.isSafeInteger(n) ? n : trimmed;
  }
  if (/^-?\d+\.\d+$/.test(trimmed)) return Number(trimmed);
  return trimmed;
}

/**
 * Numbers separated by whitespace (`4096 131072 6291456`) as an array;
 * other text as `parseScalar` gives it.
 *
 * @example
 * ```ts
 * parseSysctl("4096\t131072\t6291456\n"); // [4096, 131072, 6291456]
 * ```
 */
export function parseSysctl(text: string): Json {
  const parts = text.trim().split(/\s+/);
  if (parts.length > 1 && parts.every((p) => /^-?\d+$/.test(p))) {
    return parts.map((p) => parseScalar(p));
  }
  return parseScalar(text);
}

/**
 * The selected entry of a sysfs choice list (`always [madvise] never` → `madvise`).
 *
 * @example
 * ```ts
 * parseSelected("[mq-deadline] none"); // "mq-deadline"
 * ```
 */
export function parseSelected(text: string): string {
  const match = /\[([^\]]+)\]/.exec(text);
  return match ? match[1]! : text.trim();
}

/**
 * A kernel CPU list (`0-3,8,10-11`) as numbers; an empty list is `[]`.
 *
 * @example
 * ```ts
 * parseCpuList("0-2,5\n"); // [0, 1, 2, 5]
 * ```
 */
export function parseCpuList(text: string): number[] | undefined {
  const trimmed = text.trim();
  if (trimmed === "") return [];
  const out: number[] = [];
  for (const part of trimmed.split(",")) {
    const match = /^(\d+)(?:-(\d+))?(?::(\d+)\/\d+)?$/.exec(part.trim());
    if (!match) return undefined;
    const first = Number(match[1]);
    const last = match[2] === undefined ? first : Number(match[2]);
    const stride = match[3] === undefined ? 1 : Number(match[3]);
    if (last < first || last - first > 65536 || stride < 1) return undefined;
    for (let cpu = first; cpu <= last; cpu += stride) out.push(cpu);
  }
  return out;
}

/**
 * A 0/1 (or Y/N, on/off) flag as a boolean.
 *
 * @example
 * ```ts
 * parseBool("1\n"); // true
 * ```
 */
export function parseBool(text: string): boolean | undefined {
  const t = text.trim().toLowerCase();
  if (["1", "y", "yes", "on", "true", "enabled"].includes(t)) return true;
  if (["0", "n", "no", "off", "false", "disabled"].includes(t)) return false;
  return undefined;
}

/**
 * A sysfs size (`32K`, `1024K`, `16M`) in bytes.
 *
 * @example
 * ```ts
 * parseSize("32K"); // 32768
 * ```
 */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+)\s*([KMG]?)i?B?$/i.exec(text.trim());
  if (!match) return undefined;
  const scale = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[match[2]!.toUpperCase()] ?? 1;
  return Number(match[1]) * scale;
}

/**
 * The same reason for several paths (a whole area that cannot be read).
 *
 * @example
 * ```ts
 * unknownAll(["frequency.governor"], "/sys/devices/system/cpu/cpufreq", "no such file");
 * ```
 */
export function unknownAll(paths: readonly string[], source: string, reason: string): Props {
  const out: Props = {};
  for (const path of paths) out[path] = unknown(source, reason);
  return out;
}

/**
 * Reads several files at once into properties: `{path: [file, parse]}`.
 *
 * @example
 * ```ts
 * const props = await readAll({ "kernel.release": ["/proc/sys/kernel/osrelease", parseScalar] });
 * ```
 */
export async function readAll(
  files: Readonly<Record<string, readonly [string, ((text: string) => Json | undefined)?]>>,
  options: ReadOptions = {},
): Promise<Props> {
  const entries = await Promise.all(
    Object.entries(files).map(async ([path, [file, parse]]) =>
      [path, await fileProperty(file, parse ?? parseScalar, options)] as const
    ),
  );
  return Object.fromEntries(entries);
}

/**
 * An error message without a stack, for reasons.
 *
 * @example
 * ```ts
 * messageOf(new Error("boom")); // "boom"
 * ```
 */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
