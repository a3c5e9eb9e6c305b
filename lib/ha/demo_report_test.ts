import assert from "node:assert/strict";
import {
  buildDemoReport,
  type FailoverFacts,
  failoverStall,
  renderDemoText,
} from "./demo_report.ts";
import type { LoadSummary } from "./child_output.ts";

const CLEAN_LOAD: LoadSummary = {
  connections: 64,
  completed: 64,
  resets: 0,
  bytesSent: 64 * 4096,
  bytesVerified: 64 * 4096,
  bytesLost: 0,
  bytesDuplicated: 0,
  bytesCorrupted: 0,
  longestStallMs: 8.25,
  // The takeover (below) came at 1_000_012, 10.5 ms after the old primary's
  // last sign of life: the 6 ms gap spans it, the longer one does not.
  gaps: [{ atUnixMs: 1_000_500, ms: 8.25 }, { atUnixMs: 999_997, ms: 6 }, {
    atUnixMs: 990_000,
    ms: 2,
  }],
  elapsedMs: 2000,
  goodputMbps: 1.05,
};

const CLEAN_FACTS: FailoverFacts = {
  kill: "sigkill",
  killedNode: 1,
  midStream: true,
  killAfterMs: 500,
  killAtUnixMs: 1_000_000,
  epochBefore: 1,
  newPrimary: {
    id: 2,
    epoch: 2,
    takeover: {
      atUnixMs: 1_000_012,
      detectMs: 10.5,
      kind: "failover",
      connections: 64,
      resumed: 64,
      resumeMs: 0.5,
      commandToResumeMs: null,
    },
  },
  oldPrimaryRole: null,
  statusErrors: [],
};
const SETUP = { lab: "rlhd", nodes: 3, vip: "10.77.0.1" };

Deno.test("a clean failover is ok and carries every figure", () => {
  const r = buildDemoReport(CLEAN_LOAD, CLEAN_FACTS, SETUP);
  assert.equal(r.ok, true);
  assert.deepEqual(r.problems, []);
  assert.equal(r.survived, 64);
  assert.equal(r.bytesVerified, 64 * 4096);
  assert.equal(r.longestStallMs, 8.25);
  assert.equal(r.failoverStallMs, 6); // the gap across the kill, not the longest
  assert.equal(r.failover.newPrimary, 2);
  assert.equal(r.failover.epochAfter, 2);
  assert.equal(r.failover.detectMs, 10.5);
  assert.equal(r.failover.takeoverAfterKillMs, 12);
  const text = renderDemoText(r);
  assert.match(text, /every connection survived/);
  assert.match(text, /64 \(64 survived, 0 resets\)/);
  assert.match(text, /node 2, epoch 1 -> 2/);
  assert.match(text, /detected in 10\.50 ms/);
  assert.doesNotMatch(text, /problem/);
});

Deno.test("every kind of damage is a problem of its own", () => {
  const r = buildDemoReport(
    {
      ...CLEAN_LOAD,
      completed: 60,
      resets: 3,
      bytesLost: 10,
      bytesDuplicated: 2,
      bytesCorrupted: 1,
    },
    CLEAN_FACTS,
    SETUP,
  );
  assert.equal(r.ok, false);
  assert.deepEqual(r.problems, [
    "4 of 64 connections did not complete",
    "3 connections were reset",
    "10 bytes lost",
    "2 bytes duplicated",
    "1 bytes corrupted",
  ]);
  assert.match(renderDemoText(r), /FAILED[\s\S]*problem: 3 connections were reset/);
});

Deno.test("no takeover, a stale epoch or a kill after the end fail the demo", () => {
  const none = buildDemoReport(CLEAN_LOAD, { ...CLEAN_FACTS, newPrimary: null }, SETUP);
  assert.deepEqual(none.problems, ["no surviving node reports role primary"]);
  assert.equal(none.failover.detectMs, null);
  assert.equal(none.failover.takeoverAfterKillMs, null);
  assert.match(renderDemoText(none), /new primary +none/);

  const stale = buildDemoReport(
    CLEAN_LOAD,
    { ...CLEAN_FACTS, newPrimary: { id: 2, epoch: 1, takeover: null } },
    SETUP,
  );
  assert.deepEqual(stale.problems, ["the new primary's epoch 1 is not above 1"]);

  const late = buildDemoReport(CLEAN_LOAD, { ...CLEAN_FACTS, midStream: false }, SETUP);
  assert.equal(late.ok, false);
  assert.match(late.problems[0]!, /ended before the kill: give more --bytes/);
  const never = buildDemoReport(
    CLEAN_LOAD,
    { ...CLEAN_FACTS, midStream: false, notMidStream: "only 63 of 64 connections" },
    SETUP,
  );
  assert.deepEqual(never.problems, ["only 63 of 64 connections"]);

  const errors = buildDemoReport(
    CLEAN_LOAD,
    { ...CLEAN_FACTS, statusErrors: ["Cannot read the status of node 3: gone"] },
    SETUP,
  );
  assert.deepEqual(errors.problems, ["Cannot read the status of node 3: gone"]);
});

Deno.test("an unknown epoch before does not invent a problem", () => {
  const r = buildDemoReport(CLEAN_LOAD, { ...CLEAN_FACTS, epochBefore: null }, SETUP);
  assert.equal(r.ok, true);
  assert.match(renderDemoText(r), /epoch \? -> 2/);
});

Deno.test("takeovers are listed in time order; more than one is shown", () => {
  const takeovers = [
    { id: 3, epoch: 51, role: "primary" as const, atUnixMs: 1_002_300, detectMs: 10 },
    { id: 2, epoch: 34, role: "fenced" as const, atUnixMs: 1_000_012, detectMs: 10 },
  ];
  const r = buildDemoReport(CLEAN_LOAD, { ...CLEAN_FACTS, takeovers }, SETUP);
  assert.deepEqual(r.failover.takeovers.map((t) => [t.id, t.afterKillMs]), [[2, 12], [3, 2300]]);
  assert.match(
    renderDemoText(r),
    /takeovers +node 2 \(epoch 34, now fenced\) 12\.0 ms after the kill; node 3/,
  );
  const one = buildDemoReport(CLEAN_LOAD, { ...CLEAN_FACTS, takeovers: [takeovers[0]!] }, SETUP);
  assert.doesNotMatch(renderDemoText(one), /takeovers/);
});

Deno.test("a demo under netem says so in its report and its text", () => {
  const clean = buildDemoReport(CLEAN_LOAD, CLEAN_FACTS, SETUP);
  assert.equal(clean.netem, null);
  assert.doesNotMatch(renderDemoText(clean), /netem/);
  const r = buildDemoReport(CLEAN_LOAD, CLEAN_FACTS, {
    ...SETUP,
    netem: { spec: "loss 1%", mode: "emulated" },
  });
  assert.deepEqual(r.netem, { spec: "loss 1%", mode: "emulated" });
  assert.equal(r.ok, true);
  assert.match(
    renderDemoText(r),
    /network {9}netem "loss 1%" on every link, both ways \(emulated\)/,
  );
});

Deno.test("without a takeover, the failover stall spans the kill command from start to effect", () => {
  const facts = {
    ...CLEAN_FACTS,
    newPrimary: null,
    killStartUnixMs: 999_000,
    killAtUnixMs: 999_200,
  };
  const load = {
    ...CLEAN_LOAD,
    gaps: [{ atUnixMs: 999_100, ms: 3 }, { atUnixMs: 999_300, ms: 7 }],
  };
  assert.equal(failoverStall(load, facts), 3);
  assert.equal(failoverStall(load, { ...facts, killAtUnixMs: null }), null);
});
