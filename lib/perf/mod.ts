/**
 * `reliab perf`: host configuration snapshots, comparison and reports.
 *
 * @module
 */
export * from "./schema.ts";
export { type SnapshotOptions, takeSnapshot } from "./snapshot.ts";
export { readSnapshot, serializeSnapshot } from "./snapshot_file.ts";
export {
  atOrAbove,
  type Difference,
  diffSnapshots,
  isSeverity,
  SEVERITIES,
  type Severity,
} from "./diff.ts";
export { renderDiffText, renderSnapshotText } from "./render_text.ts";
export { renderDiffHtml } from "./render_html.ts";
