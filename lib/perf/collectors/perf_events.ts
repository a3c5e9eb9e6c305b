/**
 * Which perf counters this process can open: hardware counters (absent in
 * most VMs) and software ones. A counter the kernel says does not exist
 * (no PMU) is a known `false` with the reason beside it; a counter this
 * process may not open (perf_event_paranoid, missing CAP_PERFMON) is unknown,
 * because it might exist.
 *
 * @module
 */
import { known, unknown } from "../schema.ts";
import type { Props } from "./_io.ts";
import { nativePerfProbe, type NativeResult, type ProbeResult } from "./_native.ts";

/** Counters probed. */
export const PERF_COUNTERS = [
  "cycles",
  "instructions",
  "cache-misses",
  "branch-misses",
  "task-clock",
  "page-faults",
  "context-switches",
  "cpu-migrations",
] as const;

/**
 * Properties of one probe result.
 *
 * @example
 * ```ts
 * perfProbeProperties("cycles", { kind: "ok", value: { kind: "unavailable", reason: "no PMU" } });
 * // { "perf_events.cycles.available": known(false, …), "perf_events.cycles.reason": known("no PMU", …) }
 * ```
 */
export function perfProbeProperties(counter: string, result: NativeResult<ProbeResult>): Props {
  const path = `perf_events.${counter.replaceAll("-", "_")}`;
  const source = `perf_event_open:${counter}`;
  if (result.kind === "error") return { [`${path}.available`]: unknown(source, result.reason) };
  const probe = result.value;
  if (probe.kind === "ok") return { [`${path}.available`]: known(true, source) };
  if (/permission|EACCES|EPERM|paranoid|CAP_PERFMON/i.test(probe.reason)) {
    return { [`${path}.available`]: unknown(source, probe.reason) };
  }
  return {
    [`${path}.available`]: known(false, source),
    [`${path}.reason`]: known(probe.reason, source),
  };
}

/**
 * Perf counter properties.
 *
 * @example
 * ```ts
 * (await collectPerfEvents())["perf_events.task_clock.available"]; // known(true, …)
 * ```
 */
export async function collectPerfEvents(): Promise<Props> {
  const results = await Promise.all(PERF_COUNTERS.map((c) => nativePerfProbe(c)));
  const props: Props = {};
  PERF_COUNTERS.forEach((c, i) => Object.assign(props, perfProbeProperties(c, results[i]!)));
  return props;
}
