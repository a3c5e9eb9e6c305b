/**
 * Calibration micro-benchmarks: how fast this host really is, with a noise
 * estimate. Each native call runs one repetition of one measurement
 * (native/src/perf/calibrate.zig); this module repeats it and keeps the
 * median and the coefficient of variation, so a comparison can widen its
 * tolerance by the measured noise instead of trusting a single number.
 *
 * About 1.5–2 s in all on a 2-core KVM guest, most of it page-faulting the
 * fresh 64 MiB buffer of each memory repetition.
 *
 * @module
 */
import { calibrateRun, type CalibrationKind, NativeStatusError } from "../native.ts";
import type { Measurement } from "./schema.ts";

/** One calibration: its snapshot key, native kind, unit and repetitions. */
interface CalibrationSpec {
  readonly key: string;
  readonly kind: CalibrationKind;
  readonly unit: string;
  readonly runs: number;
  /** Untimed repetitions first (the clock needs the core to leave idle). */
  readonly warmups: number;
}

/**
 * What `calibrate()` measures. The memory kinds take ~80–120 ms a
 * repetition, so they get fewer runs than the 2–10 ms kinds; seven still
 * give a median and a usable spread.
 */
export const CALIBRATIONS: readonly CalibrationSpec[] = [
  { key: "calibration.effective_clock_ghz", kind: "clock", unit: "GHz", runs: 10, warmups: 2 },
  {
    key: "calibration.memory_latency_ns",
    kind: "memory_latency",
    unit: "ns",
    runs: 7,
    warmups: 0,
  },
  {
    key: "calibration.memory_bandwidth_gbps",
    kind: "memory_bandwidth",
    unit: "GB/s",
    runs: 7,
    warmups: 0,
  },
  { key: "calibration.syscall_ns", kind: "syscall", unit: "ns", runs: 10, warmups: 1 },
  {
    key: "calibration.timer_resolution_ns",
    kind: "timer_resolution",
    unit: "ns",
    runs: 10,
    warmups: 1,
  },
];

/**
 * Median and coefficient of variation (sample standard deviation / mean) of
 * repeated measurements. One sample has a cv of 0.
 *
 * @example
 * ```ts
 * summarize([10, 12, 11]); // { median: 11, cv: 0.0909… }
 * ```
 */
export function summarize(samples: readonly number[]): { median: number; cv: number } {
  if (samples.length === 0) throw new RangeError("Cannot summarize no samples");
  if (!samples.every(Number.isFinite)) {
    throw new RangeError(`Cannot summarize non-finite samples: "${samples.join(", ")}"`);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const mean = sorted.reduce((sum, x) => sum + x, 0) / sorted.length;
  if (sorted.length === 1 || mean === 0) return { median, cv: 0 };
  const variance = sorted.reduce((sum, x) => sum + (x - mean) ** 2, 0) / (sorted.length - 1);
  return { median, cv: Math.sqrt(variance) / Math.abs(mean) };
}

/**
 * Runs every calibration and returns one `Measurement` per key
 * (`calibration.effective_clock_ghz`, `calibration.memory_latency_ns`,
 * `calibration.memory_bandwidth_gbps`, `calibration.syscall_ns`,
 * `calibration.timer_resolution_ns`). A kind this machine cannot run (the
 * clock chain on a non-x86 CPU) is left out and reported to `onProgress`.
 * Run it with nothing else busy: other load shows up as a large cv.
 *
 * @example
 * ```ts
 * const m = await calibrate((message) => console.error(message));
 * m["calibration.syscall_ns"]; // { median: 163.2, unit: "ns", cv: 0.04, runs: 10 }
 * ```
 */
export async function calibrate(
  onProgress?: (message: string) => void,
): Promise<Record<string, Measurement>> {
  const result: Record<string, Measurement> = {};
  for (const spec of CALIBRATIONS) {
    onProgress?.(`calibrating ${spec.kind.replaceAll("_", " ")} (${spec.runs} runs)`);
    let samples: number[];
    try {
      samples = await repeat(spec);
    } catch (error) {
      if (error instanceof NativeStatusError && error.status === "not_supported") {
        onProgress?.(`skipped ${spec.kind.replaceAll("_", " ")}: ${error.message}`);
        continue;
      }
      throw error;
    }
    const { median, cv } = summarize(samples);
    result[spec.key] = { median, unit: spec.unit, cv, runs: samples.length };
  }
  return result;
}

async function repeat(spec: CalibrationSpec): Promise<number[]> {
  for (let i = 0; i < spec.warmups; i++) await calibrateRun(spec.kind);
  const samples: number[] = [];
  // Sequential on purpose: two repetitions at once would compete for the
  // cores and the memory bus they are measuring.
  for (let i = 0; i < spec.runs; i++) samples.push(await calibrateRun(spec.kind));
  return samples;
}
