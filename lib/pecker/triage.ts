/**
 * `pecker triage`: builds (or takes) sanitizer variants of the program,
 * replays the trace against each, and turns what fires into ranked findings:
 * the first finding (lowest trace event) is the root cause, the recorded
 * crash is the symptom. Needs only the trace and the builds.
 *
 * @module
 */
import { basename } from "node:path";
import { ConfigError } from "../errors.ts";
import { readTrace, type Trace } from "./trace_file.ts";
import { runReplay } from "./replay.ts";
import {
  parseSanitizerOutput,
  type RawFinding,
  type RawFrame,
  type Severity,
  severityOf,
  type Tool,
} from "./sanitizer_report.ts";
import { symbolize } from "./symbolize.ts";
import { signalName } from "./signals.ts";

/** A symbolized frame. */
export interface Frame {
  readonly function: string | null;
  readonly file: string | null;
  readonly line: number | null;
}

/** One finding of a triage. */
export interface Finding {
  readonly tool: Tool;
  readonly kind: string;
  readonly severity: Severity;
  readonly access: RawFinding["access"];
  /** User frames first (runtime and libc frames dropped). */
  readonly frames: readonly Frame[];
  readonly event: number | null;
  readonly dedup: string;
  readonly variant: string;
  readonly role: "root-cause" | "symptom" | "related";
  readonly headline: string;
  /** The other access of a data race (TSan), user frames first. */
  readonly previous:
    | { readonly access: RawFinding["access"]; readonly frames: readonly Frame[] }
    | null;
}

/** What happened to one variant. */
export interface VariantReport {
  readonly name: string;
  readonly status:
    | "finding"
    | "clean"
    | "diverged"
    | "timeout"
    | "crashed"
    | "build-failed"
    | "unavailable";
  readonly path: string | null;
  readonly detail: string;
  readonly seconds: number;
}

/** Result of a triage. */
export interface TriageReport {
  readonly trace: string;
  readonly exe: string;
  readonly crash: {
    readonly signal: string;
    readonly address: string;
    readonly event: number;
    readonly frames: readonly Frame[];
  } | null;
  readonly variants: readonly VariantReport[];
  readonly findings: readonly Finding[];
}

/** Options of `triageTrace`. */
export interface TriageOptions {
  /** Shell command with {cc}, {cflags} and {out}. */
  readonly build?: string;
  /** Prebuilt binaries by variant name. */
  readonly variants?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  readonly progress?: (message: string) => void;
}

/** A build variant: its flags and whether only clang offers it. */
interface VariantSpec {
  readonly name: string;
  readonly cflags: string;
  readonly gccExtra: string;
  readonly clangOnly: boolean;
}

/** The builds triage makes from --build. */
export const VARIANT_SPECS: readonly VariantSpec[] = [
  {
    name: "asan",
    cflags: "-g -O0 -fno-omit-frame-pointer -fsanitize=address",
    gccExtra: "-static-libasan",
    clangOnly: false,
  },
  {
    name: "ubsan",
    cflags: "-g -O0 -fsanitize=undefined -fno-sanitize-recover=all",
    gccExtra: "-static-libubsan",
    clangOnly: false,
  },
  {
    name: "msan",
    cflags: "-g -O0 -fno-omit-frame-pointer -fsanitize=memory -fsanitize-memory-track-origins",
    gccExtra: "",
    clangOnly: true,
  },
  {
    name: "tsan",
    cflags: "-g -O1 -fsanitize=thread",
    gccExtra: "-static-libtsan",
    clangOnly: false,
  },
  { name: "assert", cflags: "-g -O0 -UNDEBUG", gccExtra: "", clangOnly: false },
];

async function onPath(name: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      if ((await Deno.stat(`${dir}/${name}`)).isFile) return true;
    } catch {
      // not here
    }
  }
  return false;
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

async function buildVariants(
  template: string,
  folder: string,
  progress: (message: string) => void,
): Promise<{ built: Map<string, string>; reports: VariantReport[] }> {
  const clang = await onPath("clang");
  const gcc = await onPath("gcc");
  const built = new Map<string, string>();
  const reports: VariantReport[] = [];
  for (const spec of VARIANT_SPECS) {
    const cc = clang ? "clang" : gcc ? "gcc" : null;
    if (cc === null || (spec.clangOnly && !clang)) {
      const why = cc === null
        ? "no C compiler (clang or gcc) on PATH"
        : `${spec.name} needs clang, which is not installed`;
      reports.push({ name: spec.name, status: "unavailable", path: null, detail: why, seconds: 0 });
      continue;
    }
    const out = `${folder}/${spec.name}`;
    const cflags = cc === "gcc" && spec.gccExtra !== ""
      ? `${spec.cflags} ${spec.gccExtra}`
      : spec.cflags;
    const command = template.replaceAll("{cc}", cc).replaceAll("{cflags}", cflags).replaceAll(
      "{out}",
      shellQuote(out),
    );
    progress(`building ${spec.name}`);
    const started = performance.now();
    const result = await new Deno.Command("sh", {
      args: ["-c", command],
      env: { LD_PRELOAD: "" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const seconds = (performance.now() - started) / 1000;
    if (!result.success) {
      const text = new TextDecoder().decode(result.stderr).trim().split("\n").slice(-1)[0] ?? "";
      reports.push({ name: spec.name, status: "build-failed", path: null, detail: text, seconds });
      continue;
    }
    built.set(spec.name, out);
  }
  return { built, reports };
}

const RUNTIME_FUNCTION =
  /^(__asan|__interceptor|___interceptor|__sanitizer|__tsan|__msan|__ubsan|__lsan)/;

function isUserFrame(frame: Frame): boolean {
  if (frame.function !== null && RUNTIME_FUNCTION.test(frame.function)) return false;
  if (frame.file === null) return false;
  return !frame.file.startsWith("/usr/") &&
    !/compiler-rt|sanitizer_common|\/build\/(glibc|llvm)/.test(frame.file);
}

/** Symbolizes the frames that lie in `exe`, keeping user frames. */
async function symbolizeFrames(raw: readonly RawFrame[], exe: string): Promise<Frame[]> {
  const exeName = basename(exe);
  const ours = raw.filter((frame) =>
    frame.module !== null && frame.offset !== null &&
    (frame.module === exe || basename(frame.module) === exeName)
  );
  // Return addresses point after the call: look up the call itself.
  const offsets = ours.map((frame) => frame.index === 0 ? frame.offset! : frame.offset! - 1n);
  const locations = await symbolize(exe, offsets);
  const byIndex = new Map(ours.map((frame, at) => [frame.index, locations[at]!]));
  const frames: Frame[] = raw.map((frame) => {
    const where = byIndex.get(frame.index);
    return {
      function: frame.function ?? where?.function ?? null,
      file: frame.file ?? where?.file ?? null,
      line: frame.line ?? where?.line ?? null,
    };
  });
  return frames.filter(isUserFrame);
}

/**
 * Stable dedup key: the bug class and the top three user frames (ClusterFuzz).
 *
 * @example
 * ```ts
 * dedupKey("heap-buffer-overflow", [{ function: "main", file: "a.c", line: 3 }]); // "heap-buffer-overflow:main"
 * ```
 */
export function dedupKey(kind: string, frames: readonly Frame[]): string {
  const top = frames.slice(0, 3).map((frame) =>
    frame.function ?? `${basename(frame.file ?? "?")}:${frame.line}`
  );
  return [kind, ...top].join(":");
}

async function crashFrames(trace: Trace): Promise<Frame[]> {
  if (trace.crash === null || trace.exeBase === 0n) return [];
  const offsets = trace.crash.frames.map((address, index) => {
    const offset = address - trace.exeBase;
    return index === 0 ? offset : offset - 1n;
  });
  const inExe = offsets.filter((offset) => offset >= 0n && offset < 1n << 32n);
  try {
    await Deno.stat(trace.exe);
  } catch {
    return [];
  }
  const locations = await symbolize(trace.exe, inExe);
  return locations.filter((location) => isUserFrame(location));
}

async function replayVariant(
  trace: Trace,
  tracePath: string,
  name: string,
  exe: string,
  timeoutMs: number,
): Promise<{ report: VariantReport; findings: Finding[] }> {
  const run = await runReplay(trace, tracePath, { exe, timeoutMs });
  const base = { name, path: exe, seconds: run.seconds };
  if (run.divergence !== null) {
    const detail = `diverged at thread ${run.divergence.thread} event ${run.divergence.event}: ` +
      `expected ${run.divergence.expected}, got ${run.divergence.actual}`;
    return { report: { ...base, status: "diverged", detail }, findings: [] };
  }
  if (run.timedOut) {
    return { report: { ...base, status: "timeout", detail: "replay timed out" }, findings: [] };
  }
  const raw = parseSanitizerOutput(run.stderr);
  const findings: Finding[] = [];
  for (const finding of raw) {
    const frames = await symbolizeFrames(finding.frames, exe);
    const previous = finding.previous === null ? null : {
      access: finding.previous.access,
      frames: await symbolizeFrames(finding.previous.frames, exe),
    };
    findings.push({
      tool: finding.tool,
      kind: finding.kind,
      severity: severityOf(finding.kind, finding.access),
      access: finding.access,
      frames,
      event: finding.event,
      dedup: dedupKey(finding.kind, frames),
      variant: name,
      role: "related",
      headline: finding.headline,
      previous,
    });
  }
  if (findings.length > 0) {
    return {
      report: { ...base, status: "finding", detail: findings.map((f) => f.kind).join(", ") },
      findings,
    };
  }
  if (run.signal !== 0) {
    return {
      report: { ...base, status: "crashed", detail: `killed by ${signalName(run.signal)}` },
      findings,
    };
  }
  return { report: { ...base, status: "clean", detail: `exit code ${run.code}` }, findings };
}

/** Orders findings, merges duplicates, and marks root cause and symptom. */
function rank(findings: Finding[], crash: Finding | null): Finding[] {
  const unique = new Map<string, Finding>();
  for (const finding of findings) {
    const key = `${finding.tool}:${finding.dedup}`;
    if (!unique.has(key)) unique.set(key, finding);
  }
  const ordered = [...unique.values()].sort((a, b) =>
    (a.event ?? Number.MAX_SAFE_INTEGER) - (b.event ?? Number.MAX_SAFE_INTEGER)
  );
  const ranked: Finding[] = ordered.map((finding, index) => ({
    ...finding,
    role: index === 0 ? "root-cause" : "related",
  }));
  if (crash !== null) {
    ranked.push({ ...crash, role: ranked.length === 0 ? "root-cause" : "symptom" });
  }
  return ranked;
}

/**
 * Triages a trace: replays it against sanitizer builds and reports findings.
 *
 * @example
 * ```ts
 * const report = await triageTrace("crash.trace", { build: "{cc} {cflags} -o {out} prog.c" });
 * console.log(report.findings[0]?.kind);
 * ```
 */
export async function triageTrace(
  tracePath: string,
  options: TriageOptions = {},
): Promise<TriageReport> {
  const trace = await readTrace(tracePath);
  const progress = options.progress ?? (() => {});
  const variants = new Map<string, string>(Object.entries(options.variants ?? {}));
  const reports: VariantReport[] = [];
  const folder = await Deno.makeTempDir({ prefix: "reliab-pecker-triage-" });
  try {
    if (options.build !== undefined) {
      const built = await buildVariants(options.build, folder, progress);
      for (const [name, path] of built.built) if (!variants.has(name)) variants.set(name, path);
      reports.push(...built.reports.filter((report) => !variants.has(report.name)));
    }
    const findings: Finding[] = [];
    for (const [name, path] of variants) {
      try {
        await Deno.stat(path);
      } catch {
        throw new ConfigError(`Cannot triage with variant "${name}": no file "${path}"`, {
          code: "variant_missing",
          hint: "pass --variant NAME=PATH with an existing binary",
        });
      }
      progress(`replaying ${name}`);
      const result = await replayVariant(trace, tracePath, name, path, options.timeoutMs ?? 60_000);
      reports.push(result.report);
      findings.push(...result.findings);
    }
    const crashFrameList = await crashFrames(trace);
    const crash = trace.crash === null ? null : {
      signal: signalName(trace.crash.signal),
      address: `0x${trace.crash.address.toString(16)}`,
      event: trace.crash.event,
      frames: crashFrameList,
    };
    const crashFinding: Finding | null = crash === null ? null : {
      tool: "crash",
      kind: crash.signal,
      severity: severityOf(crash.signal, null),
      access: null,
      frames: crash.frames,
      event: crash.event,
      dedup: dedupKey(crash.signal, crash.frames),
      variant: "recorded",
      role: "symptom",
      headline: `${crash.signal} at address ${crash.address} in the recorded run`,
      previous: null,
    };
    return {
      trace: tracePath,
      exe: trace.exe,
      crash,
      variants: reports,
      findings: rank(findings, crashFinding),
    };
  } finally {
    await Deno.remove(folder, { recursive: true }).catch(() => {});
  }
}
