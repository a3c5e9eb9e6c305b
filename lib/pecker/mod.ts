/**
 * `reliab pecker`: record a program cheaply, replay the trace under
 * sanitizer builds, triage what fires.
 *
 * @module
 */
export {
  describeCall,
  encodeExitEvent,
  EVENT_KINDS,
  finishTrace,
  parseTrace,
  readTrace,
  type Trace,
  type TraceCrash,
  type TraceEvent,
} from "./trace_file.ts";
export { type RecordOptions, recordProgram, type RecordResult } from "./record.ts";
export { type DumpOptions, dumpTrace, tracePathOf } from "./dump.ts";
export {
  type Divergence,
  parseDivergence,
  recordedOutcome,
  type ReplayOptions,
  type ReplayResult,
  type ReplayRun,
  replayTrace,
  runReplay,
} from "./replay.ts";
export {
  dedupKey,
  type Finding,
  type Frame,
  type TriageOptions,
  type TriageReport,
  triageTrace,
  VARIANT_SPECS,
  type VariantReport,
} from "./triage.ts";
export {
  parseSanitizerOutput,
  type RawFinding,
  type Severity,
  severityOf,
} from "./sanitizer_report.ts";
export { toSarif } from "./sarif.ts";
export { renderTriageText } from "./render_text.ts";
