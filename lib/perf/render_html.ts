/**
 * The HTML report of `reliab perf diff --html`: one self-contained page
 * (inline CSS, no scripts, no external assets) that can be attached to an
 * issue or archived with results. Every value from a snapshot is escaped:
 * snapshots are untrusted input (env vars and command lines are free text).
 *
 * @module
 */
import type { Json, Property, Snapshot } from "./schema.ts";
import type { Difference } from "./diff.ts";
import { SEVERITIES, type Severity } from "./rules.ts";
import { countBySeverity, formatSide, formatValue, isLongSet } from "./render_text.ts";

/**
 * Escapes text for HTML element content and quoted attribute values.
 *
 * @example
 * ```ts
 * escapeHtml('<a href="x">'); // "&lt;a href=&quot;x&quot;&gt;"
 * ```
 */
export function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) =>
      c === "&"
        ? "&amp;"
        : c === "<"
        ? "&lt;"
        : c === ">"
        ? "&gt;"
        : c === '"'
        ? "&quot;"
        : "&#39;",
  );
}

const STYLE = `
:root { --critical: #b00020; --major: #d9480f; --minor: #b08800; --info: #6c757d;
  --line: #dee2e6; --soft: #f8f9fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #212529;
  margin: 0; padding: 24px 32px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; }
.sub { color: #495057; margin: 0 0 16px; }
code, .val { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
.hosts { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin-bottom: 16px; }
.host { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; background: var(--soft); }
.host b { display: block; margin-bottom: 2px; }
.host span { display: block; color: #495057; overflow-wrap: anywhere; }
.summary { display: flex; gap: 12px; flex-wrap: wrap; }
.count { min-width: 130px; border-radius: 6px; padding: 10px 14px; color: #fff; }
.count strong { display: block; font-size: 26px; line-height: 1.1; }
.count.zero { opacity: .35; }
.critical { background: var(--critical); } .major { background: var(--major); }
.minor { background: var(--minor); } .info { background: var(--info); }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top;
  overflow-wrap: anywhere; }
th { background: var(--soft); font-weight: 600; position: sticky; top: 0; }
.removed { color: var(--critical); font-weight: 600; } .added { color: #2b8a3e; font-weight: 600; }
.badge { display: inline-block; white-space: nowrap; border-radius: 4px; padding: 1px 7px; color: #fff; font-size: 12px;
  font-weight: 600; text-transform: uppercase; }
.why { color: #212529; } .advice { color: #495057; }
.affects { white-space: nowrap; font-size: 12.5px; }
tr.group td { background: #e9ecef; font-weight: 600; padding-top: 8px; }
tr.diff-critical td { background: #fde8eb; } tr.diff-major td { background: #fff0e6; }
tr.diff-minor td { background: #fff8db; } tr.diff-info td { background: #f1f3f5; }
tr.diff-critical td:first-child { border-left: 4px solid var(--critical); }
tr.diff-major td:first-child { border-left: 4px solid var(--major); }
tr.diff-minor td:first-child { border-left: 4px solid var(--minor); }
tr.diff-info td:first-child { border-left: 4px solid var(--info); }
.unknown { color: #868e96; font-style: italic; }
.redacted { color: #6f42c1; font-size: 11px; margin-left: 4px; }
.none { color: #2b8a3e; font-weight: 600; }
footer { margin-top: 28px; color: #868e96; font-size: 12px; }
`;

function badge(severity: Severity): string {
  return `<span class="badge ${severity}">${severity}</span>`;
}

function cell(property: Property | undefined): string {
  if (property === undefined) return `<span class="unknown">absent</span>`;
  if (property.status === "unknown") {
    return `<span class="unknown" title="${escapeHtml(property.source)}">unknown (${
      escapeHtml(property.reason)
    })</span>`;
  }
  const mark = property.redacted ? `<span class="redacted">redacted</span>` : "";
  return `<span class="val" title="${escapeHtml(property.source)}">${
    escapeHtml(formatValue(property.value))
  }</span>${mark}`;
}

function hostCard(title: string, snapshot: Snapshot): string {
  const host = snapshot.properties["host.hostname"];
  const name = host?.status === "ok" ? formatValue(host.value as Json) : "unknown host";
  return `<div class="host"><b>${escapeHtml(title)}</b>` +
    `<span>host: <code>${escapeHtml(name)}</code></span>` +
    `<span>created: ${escapeHtml(snapshot.created)}</span>` +
    `<span>tool: ${escapeHtml(`${snapshot.tool.name} ${snapshot.tool.version}`)}</span>` +
    `<span>hash: <code>${escapeHtml(snapshot.hash)}</code></span></div>`;
}

/** One side of a difference; long sets show their size and the elements that changed. */
function sideCell(d: Difference, which: "baseline" | "current"): string {
  if (isLongSet(d)) {
    const items = (d[which] as readonly Json[]).length;
    const changed = which === "baseline" ? d.removed ?? [] : d.added ?? [];
    const sign = which === "baseline" ? "−" : "+";
    const klass = which === "baseline" ? "removed" : "added";
    const list = changed.length === 0
      ? ""
      : `<div class="${klass}">${sign} ${escapeHtml(formatValue(changed as Json[]))}</div>`;
    return `${items} items${list}`;
  }
  return escapeHtml(
    which === "baseline"
      ? formatSide(d.baseline, d.baselineStatus, d.baselineReason)
      : formatSide(d.current, d.currentStatus, d.currentReason),
  );
}

function differenceRows(differences: readonly Difference[]): string {
  if (differences.length === 0) {
    return `<p class="none">No differences: both snapshots agree on every compared property.</p>`;
  }
  const rows = differences.map((d) =>
    `<tr class="diff-${d.severity}"><td>${badge(d.severity)}</td>` +
    `<td><code>${escapeHtml(d.path)}</code></td>` +
    `<td class="val">${sideCell(d, "baseline")}</td>` +
    `<td class="val">${sideCell(d, "current")}</td>` +
    `<td><div class="why">${escapeHtml(d.why)}</div><div class="advice">→ ${
      escapeHtml(d.advice)
    }</div></td>` +
    `<td class="affects">${escapeHtml(d.affects)}</td></tr>`
  ).join("\n");
  return `<table><colgroup><col style="width:100px"><col style="width:20%"><col style="width:14%">` +
    `<col style="width:14%"><col><col style="width:110px"></colgroup>` +
    `<thead><tr><th>Severity</th><th>Property</th><th>Baseline</th><th>Current</th>` +
    `<th>Why / advice</th><th>Affects</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

function propertyRows(
  baseline: Snapshot,
  current: Snapshot,
  differences: readonly Difference[],
): string {
  const bySeverity = new Map(differences.map((d) => [d.path, d.severity]));
  const paths = [
    ...new Set([...Object.keys(baseline.properties), ...Object.keys(current.properties)]),
  ]
    .sort();
  const rows: string[] = [];
  let group = "";
  for (const path of paths) {
    const head = path.split(".")[0]!;
    if (head !== group) {
      group = head;
      rows.push(`<tr class="group"><td colspan="3">${escapeHtml(group)}</td></tr>`);
    }
    const severity = bySeverity.get(path);
    const klass = severity === undefined ? "" : ` class="diff-${severity}"`;
    rows.push(
      `<tr${klass}><td><code>${escapeHtml(path)}</code></td>` +
        `<td>${cell(baseline.properties[path])}</td><td>${
          cell(current.properties[path])
        }</td></tr>`,
    );
  }
  return `<table><colgroup><col style="width:26%"><col><col></colgroup>` +
    `<thead><tr><th>Property</th><th>Baseline</th><th>Current</th></tr></thead>` +
    `<tbody>\n${rows.join("\n")}\n</tbody></table>`;
}

/**
 * A self-contained HTML page: counts per severity, the ranked differences
 * with why, affects and advice, then every property of both hosts side by
 * side with differing rows highlighted.
 *
 * @example
 * ```ts
 * const page = renderDiffHtml(baseline, current, diffSnapshots(baseline, current));
 * await Deno.writeTextFile("diff.html", page);
 * ```
 */
export function renderDiffHtml(
  baseline: Snapshot,
  current: Snapshot,
  differences: readonly Difference[],
): string {
  const counts = countBySeverity(differences);
  const summary = SEVERITIES.map((s) =>
    `<div class="count ${s}${counts[s] === 0 ? " zero" : ""}"><strong>${
      counts[s]
    }</strong>${s}</div>`
  ).join("");
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reliab perf diff</title>
<style>${STYLE}</style>
</head>
<body>
<h1>reliab perf diff</h1>
<p class="sub">Host configuration differences that can change benchmark results, ranked by severity.</p>
<div class="hosts">${hostCard("Baseline", baseline)}${hostCard("Current", current)}</div>
<div class="summary">${summary}</div>
<h2>Differences</h2>
${differenceRows(differences)}
<h2>All properties</h2>
${propertyRows(baseline, current, differences)}
<footer>Generated by reliab ${
    escapeHtml(current.tool.version)
  }. Hover a value to see where it was read.</footer>
</body>
</html>
`;
}
