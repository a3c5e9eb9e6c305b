/**
 * The running kernel: release, version, command line, build configuration
 * (the options that change performance), preemption model, taint, lockdown
 * and load.
 *
 * @module
 */
import { type Json, known, unknown } from "../schema.ts";
import { parseScalar, parseSelected, type Props, readAll, readText } from "./_io.ts";

/** Kernel config options recorded (as `kernel.config.<lowercase name without CONFIG_>`). */
export const CONFIG_OPTIONS = [
  "CONFIG_HZ",
  "CONFIG_PREEMPT_NONE",
  "CONFIG_PREEMPT_VOLUNTARY",
  "CONFIG_PREEMPT",
  "CONFIG_PREEMPT_DYNAMIC",
  "CONFIG_PREEMPT_RT",
  "CONFIG_NO_HZ_IDLE",
  "CONFIG_NO_HZ_FULL",
  "CONFIG_TRANSPARENT_HUGEPAGE",
  "CONFIG_NUMA",
  "CONFIG_NUMA_BALANCING",
  "CONFIG_SCHED_AUTOGROUP",
  "CONFIG_SCHED_CORE",
  "CONFIG_CPU_FREQ",
  "CONFIG_CPU_IDLE",
  "CONFIG_PSI",
  "CONFIG_X86_MSR",
  "CONFIG_PERF_EVENTS",
  "CONFIG_KASAN",
  "CONFIG_KCSAN",
  "CONFIG_LOCKDEP",
  "CONFIG_PROVE_LOCKING",
  "CONFIG_DEBUG_PAGEALLOC",
  "CONFIG_SLUB_DEBUG_ON",
  "CONFIG_INIT_ON_ALLOC_DEFAULT_ON",
  "CONFIG_INIT_ON_FREE_DEFAULT_ON",
  "CONFIG_HARDENED_USERCOPY",
  "CONFIG_RANDOMIZE_BASE",
  "CONFIG_MITIGATION_PAGE_TABLE_ISOLATION",
  "CONFIG_MITIGATION_RETPOLINE",
  "CONFIG_CPU_MITIGATIONS",
] as const;

/**
 * The recorded options of a kernel `.config`: `y`, `m`, a number, a string,
 * or `"not set"` (absent or `# … is not set`, which both mean off).
 *
 * @example
 * ```ts
 * parseKernelConfig("CONFIG_HZ=250\n# CONFIG_PREEMPT_RT is not set\n")["CONFIG_HZ"]; // 250
 * ```
 */
export function parseKernelConfig(text: string): Record<string, Json> {
  const all = new Map<string, string>();
  for (const match of text.matchAll(/^(CONFIG_\w+)=(.*)$/gm)) all.set(match[1]!, match[2]!);
  const out: Record<string, Json> = {};
  for (const name of CONFIG_OPTIONS) {
    const raw = all.get(name);
    out[name] = raw === undefined
      ? "not set"
      : raw.startsWith('"')
      ? raw.slice(1, -1)
      : parseScalar(raw);
  }
  return out;
}

/**
 * The preemption model a kernel was built with, from its version string.
 *
 * @example
 * ```ts
 * preemptBuild("#1 SMP PREEMPT_DYNAMIC Thu Jan 1"); // "PREEMPT_DYNAMIC"
 * ```
 */
export function preemptBuild(version: string): string {
  for (const model of ["PREEMPT_RT", "PREEMPT_DYNAMIC", "PREEMPT_LAZY", "PREEMPT"]) {
    if (new RegExp(`\\b${model}\\b`).test(version)) return model;
  }
  return "none (no PREEMPT in the version string)";
}

async function gunzipText(bytes: Uint8Array): Promise<string> {
  const stream = new Blob([bytes as BufferSource]).stream().pipeThrough(
    new DecompressionStream("gzip"),
  );
  return await new Response(stream).text();
}

async function readKernelConfig(
  release: string | undefined,
): Promise<{ text: string; source: string } | { reason: string }> {
  try {
    return {
      text: await gunzipText(await Deno.readFile("/proc/config.gz")),
      source: "/proc/config.gz",
    };
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) return { reason: String(error) };
  }
  if (release !== undefined) {
    const boot = `/boot/config-${release}`;
    const r = await readText(boot);
    if (r.kind === "ok") return { text: r.text, source: boot };
  }
  return {
    reason:
      "no such file: neither /proc/config.gz (CONFIG_IKCONFIG_PROC) nor /boot/config-<release> exists",
  };
}

/**
 * Kernel properties.
 *
 * @example
 * ```ts
 * const props = await collectKernel();
 * ```
 */
export async function collectKernel(): Promise<Props> {
  const props = await readAll({
    "kernel.release": ["/proc/sys/kernel/osrelease"],
    "kernel.version": ["/proc/sys/kernel/version"],
    "kernel.ostype": ["/proc/sys/kernel/ostype"],
    "kernel.arch": ["/proc/sys/kernel/arch"],
    "kernel.cmdline": ["/proc/cmdline", (t) => t.trim()],
    "kernel.tainted": ["/proc/sys/kernel/tainted"],
    "kernel.lockdown": ["/sys/kernel/security/lockdown", parseSelected],
    "kernel.uptime_s": ["/proc/uptime", (t) => Number(t.trim().split(/\s+/)[0])],
    "kernel.load": ["/proc/loadavg", (t) => t.trim().split(/\s+/).slice(0, 3).map(Number)],
    "sched.preempt": ["/sys/kernel/debug/sched/preempt", parseSelected],
  }, { missing: "not exposed by this kernel (or securityfs/debugfs not mounted)" });
  const version = props["kernel.version"]!;
  props["kernel.preempt_build"] = version.status === "ok"
    ? known(preemptBuild(String(version.value)), version.source)
    : version;
  const release = props["kernel.release"]!;
  const config = await readKernelConfig(
    release.status === "ok" ? String(release.value) : undefined,
  );
  const values = "reason" in config ? undefined : parseKernelConfig(config.text);
  for (const name of CONFIG_OPTIONS) {
    const path = `kernel.config.${name.slice("CONFIG_".length).toLowerCase()}`;
    props[path] = "reason" in config
      ? unknown("/proc/config.gz", config.reason)
      : known(values![name]!, config.source);
  }
  return props;
}
