/**
 * Compares two snapshots property by property with the rule table in
 * `rules.ts` and returns ranked, explained differences.
 *
 * A property that is unknown on either side is never compared as if it were
 * "off": the difference is info, "cannot compare: <reason>". Redacted values
 * compare only when both snapshots used the same redaction key.
 *
 * @module
 */
import type { Json, Property, Snapshot } from "./schema.ts";
import {
  type Change,
  type Rule,
  ruleFor,
  type RuleKind,
  SEVERITIES,
  type Severity,
  type SeverityOf,
} from "./rules.ts";

export { SEVERITIES, type Severity } from "./rules.ts";

/** How a property appears in one snapshot. */
export type PropertyState = "ok" | "unknown" | "missing";

/** One ranked, explained difference between two snapshots. */
export interface Difference {
  readonly path: string;
  /** Baseline value; undefined when unknown or missing (see `baselineStatus`). */
  readonly baseline: Json | undefined;
  readonly current: Json | undefined;
  readonly baselineStatus: PropertyState;
  readonly currentStatus: PropertyState;
  /** Why the baseline value is unknown. */
  readonly baselineReason?: string;
  readonly currentReason?: string;
  /** The value is a keyed hash (`--no-redact` was not given). */
  readonly redacted?: true;
  readonly severity: Severity;
  /** One line: what changed and why it matters. */
  readonly why: string;
  /** The kind of workload affected ("CPU-bound", "multithreaded", "all", …). */
  readonly affects: string;
  /** One line: what to do. */
  readonly advice: string;
  /** The kind of rule that matched. */
  readonly rule: RuleKind;
  /** The pattern of the rule that matched. */
  readonly pattern: string;
  /** Set rules: elements only in the current value. */
  readonly added?: readonly Json[];
  /** Set rules: elements only in the baseline value. */
  readonly removed?: readonly Json[];
}

/**
 * Whether a value is a severity name.
 *
 * @example
 * ```ts
 * isSeverity("major"); // true
 * isSeverity("high"); // false
 * ```
 */
export function isSeverity(value: unknown): value is Severity {
  return typeof value === "string" && (SEVERITIES as readonly string[]).includes(value);
}

/**
 * Whether `severity` is at least as severe as `level`.
 *
 * @example
 * ```ts
 * atOrAbove("critical", "major"); // true
 * atOrAbove("minor", "major"); // false
 * ```
 */
export function atOrAbove(severity: Severity, level: Severity): boolean {
  return SEVERITIES.indexOf(severity) <= SEVERITIES.indexOf(level);
}

/**
 * Differences between two snapshots, most severe first, then by path. Equal
 * properties and changes within tolerance are left out.
 *
 * @example
 * ```ts
 * const differences = diffSnapshots(baseline, current);
 * const gate = differences.some((d) => atOrAbove(d.severity, "major"));
 * ```
 */
export function diffSnapshots(baseline: Snapshot, current: Snapshot): Difference[] {
  const paths = new Set([...Object.keys(baseline.properties), ...Object.keys(current.properties)]);
  const differences: Difference[] = [];
  for (const path of paths) {
    const difference = compareProperty(path, baseline, current);
    if (difference !== undefined) differences.push(difference);
  }
  return differences.sort((a, b) =>
    SEVERITIES.indexOf(a.severity) - SEVERITIES.indexOf(b.severity) ||
    (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
  );
}

interface Outcome {
  readonly severity: Severity;
  readonly detail?: string;
  readonly added?: readonly Json[];
  readonly removed?: readonly Json[];
}

function compareProperty(
  path: string,
  baseline: Snapshot,
  current: Snapshot,
): Difference | undefined {
  const rule = ruleFor(path);
  const b = baseline.properties[path];
  const c = current.properties[path];
  const base = {
    path,
    ...side("baseline", b),
    ...side("current", c),
    affects: rule.affects,
    advice: rule.advice,
    rule: rule.kind,
    pattern: rule.pattern,
  };
  const info = (why: string, advice = rule.advice): Difference => ({
    ...base,
    severity: "info",
    why,
    advice,
  });

  // Absence: for env-like rules it means "not set", otherwise "not recorded".
  const bValue = valueOf(b, rule);
  const cValue = valueOf(c, rule);
  if (bValue === undefined || cValue === undefined) {
    if (b?.status === "unknown" && c?.status === "unknown") {
      if (b.reason === c.reason) return undefined;
      return info(`cannot compare: unknown in both (${b.reason}; ${c.reason})`);
    }
    if (b?.status === "unknown" || c?.status === "unknown") {
      const which = b?.status === "unknown" ? "baseline" : "current";
      const reason = b?.status === "unknown" ? b.reason : (c as { reason: string }).reason;
      return info(
        `cannot compare: unknown in ${which}: ${reason}`,
        "re-take that snapshot with the access it lacked (often root) to compare this property",
      );
    }
    if (b === undefined && c === undefined) return undefined;
    const which = b === undefined ? "baseline" : "current";
    return info(
      `cannot compare: not recorded in the ${which} snapshot (another reliab version or collector)`,
      "take both snapshots with the same reliab version to compare this property",
    );
  }

  const redacted = b?.status === "ok" && b.redacted === true ||
    c?.status === "ok" && c.redacted === true;
  if (redacted) {
    const both = b?.status === "ok" && b.redacted === true && c?.status === "ok" &&
      c.redacted === true;
    const sameKey = baseline.redaction.key_id !== null &&
      baseline.redaction.key_id === current.redaction.key_id;
    if (!both) {
      if (canonical(bValue) === canonical(cValue)) return undefined;
      return { ...info("cannot compare: redacted in one snapshot only"), redacted: true };
    }
    if (!sameKey) {
      return {
        ...info("cannot compare: redacted with different keys"),
        redacted: true,
        advice: "take both snapshots with the same redaction key, or with --no-redact",
      };
    }
  }

  const outcome = compareValues(rule, {
    baseline: bValue,
    current: cValue,
    snapshots: { baseline, current },
  });
  if (outcome === undefined) return undefined;
  return {
    ...base,
    ...(redacted ? { redacted: true as const } : {}),
    ...(outcome.added !== undefined ? { added: outcome.added } : {}),
    ...(outcome.removed !== undefined ? { removed: outcome.removed } : {}),
    severity: outcome.severity,
    why: outcome.detail ? `${outcome.detail}: ${rule.why}` : rule.why,
  };
}

/** The status, value and reason fields of one side of a difference. */
function side(name: "baseline" | "current", property: Property | undefined) {
  const status: PropertyState = property?.status ?? "missing";
  return {
    [name]: property?.status === "ok" ? property.value : undefined,
    [`${name}Status`]: status,
    ...(property?.status === "unknown" ? { [`${name}Reason`]: property.reason } : {}),
  } as
    & { baseline: Json | undefined; baselineStatus: PropertyState; baselineReason?: string }
    & { current: Json | undefined; currentStatus: PropertyState; currentReason?: string };
}

/** The value to compare, or undefined when there is none to compare. */
function valueOf(property: Property | undefined, rule: Rule): Json | undefined {
  if (property === undefined) return rule.absentIsValue ? null : undefined;
  if (property.status !== "ok") return undefined;
  return rule.normalize ? rule.normalize(property.value) : property.value;
}

function resolve(severity: SeverityOf, change: Change): Severity {
  return typeof severity === "function" ? severity(change) : severity;
}

/** Compares two known values under a rule; undefined when they count as equal. */
function compareValues(rule: Rule, change: Change): Outcome | undefined {
  switch (rule.kind) {
    case "ignore":
      return equal(change.baseline, change.current) ? undefined : { severity: "info" };
    case "exact":
      return compareExact(rule.severity, change);
    case "tolerance":
      return compareTolerance(rule, change);
    case "set":
      return compareSet(rule, change);
    case "version":
      return compareVersion(rule, change);
  }
}

function compareExact(severity: SeverityOf, change: Change): Outcome | undefined {
  const { baseline, current } = change;
  if (equal(baseline, current)) return undefined;
  if (baseline === null) return { severity: resolve(severity, change), detail: "now set" };
  if (current === null) return { severity: resolve(severity, change), detail: "no longer set" };
  const b = typeof baseline === "number" ? baseline : undefined;
  const c = typeof current === "number" ? current : undefined;
  const detail = b !== undefined && c !== undefined ? (c < b ? "lower" : "higher") : undefined;
  return { severity: resolve(severity, change), ...(detail ? { detail } : {}) };
}

/** A number and its noise from a plain number or a calibration measurement. */
function measured(value: Json): { value: number; cv: number; unit?: string } | undefined {
  if (typeof value === "number") return { value, cv: 0 };
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const record = value as { readonly [k: string]: Json };
    const median = record.median;
    const cv = record.cv;
    if (typeof median !== "number") return undefined;
    return {
      value: median,
      cv: typeof cv === "number" && Number.isFinite(cv) && cv > 0 ? cv : 0,
      ...(typeof record.unit === "string" ? { unit: record.unit } : {}),
    };
  }
  return undefined;
}

function compareTolerance(
  rule: Rule & { kind: "tolerance" },
  change: Change,
): Outcome | undefined {
  const b = measured(change.baseline);
  const c = measured(change.current);
  if (b === undefined || c === undefined || b.unit !== c.unit) {
    return compareExact(rule.severity, change);
  }
  const relative = (rule.relative ?? 0) + (rule.cvFactor ?? 0) * (b.cv + c.cv);
  const allowed = Math.max(rule.absolute ?? 0, relative * Math.abs(b.value));
  const delta = c.value - b.value;
  if (Math.abs(delta) <= allowed) return undefined;
  const excess = allowed > 0 ? Math.abs(delta) / allowed : Infinity;
  const by = b.value !== 0
    ? `${Math.abs(100 * delta / b.value).toFixed(1)}%`
    : `${Math.abs(delta)}${b.unit ? ` ${b.unit}` : ""}`;
  const parts = [];
  if (relative > 0) parts.push(`±${(100 * relative).toFixed(relative < 0.1 ? 1 : 0)}%`);
  if (rule.absolute !== undefined) parts.push(`±${rule.absolute}`);
  const detail = `${delta < 0 ? "lower" : "higher"} by ${by} (tolerance ${parts.join(" or ")})`;
  return { severity: resolve(rule.severity, { ...change, excess }), detail };
}

function compareSet(rule: Rule & { kind: "set" }, change: Change): Outcome | undefined {
  const b = elements(change.baseline, rule.split === true);
  const c = elements(change.current, rule.split === true);
  if (b === undefined || c === undefined) return compareExact(rule.removed, change);
  const bKeys = new Set(b.map(canonical));
  const cKeys = new Set(c.map(canonical));
  const removed = b.filter((e) => !cKeys.has(canonical(e)));
  const added = c.filter((e) => !bKeys.has(canonical(e)));
  if (removed.length === 0 && added.length === 0) return undefined;
  const full = { ...change, added, removed };
  const severities: Severity[] = [];
  if (removed.length > 0) severities.push(resolve(rule.removed, full));
  if (added.length > 0) severities.push(resolve(rule.added, full));
  const severity = SEVERITIES[Math.min(...severities.map((s) => SEVERITIES.indexOf(s)))]!;
  const parts = [];
  if (removed.length > 0) parts.push(`missing ${listed(removed)}`);
  if (added.length > 0) parts.push(`extra ${listed(added)}`);
  return { severity, detail: parts.join("; "), added, removed };
}

function elements(value: Json, split: boolean): readonly Json[] | undefined {
  if (Array.isArray(value)) return value as readonly Json[];
  if (value === null) return [];
  if (split && typeof value === "string") return value.split(/\s+/).filter((t) => t !== "");
  return undefined;
}

function listed(items: readonly Json[], max = 6): string {
  const shown = items.slice(0, max).map((i) => typeof i === "string" ? i : canonical(i));
  return shown.join(", ") + (items.length > max ? ` (+${items.length - max} more)` : "");
}

/**
 * The numeric components of the first dotted version in a value
 * (`gcc (Debian 12.2.0-14) 12.2.0` → [12, 2, 0]); undefined when none.
 *
 * @example
 * ```ts
 * parseVersion("6.1.0-18-amd64"); // [6, 1, 0]
 * ```
 */
export function parseVersion(value: Json): number[] | undefined {
  if (typeof value === "number") return [value];
  if (typeof value !== "string") return undefined;
  const match = /\d+(?:\.\d+)+/.exec(value) ?? /\d+/.exec(value);
  return match ? match[0].split(".").map(Number) : undefined;
}

function compareVersion(rule: Rule & { kind: "version" }, change: Change): Outcome | undefined {
  if (equal(change.baseline, change.current)) return undefined;
  const b = parseVersion(change.baseline);
  const c = parseVersion(change.current);
  if (b === undefined || c === undefined) {
    return { severity: rule.otherwise, detail: "different version" };
  }
  let order = 0;
  let at = -1;
  for (let i = 0; i < Math.max(b.length, c.length) && order === 0; i++) {
    order = Math.sign((c[i] ?? 0) - (b[i] ?? 0));
    if (order !== 0) at = i;
  }
  if (order === 0) return { severity: rule.otherwise, detail: "same version, different build" };
  const limit = rule.significant === "major" ? 0 : 1;
  const significant = at <= limit;
  const shown = (v: number[]) => v.slice(0, limit + 2).join(".");
  return {
    severity: significant ? rule.severity : rule.otherwise,
    detail: `${order > 0 ? "newer" : "older"} ${
      significant ? (limit === 0 ? "major version" : "major.minor version") : "patch level"
    } (${shown(b)} → ${shown(c)})`,
  };
}

/**
 * JSON with sorted object keys, so equal values have equal text.
 *
 * @example
 * ```ts
 * canonical({ b: 1, a: 2 }) === canonical({ a: 2, b: 1 }); // true
 * ```
 */
export function canonical(value: Json | undefined): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      v !== null && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  ) ?? "undefined";
}

function equal(a: Json, b: Json): boolean {
  return canonical(a) === canonical(b);
}
