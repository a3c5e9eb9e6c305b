/**
 * reliab: high availability for TCP network functions (`ha`), automatic bug
 * triage (`pecker`) and reproducible execution (`perf`). This module is the
 * public API; it re-exports each area's `mod.ts` only.
 *
 * @module
 */
export * from "./lib/errors.ts";
export * from "./lib/perf/mod.ts";
