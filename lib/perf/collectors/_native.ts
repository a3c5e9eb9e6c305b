/**
 * The native wrappers the collectors use beyond CPUID (`schedAffinity`,
 * `perfCounterProbe`, `msrRead`), looked up by name in lib/native.ts so a
 * snapshot still works — with those properties unknown and the reason —
 * when the loaded build lacks one, or when libreliab cannot be loaded at all.
 *
 * @module
 */
import * as nativeModule from "../../native.ts";
import { messageOf } from "./_io.ts";

/** What a counter or MSR probe returns. */
export type ProbeResult =
  | { readonly kind: "ok"; readonly value: bigint }
  | { readonly kind: "unavailable"; readonly reason: string };

/** A native call's result, or why it could not be made. */
export type NativeResult<T> =
  | { readonly kind: "ok"; readonly value: T }
  | { readonly kind: "error"; readonly reason: string };

async function callAsync<T>(name: string, args: readonly unknown[]): Promise<NativeResult<T>> {
  const r = call<unknown>(name, args);
  if (r.kind === "error") return r;
  try {
    // A wrapper may be nonblocking (returns a promise) or synchronous.
    return { kind: "ok", value: (await r.value) as T };
  } catch (error) {
    return { kind: "error", reason: `libreliab ${name} failed: ${messageOf(error)}` };
  }
}

function call<T>(name: string, args: readonly unknown[]): NativeResult<T> {
  const fn = (nativeModule as Record<string, unknown>)[name];
  if (typeof fn !== "function") {
    return { kind: "error", reason: `this reliab build has no native ${name} wrapper` };
  }
  try {
    return { kind: "ok", value: fn(...args) as T };
  } catch (error) {
    return { kind: "error", reason: `libreliab ${name} failed: ${messageOf(error)}` };
  }
}

/**
 * The CPUs this process may run on (`sched_getaffinity`).
 *
 * @example
 * ```ts
 * const r = nativeAffinity(); // { kind: "ok", value: [0, 1] }
 * ```
 */
export function nativeAffinity(): NativeResult<number[]> {
  const r = call<unknown>("schedAffinity", []);
  if (r.kind === "error") return r;
  return Array.isArray(r.value) && r.value.every((n) => Number.isInteger(n))
    ? { kind: "ok", value: [...(r.value as number[])].sort((a, b) => a - b) }
    : { kind: "error", reason: "schedAffinity returned something other than a CPU list" };
}

/**
 * Opens, runs and reads one perf counter (`cycles`, `task-clock`, …).
 *
 * @example
 * ```ts
 * await nativePerfProbe("task-clock"); // { kind: "ok", value: { kind: "ok", value: 12345n } }
 * ```
 */
export async function nativePerfProbe(kind: string): Promise<NativeResult<ProbeResult>> {
  return await callAsync<ProbeResult>("perfCounterProbe", [kind]);
}

/**
 * Reads one MSR on one CPU.
 *
 * @example
 * ```ts
 * await nativeMsrRead(0, 0x1a0); // { kind: "ok", value: { kind: "unavailable", reason: "…" } }
 * ```
 */
export async function nativeMsrRead(
  cpu: number,
  register: number,
): Promise<NativeResult<ProbeResult>> {
  return await callAsync<ProbeResult>("msrRead", [cpu, register]);
}
