/**
 * `takeSnapshot`: records this host's configuration as a flat map of
 * properties, each with its source, redacted and content-hashed.
 *
 * Speed matters (a snapshot runs before every `perf diff`/`check`), so the
 * collectors run concurrently: subprocesses start first (they take longest
 * and are killed after a short timeout), CPUID leaves are read once, and
 * all files are read with Promise.all.
 *
 * @module
 */
import { calibrate } from "./calibrate.ts";
import { collectCaches } from "./collectors/caches.ts";
import { collectClocksource } from "./collectors/clocksource.ts";
import { collectCpuid, readCpuidTable } from "./collectors/cpu.ts";
import { collectCpuinfo } from "./collectors/cpuinfo.ts";
import { collectDmi } from "./collectors/dmi.ts";
import { collectEnv } from "./collectors/env.ts";
import { collectFrequency } from "./collectors/frequency.ts";
import { collectHost } from "./collectors/host.ts";
import { collectKernel } from "./collectors/kernel.ts";
import { collectLimits } from "./collectors/limits.ts";
import { collectMemory } from "./collectors/memory.ts";
import { collectMitigations } from "./collectors/mitigations.ts";
import { collectMsr } from "./collectors/msr.ts";
import { collectNuma } from "./collectors/numa.ts";
import { collectPerfEvents } from "./collectors/perf_events.ts";
import { collectPressure } from "./collectors/pressure.ts";
import { collectProcess } from "./collectors/process.ts";
import { collectStorage } from "./collectors/storage.ts";
import { collectSysctl } from "./collectors/sysctl.ts";
import { collectThp } from "./collectors/thp.ts";
import { collectToolchains } from "./collectors/toolchains.ts";
import { collectTopology } from "./collectors/topology.ts";
import { collectVirtualization } from "./collectors/virtualization.ts";
import { isNotCapable, messageOf, type Props } from "./collectors/_io.ts";
import { CapabilityError } from "../errors.ts";
import { loadRedactKey, type RedactContext, Redactor } from "./redact.ts";
import { withHash } from "./snapshot_file.ts";
import {
  known,
  type Property,
  type Snapshot,
  SNAPSHOT_FORMAT,
  SNAPSHOT_VERSION,
  unknown,
} from "./schema.ts";
import { VERSION } from "../version.ts";

/** Options of `takeSnapshot`. */
export interface SnapshotOptions {
  /** Add calibration micro-benchmarks (a few seconds). Default false. */
  readonly calibrate?: boolean;
  /** Replace identifying values by keyed hashes. Default true. */
  readonly redact?: boolean;
  /** Called with a short message as each phase starts. */
  readonly onProgress?: (message: string) => void;
}

/**
 * Fails fast when Deno may not read /proc: every property would be unknown
 * for the same reason, which is a setup problem, not a host property.
 */
async function checkProcAccess(): Promise<void> {
  try {
    await Deno.readTextFile("/proc/self/stat");
  } catch (error) {
    if (!isNotCapable(error)) return; // Not Linux, or no procfs: collectors say so per property.
    throw new CapabilityError(
      "Cannot take a snapshot: Deno does not allow reading /proc and /sys",
      {
        code: "perf_needs_allow_all",
        hint:
          "run reliab with --allow-all (Deno requires it for /proc and /sys, whatever --allow-read grants)",
        cause: error,
      },
    );
  }
}

/**
 * Runs a collector; a collector that throws is a reliab bug, recorded as
 * one unknown property instead of losing the whole snapshot.
 */
async function guarded(area: string, collect: () => Promise<Props> | Props): Promise<Props> {
  try {
    return await collect();
  } catch (error) {
    return {
      [`${area}.collector`]: unknown(
        `reliab:${area}`,
        `reliab bug: the ${area} collector failed: ${messageOf(error)}`,
      ),
    };
  }
}

/**
 * Takes a snapshot of this host and this process's effective resources.
 *
 * @example
 * ```ts
 * const snapshot = await takeSnapshot({ onProgress: (m) => console.error(m) });
 * console.log(Object.keys(snapshot.properties).length, snapshot.hash);
 * ```
 */
export async function takeSnapshot(options: SnapshotOptions = {}): Promise<Snapshot> {
  const progress = options.onProgress ?? (() => {});
  const redact = options.redact ?? true;
  await checkProcAccess();
  const created = new Date().toISOString();

  progress("running compiler and libc version probes");
  const toolchains = guarded("toolchain", collectToolchains);
  const key = redact ? loadRedactKey() : undefined;
  // Do not leave a rejected promise unobserved while other work runs.
  key?.catch(() => {});

  progress("reading CPUID");
  const cpuidRead = readCpuidTable();
  const vendor = cpuidRead.kind === "ok"
    ? (collectCpuid(cpuidRead)["cpu.vendor"] as { value?: unknown }).value
    : undefined;

  progress("reading /proc and /sys");
  const parts = await Promise.all([
    guarded("cpu", () => collectCpuid(cpuidRead)),
    guarded("cpuinfo", collectCpuinfo),
    guarded("frequency", collectFrequency),
    guarded("topology", collectTopology),
    guarded("cache", collectCaches),
    guarded("numa", collectNuma),
    guarded("memory", collectMemory),
    guarded("kernel", collectKernel),
    guarded("mitigations", collectMitigations),
    guarded("thp", collectThp),
    guarded("sysctl", collectSysctl),
    guarded("clocksource", collectClocksource),
    guarded("virtualization", () => collectVirtualization(cpuidRead)),
    guarded("process", collectProcess),
    guarded("limits", collectLimits),
    guarded("env", collectEnv),
    guarded("storage", collectStorage),
    guarded("pressure", collectPressure),
    guarded("dmi", collectDmi),
    guarded("host", collectHost),
    guarded("perf_events", collectPerfEvents),
    guarded("msr", () => collectMsr(typeof vendor === "string" ? vendor : undefined)),
  ]);
  progress("waiting for version probes");
  parts.push(await toolchains);

  let properties: Record<string, Property> = Object.assign({}, ...parts);
  if (options.calibrate) {
    progress("calibrating");
    properties = { ...properties, ...calibrationProperties(await runCalibration(progress)) };
  }

  let keyId: string | null = null;
  if (key !== undefined) {
    progress("redacting");
    const { key: secret, keyId: id } = await key;
    properties = new Redactor(secret, await redactContext(properties)).redactProperties(properties);
    keyId = id;
  }
  return withHash({
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_VERSION,
    created,
    tool: { name: "reliab", version: VERSION },
    redaction: { enabled: redact, key_id: keyId },
    properties,
  });
}

/** Runs the calibration micro-benchmarks (lib/perf/calibrate.ts). */
async function runCalibration(
  progress: (message: string) => void,
): Promise<Record<string, unknown>> {
  return { ...(await calibrate(progress)) };
}

/** Calibration measurements as `calibration.<kind>` properties. */
function calibrationProperties(measurements: Readonly<Record<string, unknown>>): Props {
  const props: Props = {};
  for (const [kind, m] of Object.entries(measurements)) {
    const path = kind.startsWith("calibration.") ? kind : `calibration.${kind}`;
    const name = path.slice("calibration.".length);
    props[path] = isMeasurement(m)
      ? known({ median: m.median, unit: m.unit, cv: m.cv, runs: m.runs }, `calibrate:${name}`)
      : unknown(`calibrate:${name}`, "the calibration did not produce a measurement");
  }
  return props;
}

function isMeasurement(
  m: unknown,
): m is { median: number; unit: string; cv: number; runs: number } {
  if (m === null || typeof m !== "object") return false;
  const r = m as Record<string, unknown>;
  return typeof r.median === "number" && Number.isFinite(r.median) && typeof r.unit === "string" &&
    typeof r.cv === "number" && Number.isFinite(r.cv) && typeof r.runs === "number";
}

/** Host names, home directories and user names to redact wherever they appear. */
async function redactContext(
  properties: Readonly<Record<string, Property>>,
): Promise<RedactContext> {
  const hostnames = new Set<string>();
  const add = (set: Set<string>, value: string | undefined) => {
    if (value !== undefined && value.trim() !== "") set.add(value.trim());
  };
  try {
    const name = Deno.hostname();
    add(hostnames, name);
    add(hostnames, name.split(".")[0]);
  } catch {
    // No hostname to hide.
  }
  const hostProp = properties["host.hostname"];
  if (hostProp?.status === "ok" && typeof hostProp.value === "string") {
    add(hostnames, hostProp.value);
  }
  const homes = new Set<string>();
  const users = new Set<string>();
  add(homes, Deno.env.get("HOME"));
  add(users, Deno.env.get("USER"));
  add(users, Deno.env.get("LOGNAME"));
  const uid = Deno.uid();
  if (uid !== null) {
    try {
      const line = (await Deno.readTextFile("/etc/passwd")).split("\n").find((l) =>
        l.split(":")[2] === String(uid)
      );
      const fields = line?.split(":");
      add(users, fields?.[0]);
      add(homes, fields?.[5]);
    } catch {
      // No passwd entry: $USER and $HOME are all there is.
    }
  }
  return { hostnames: [...hostnames], homes: [...homes], users: [...users] };
}
