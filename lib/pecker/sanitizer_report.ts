/**
 * Parses sanitizer output (ASan, UBSan, TSan, MSan) and glibc assertion
 * failures into findings. The text is untrusted program output: parsing never
 * throws, unknown lines are skipped. Frames stay unsymbolized here (reports
 * are produced with symbolize=0, so that the sanitizer never spawns
 * llvm-symbolizer under the preload); symbolize.ts fills them in offline.
 *
 * @module
 */

/** Which checker produced a finding. */
export type Tool = "asan" | "ubsan" | "tsan" | "msan" | "assert" | "crash";

/** One stack frame: module+offset from the report, source from symbolization. */
export interface RawFrame {
  readonly index: number;
  readonly module: string | null;
  readonly offset: bigint | null;
  readonly function: string | null;
  readonly file: string | null;
  readonly line: number | null;
}

/** A finding as the report states it, before symbolization and ranking. */
export interface RawFinding {
  readonly tool: Tool;
  /** The sanitizer's own bug type: heap-buffer-overflow, signed-integer-overflow, … */
  readonly kind: string;
  readonly access: { readonly type: "read" | "write"; readonly size: number | null } | null;
  readonly frames: readonly RawFrame[];
  /** The report's first line, for text output. */
  readonly headline: string;
  /** Trace event the replay had reached when the report fired. */
  readonly event: number | null;
  /** The other access of a race (TSan's "Previous write ..." stack). */
  readonly previous: {
    readonly access: RawFinding["access"];
    readonly frames: readonly RawFrame[];
  } | null;
}

const FRAME = /^\s*#(\d+)\s+(.*)$/;
const MODULE_OFFSET = /\(([^()\s]+)\+0x([0-9a-fA-F]+)\)/;
const SYMBOLIZED = /\bin (\S+) (\S+?):(\d+)(?::\d+)?\s*$/;
const POSITION = /==reliab-pecker== replay position: event (\d+)/;

function parseFrame(line: string): RawFrame | null {
  const match = FRAME.exec(line);
  if (match === null) return null;
  const rest = match[2] ?? "";
  const moduleMatch = MODULE_OFFSET.exec(rest);
  const symbolized = SYMBOLIZED.exec(rest);
  return {
    index: Number(match[1]),
    module: moduleMatch?.[1] ?? null,
    offset: moduleMatch?.[2] === undefined ? null : BigInt(`0x${moduleMatch[2]}`),
    function: symbolized?.[1] ?? null,
    file: symbolized?.[2] ?? null,
    line: symbolized?.[3] === undefined ? null : Number(symbolized[3]),
  };
}

/** Frames of the first stack at or after `start` (ends at the first non-frame line after one). */
function firstStack(lines: readonly string[], start: number): RawFrame[] {
  const frames: RawFrame[] = [];
  for (let at = start; at < lines.length; at++) {
    const frame = parseFrame(lines[at] ?? "");
    if (frame !== null) frames.push(frame);
    else if (frames.length > 0) break;
  }
  return frames;
}

function accessOf(lines: readonly string[], start: number): RawFinding["access"] {
  for (let at = start; at < Math.min(lines.length, start + 6); at++) {
    const line = lines[at] ?? "";
    const sized =
      /^\s*(READ|WRITE|Read|Write|Previous write|Previous read|Atomic write|Atomic read) of size (\d+)/
        .exec(line);
    if (sized !== null) {
      const type = /write/i.test(sized[1] ?? "") ? "write" : "read";
      return { type, size: Number(sized[2]) };
    }
    const caused = /The signal is caused by a (READ|WRITE) memory access/.exec(line);
    if (caused !== null) return { type: caused[1] === "WRITE" ? "write" : "read", size: null };
  }
  return null;
}

/** TSan's second stack: the earlier access the report races against. */
function previousAccess(lines: readonly string[], start: number): RawFinding["previous"] {
  for (let at = start; at < lines.length; at++) {
    const line = lines[at] ?? "";
    if (/^(=+|SUMMARY:.*|WARNING: ThreadSanitizer:.*)$/.test(line)) break;
    const match = /^\s*Previous (?:atomic )?(read|write) of size (\d+)/.exec(line);
    if (match !== null) {
      return {
        access: { type: match[1] === "write" ? "write" : "read", size: Number(match[2]) },
        frames: firstStack(lines, at + 1),
      };
    }
  }
  return null;
}

function asanKind(text: string): string {
  if (text.startsWith("attempting double-free")) return "double-free";
  if (text.startsWith("attempting free on address which was not malloc")) return "bad-free";
  return (text.split(/\s+/)[0] ?? "unknown").replace(/:$/, "");
}

/** UBSan's message to a stable kind (its check names, as -fsanitize= spells them). */
export function ubsanKind(message: string): string {
  const table: ReadonlyArray<readonly [RegExp, string]> = [
    [/^signed integer overflow/, "signed-integer-overflow"],
    [/^unsigned integer overflow/, "unsigned-integer-overflow"],
    [/^index .* out of bounds/, "index-out-of-bounds"],
    [/^shift exponent|^left shift/, "shift"],
    [/^division by zero/, "division-by-zero"],
    [/null pointer/, "null-pointer-dereference"],
    [/misaligned address/, "misaligned-pointer"],
    [/^load of value .* not a valid value/, "invalid-value-load"],
    [/^negation of/, "signed-integer-overflow"],
    [/^execution reached an unreachable/, "unreachable"],
    [/^pointer index expression/, "pointer-overflow"],
  ];
  for (const [pattern, kind] of table) if (pattern.test(message)) return kind;
  return message.split(":")[0]?.trim().toLowerCase().replaceAll(/\s+/g, "-") ||
    "undefined-behavior";
}

const TOOL_OF: Readonly<Record<string, Tool>> = {
  AddressSanitizer: "asan",
  UndefinedBehaviorSanitizer: "ubsan",
  MemorySanitizer: "msan",
  ThreadSanitizer: "tsan",
};

/**
 * Parses one process's stderr into the findings it reports, in order.
 *
 * @example
 * ```ts
 * const findings = parseSanitizerOutput(stderrText);
 * console.log(findings[0]?.kind); // "heap-buffer-overflow"
 * ```
 */
export function parseSanitizerOutput(text: string): RawFinding[] {
  const lines = text.split("\n");
  const positionMatch = POSITION.exec(text);
  const event = positionMatch === null ? null : Number(positionMatch[1]);
  const findings: RawFinding[] = [];
  for (let at = 0; at < lines.length; at++) {
    const line = lines[at] ?? "";
    const header =
      /==\d+==(?:ERROR|WARNING): (AddressSanitizer|MemorySanitizer|UndefinedBehaviorSanitizer): (.+)$/
        .exec(line);
    if (header !== null) {
      const tool = TOOL_OF[header[1] ?? ""] ?? "asan";
      const body = header[2] ?? "";
      findings.push({
        tool,
        kind: asanKind(body),
        access: accessOf(lines, at + 1),
        frames: firstStack(lines, at + 1),
        headline: line.replace(/^==\d+==/, ""),
        event,
        previous: null,
      });
      continue;
    }
    const tsan = /^WARNING: ThreadSanitizer: (.+?)(?: \(pid=\d+\))?$/.exec(line);
    if (tsan !== null) {
      findings.push({
        tool: "tsan",
        kind: tsan[1] ?? "unknown",
        access: accessOf(lines, at + 1),
        frames: firstStack(lines, at + 1),
        headline: line,
        event,
        previous: previousAccess(lines, at + 1),
      });
      continue;
    }
    const ubsan = /^(.+?):(\d+):(\d+): runtime error: (.+)$/.exec(line);
    if (ubsan !== null) {
      const stack = firstStack(lines, at + 1);
      const location: RawFrame = {
        index: 0,
        module: stack[0]?.module ?? null,
        offset: stack[0]?.offset ?? null,
        function: stack[0]?.function ?? null,
        file: ubsan[1] ?? null,
        line: Number(ubsan[2]),
      };
      findings.push({
        tool: "ubsan",
        kind: ubsanKind(ubsan[4] ?? ""),
        access: null,
        frames: [location, ...stack.slice(1)],
        headline: `UndefinedBehaviorSanitizer: ${ubsan[4]}`,
        event,
        previous: null,
      });
      continue;
    }
    const assertion = /^(.+?): (.+?):(\d+): (.+?): Assertion `(.*)' failed\.$/.exec(line);
    if (assertion !== null) {
      const functionName = (assertion[4] ?? "").replace(/^.*?\b(\w+)\s*\(.*$/, "$1");
      findings.push({
        tool: "assert",
        kind: "assertion-failure",
        access: null,
        frames: [{
          index: 0,
          module: null,
          offset: null,
          function: functionName,
          file: assertion[2] ?? null,
          line: Number(assertion[3]),
        }],
        headline: `Assertion \`${assertion[5]}' failed`,
        event,
        previous: null,
      });
    }
  }
  return findings;
}

/** CASR-style exploitability classes. */
export type Severity = "EXPLOITABLE" | "PROBABLY_EXPLOITABLE" | "NOT_EXPLOITABLE";

/**
 * Severity of a finding, in the spirit of CASR: writes out of bounds and
 * use-after-free are exploitable, reads probably, the rest not.
 *
 * @example
 * ```ts
 * severityOf("heap-buffer-overflow", { type: "write", size: 4 }); // "EXPLOITABLE"
 * ```
 */
export function severityOf(kind: string, access: RawFinding["access"]): Severity {
  const memory = /overflow$|underflow$|use-after|double-free|bad-free|stack-use/.test(kind) &&
    !/integer-overflow/.test(kind);
  if (memory) {
    if (/use-after|double-free|bad-free/.test(kind)) return "EXPLOITABLE";
    return access?.type === "read" ? "PROBABLY_EXPLOITABLE" : "EXPLOITABLE";
  }
  if (kind === "SEGV" || kind === "SIGSEGV" || kind === "SIGBUS") {
    return access?.type === "write" ? "PROBABLY_EXPLOITABLE" : "NOT_EXPLOITABLE";
  }
  if (kind === "use-of-uninitialized-value") return "PROBABLY_EXPLOITABLE";
  return "NOT_EXPLOITABLE";
}
