/**
 * Text output of `reliab perf diff`, `check` and `show`: one line per
 * difference in a fixed shape people and grep can both read, and snapshots
 * grouped by area with aligned values.
 *
 * @module
 */
import type { Json, Property, Snapshot } from "./schema.ts";
import type { Difference, PropertyState } from "./diff.ts";
import { SEVERITIES, type Severity } from "./rules.ts";

/** Options of the text renderers. */
export interface TextOptions {
  /** Use ANSI colours. */
  readonly color?: boolean;
  /** Diff only: list info differences too instead of counting them. */
  readonly all?: boolean;
}

const COLORS: Record<Severity, string> = {
  critical: "\x1b[1;31m",
  major: "\x1b[31m",
  minor: "\x1b[33m",
  info: "\x1b[2m",
};
const RESET = "\x1b[0m";
const DIM = "\x1b[2m";
const BOLD = "\x1b[1m";

/**
 * A value for people: numeric CPU lists as ranges (`0-3,6`), string lists
 * space-separated, measurements as `median unit ±cv`, other objects as JSON.
 *
 * @example
 * ```ts
 * formatValue([0, 1, 2, 3, 6]); // "0-3,6"
 * formatValue({ median: 1.5, unit: "ns", cv: 0.02, runs: 9 }); // "1.5 ns ±2.0% (9 runs)"
 * ```
 */
export function formatValue(value: Json | undefined): string {
  if (value === undefined) return "absent";
  if (value === null) return "null";
  if (typeof value === "string") return value === "" ? '""' : value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return "(none)";
    if (value.every((v) => typeof v === "number" && Number.isInteger(v) && v >= 0)) {
      return ranges(value as number[]);
    }
    return value.map((v) => typeof v === "string" ? v : JSON.stringify(v)).join(" ");
  }
  const record = value as { readonly [k: string]: Json };
  if (typeof record.median === "number" && typeof record.unit === "string") {
    const cv = typeof record.cv === "number" ? ` ±${(100 * record.cv).toFixed(1)}%` : "";
    const runs = typeof record.runs === "number" ? ` (${record.runs} runs)` : "";
    return `${Number(record.median.toPrecision(4))} ${record.unit}${cv}${runs}`;
  }
  return JSON.stringify(value);
}

/** `[0,1,2,3,6]` → `0-3,6`, in the order given when not sorted. */
function ranges(numbers: readonly number[]): string {
  const sorted = [...numbers].sort((a, b) => a - b);
  const parts: string[] = [];
  let start = sorted[0]!;
  let end = start;
  for (const n of [...sorted.slice(1), NaN]) {
    if (n === end + 1) {
      end = n;
      continue;
    }
    parts.push(
      start === end ? `${start}` : end === start + 1 ? `${start},${end}` : `${start}-${end}`,
    );
    start = end = n;
  }
  return parts.join(",");
}

/**
 * One side of a difference for people: the value, "unknown (reason)" or
 * "absent".
 *
 * @example
 * ```ts
 * formatSide(undefined, "unknown", "needs root"); // "unknown (needs root)"
 * ```
 */
export function formatSide(
  value: Json | undefined,
  status: PropertyState,
  reason?: string,
): string {
  if (status === "unknown") return `unknown (${reason ?? "no reason given"})`;
  if (status === "missing") return "absent";
  return formatValue(value);
}

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, " ");
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** Counts per severity, most severe first. */
export function countBySeverity(differences: readonly Difference[]): Record<Severity, number> {
  const counts: Record<Severity, number> = { critical: 0, major: 0, minor: 0, info: 0 };
  for (const d of differences) counts[d.severity]++;
  return counts;
}

/**
 * Differences as text, grouped by severity, one line each:
 * `SEVERITY path: baseline → current — why (affects X). advice`. Info
 * differences are only counted unless `all`.
 *
 * @example
 * ```ts
 * console.log(renderDiffText(diffSnapshots(a, b), { color: false, all: false }));
 * ```
 */
export function renderDiffText(
  differences: readonly Difference[],
  options: TextOptions = {},
): string {
  if (differences.length === 0) return "no differences";
  const paint = (severity: Severity, text: string) =>
    options.color ? `${COLORS[severity]}${text}${RESET}` : text;
  const counts = countBySeverity(differences);
  const lines = [
    `differences: ${SEVERITIES.map((s) => `${counts[s]} ${s}`).join(", ")}`,
  ];
  const width = Math.max(
    ...SEVERITIES.filter((s) => counts[s] > 0 && (options.all || s !== "info")).map((s) =>
      s.length
    ),
    0,
  );
  for (const severity of SEVERITIES) {
    const group = differences.filter((d) => d.severity === severity);
    if (group.length === 0) continue;
    if (severity === "info" && !options.all) {
      lines.push(
        "",
        paint("info", `${group.length} info difference(s) not shown (--all lists them)`),
      );
      continue;
    }
    lines.push("");
    for (const d of group) {
      const label = paint(severity, severity.toUpperCase().padEnd(width));
      const long = isLongSet(d);
      const from = long
        ? `${(d.baseline as Json[]).length} items`
        : clip(formatSide(d.baseline, d.baselineStatus, d.baselineReason), 60);
      const to = long
        ? `${(d.current as Json[]).length} items`
        : clip(formatSide(d.current, d.currentStatus, d.currentReason), 60);
      const path = options.color ? `${BOLD}${d.path}${RESET}` : d.path;
      const redacted = d.redacted ? " [redacted]" : "";
      lines.push(
        `${label} ${path}${redacted}: ${from} → ${to} — ${d.why} (affects ${d.affects}). ${
          capitalize(d.advice)
        }`,
      );
    }
  }
  return lines.join("\n");
}

/**
 * Whether a set difference is between lists too long to print whole; then
 * renderers show item counts and the missing and extra elements instead.
 *
 * @example
 * ```ts
 * if (isLongSet(d)) console.log(d.removed, d.added);
 * ```
 */
export function isLongSet(d: Difference, max = 8): boolean {
  const changed = (d.added?.length ?? 0) + (d.removed?.length ?? 0) > 0;
  return changed && Array.isArray(d.baseline) && Array.isArray(d.current) &&
    (d.baseline.length > max || d.current.length > max);
}

function capitalize(text: string): string {
  return text.length > 0 ? text[0]!.toUpperCase() + text.slice(1) : text;
}

/**
 * A snapshot for people: a header (created, tool, hash, redaction) and the
 * properties grouped by their first path segment, aligned; unknown values
 * read "unknown (reason)", redacted ones are marked.
 *
 * @example
 * ```ts
 * console.log(renderSnapshotText(snapshot, { color: false }));
 * ```
 */
export function renderSnapshotText(snapshot: Snapshot, options: TextOptions = {}): string {
  const dim = (text: string) => options.color ? `${DIM}${text}${RESET}` : text;
  const bold = (text: string) => options.color ? `${BOLD}${text}${RESET}` : text;
  const entries = Object.entries(snapshot.properties).sort(([a], [b]) => (a < b ? -1 : 1));
  const unknown = entries.filter(([, p]) => p.status === "unknown").length;
  const redacted = entries.filter(([, p]) => p.status === "ok" && p.redacted).length;
  const lines = [
    bold("reliab perf snapshot"),
    `  created     ${snapshot.created}`,
    `  tool        ${snapshot.tool.name} ${snapshot.tool.version}`,
    `  hash        ${snapshot.hash}`,
    `  redaction   ${
      snapshot.redaction.enabled ? `on (key ${snapshot.redaction.key_id ?? "none"})` : "off"
    }`,
    `  properties  ${entries.length} (${unknown} unknown, ${redacted} redacted)`,
  ];
  const groups = new Map<string, [string, Property][]>();
  for (const [path, property] of entries) {
    const dot = path.indexOf(".");
    const group = dot < 0 ? path : path.slice(0, dot);
    const rest = dot < 0 ? "" : path.slice(dot + 1);
    groups.set(group, [...(groups.get(group) ?? []), [rest, property]]);
  }
  for (const [group, members] of groups) {
    lines.push("", bold(group));
    const width = Math.min(36, Math.max(...members.map(([name]) => name.length)));
    for (const [name, property] of members) {
      const label = `  ${name.padEnd(width)}  `;
      const text = property.status === "unknown"
        ? dim(`unknown (${property.reason})`)
        : formatValue(property.value) + (property.redacted ? dim(" (redacted)") : "");
      lines.push(...wrap(label, text, 100));
    }
  }
  return lines.join("\n");
}

/** Wraps long space-separated values under their column. */
function wrap(label: string, text: string, width: number): string[] {
  if (label.length + text.length <= width || !text.includes(" ")) return [label + text];
  const indent = " ".repeat(label.length);
  const lines: string[] = [];
  let line = label;
  let words = 0;
  for (const word of text.split(" ")) {
    if (words > 0 && line.length + word.length + 1 > width) {
      lines.push(line);
      line = indent;
      words = 0;
    }
    line += (words > 0 ? " " : "") + word;
    words++;
  }
  lines.push(line);
  return lines;
}
