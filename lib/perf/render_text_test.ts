import { equal, match, ok as assert } from "node:assert/strict";
import { diffSnapshots } from "./diff.ts";
import { formatValue, renderDiffText, renderSnapshotText } from "./render_text.ts";
import { makeSnapshot } from "./_make_snapshot.ts";
import { unknown } from "./schema.ts";

const baseline = makeSnapshot({
  "frequency.governor": "performance",
  "cpu.vendor": "AuthenticAMD",
  "host.hostname": "a",
  "limits.nofile.soft": 1024,
  "boost.enabled": unknown("/sys/x", "needs root"),
});
const current = makeSnapshot({
  "frequency.governor": "powersave",
  "cpu.vendor": "GenuineIntel",
  "host.hostname": "b",
  "limits.nofile.soft": 512,
  "boost.enabled": true,
});

Deno.test("no differences reads 'no differences'", () => {
  equal(renderDiffText([], { color: false, all: false }), "no differences");
});

Deno.test("each difference is one line in the documented shape", () => {
  const text = renderDiffText(diffSnapshots(baseline, current), { color: false, all: true });
  const lines = text.split("\n");
  const governor = lines.find((l) => l.includes("frequency.governor"));
  match(
    governor ?? "",
    /^MAJOR +frequency\.governor: performance → powersave — .+ \(affects CPU-bound\)\. Set the governor with 'cpupower frequency-set -g performance'$/,
  );
  match(lines[0]!, /^differences: 1 critical, 1 major, 1 minor, 2 info$/);
  // Grouped by severity: critical before major before minor before info.
  const order = ["CRITICAL", "MAJOR", "MINOR", "INFO"].map((s) =>
    lines.findIndex((l) => l.startsWith(s))
  );
  assert(order.every((v, i) => v > 0 && (i === 0 || v > order[i - 1]!)), order.join());
  assert(text.includes("unknown (needs root) → true — cannot compare"), text);
});

Deno.test("info differences are counted unless --all", () => {
  const differences = diffSnapshots(baseline, current);
  const short = renderDiffText(differences, { color: false, all: false });
  assert(!short.includes("host.hostname"));
  assert(short.includes("2 info difference(s) not shown (--all lists them)"));
  const long = renderDiffText(differences, { color: false, all: true });
  assert(long.includes("host.hostname"));
});

Deno.test("colour only when asked", () => {
  const differences = diffSnapshots(baseline, current);
  assert(!renderDiffText(differences, { color: false }).includes("\x1b["));
  assert(renderDiffText(differences, { color: true }).includes("\x1b[1;31mCRITICAL"));
  assert(!renderSnapshotText(baseline, { color: false }).includes("\x1b["));
});

Deno.test("long set values are summarised as item counts", () => {
  const flags = Array.from({ length: 40 }, (_, i) => `f${i}`);
  const a = makeSnapshot({ "cpu.flags": flags });
  const b = makeSnapshot({ "cpu.flags": flags.slice(1) });
  const text = renderDiffText(diffSnapshots(a, b), { color: false });
  assert(text.includes("cpu.flags: 40 items → 39 items — missing f0"), text);
});

Deno.test("formatValue shows CPU lists as ranges and measurements with noise", () => {
  equal(formatValue([0, 1, 2, 3, 6]), "0-3,6");
  equal(formatValue([4, 0, 1]), "0,1,4");
  equal(formatValue(["a", "b"]), "a b");
  equal(
    formatValue({ median: 2.3456, unit: "GHz", cv: 0.012, runs: 5 }),
    "2.346 GHz ±1.2% (5 runs)",
  );
  equal(formatValue(undefined), "absent");
  equal(formatValue(""), '""');
});

Deno.test("snapshot text: header, groups, alignment, unknown and redacted", () => {
  const snapshot = makeSnapshot({
    "cpu.vendor": "AuthenticAMD",
    "cpu.count.online": 2,
    "boost.enabled": unknown("/sys/x", "no cpufreq driver"),
    "host.hostname": { status: "ok", value: "hmac-sha256:ab", source: "uname", redacted: true },
  });
  const text = renderSnapshotText(snapshot, { color: false });
  assert(text.includes("created     2025-01-01T00:00:00.000Z"));
  assert(text.includes("tool        reliab 0.0.0-test"));
  assert(text.includes("hash        sha256:dummy"));
  assert(text.includes("properties  4 (1 unknown, 1 redacted)"));
  assert(text.includes("  enabled  unknown (no cpufreq driver)"), text);
  assert(text.includes("hmac-sha256:ab (redacted)"));
  const lines = text.split("\n");
  const cpu = lines.indexOf("cpu");
  assert(cpu > 0 && lines.indexOf("boost") < cpu && lines.indexOf("host") > cpu);
  const columns = lines.slice(cpu + 1, cpu + 3).map((l) => l.search(/(2|AuthenticAMD)$/));
  equal(columns[0], columns[1], "values in a group are aligned");
});

Deno.test("snapshot text wraps long lists under their column", () => {
  const flags = Array.from({ length: 60 }, (_, i) => `flag${i}`);
  const text = renderSnapshotText(makeSnapshot({ "cpu.flags": flags }), { color: false });
  const lines = text.split("\n").filter((l) => l.includes("flag"));
  assert(lines.length > 1);
  for (const line of lines) assert(line.length <= 100, line);
  equal(lines.join(" ").match(/flag\d+/g)?.length, 60);
});
