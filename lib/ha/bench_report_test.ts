import assert from "node:assert/strict";
import {
  buildBenchReport,
  type FailoverRun,
  type PathFigures,
  renderBenchText,
  withNetemFailovers,
  withTwoReplicas,
} from "./bench_report.ts";

const DIRECT: PathFigures = {
  latencyP50Us: 40,
  latencyP99Us: 90,
  latencyMismatches: 0,
  throughputMBps: 200,
  cpuMsPerMB: 2,
  bulkClean: true,
};
// The longest gap of a run is never its figure: the stall across the kill is.
const run = (stall: number, extra: Partial<FailoverRun> = {}): FailoverRun => ({
  failoverStallMs: stall,
  longestStallMs: stall + 50,
  connections: 16,
  completed: 16,
  resets: 0,
  bytesDamaged: 0,
  midStream: true,
  newPrimary: 2,
  detectMs: 10,
  ...extra,
});
const MACHINE = { cpus: 2, kernel: "6.18.0" };

Deno.test("bench figures: overheads, ratio, stall median and max, targets", () => {
  const ha = { ...DIRECT, latencyP50Us: 70, latencyP99Us: 150, throughputMBps: 190, cpuMsPerMB: 5 };
  const migrations = [
    run(3, { detectMs: 0, resumeMs: 0.8, resumedConnections: 16 }),
    run(4, { detectMs: 0, resumeMs: 1.6, resumedConnections: 16 }),
  ];
  const r = buildBenchReport(DIRECT, ha, [run(9), run(30), run(5), run(8)], MACHINE, migrations);
  assert.equal(r.p50OverheadUs, 30);
  assert.equal(r.p99OverheadUs, 60);
  assert.equal(r.throughputRatio, 0.95);
  assert.equal(r.failover.stallMedianMs, 8.5);
  assert.equal(r.failover.stallMaxMs, 30);
  assert.equal(r.failover.cleanRuns, 4);
  // 800 and 1600 µs over 16 connections: 50 and 100 µs each.
  assert.equal(r.migration.usPerConnectionMedian, 75);
  assert.equal(r.migration.stallMaxMs, 4);
  assert.deepEqual(r.targets.map((t) => t.met), [true, true, true, true]);
  const text = renderBenchText(r);
  assert.match(text, /migrations: 2 runs, 2 clean; .* 75\.0 µs per connection/);
  assert.match(text, /16 connections resumed in 1600 µs/);
  assert.match(text, /latency p50 \(µs\) +40\.0 +70\.0 +\+30\.0/);
  assert.match(text, /95\.0 %/);
  assert.match(text, /median 8\.5 ms, max 30\.0 ms/);
  assert.doesNotMatch(text, /MISS/);
});

Deno.test("missed targets and unclean runs show as such", () => {
  const ha = { ...DIRECT, latencyP50Us: 100, throughputMBps: 100, bulkClean: false };
  const runs = [
    run(250),
    run(300, { resets: 2 }),
    run(5, { midStream: false }),
    run(7, { newPrimary: null, detectMs: null }),
  ];
  const slow = [run(9, { resumeMs: 16, resumedConnections: 16 })];
  const r = buildBenchReport(DIRECT, ha, runs, MACHINE, slow);
  assert.equal(r.failover.stallMedianMs, 128.5);
  assert.equal(r.failover.cleanRuns, 1);
  assert.deepEqual(r.targets.map((t) => t.met), [false, false, false, false]);
  const text = renderBenchText(r);
  assert.equal(text.match(/MISS/g)?.length, 4);
  assert.match(text, /the HA bulk load was not clean/);
  assert.match(text, /load ended before the kill/);
  assert.match(text, /run 4: .*no new primary/);
  assert.match(text, /run 1: .*node 2 took over, detect 10\.00 ms/);
});

Deno.test("no failover runs: the stall is unknown, not zero", () => {
  const r = buildBenchReport(DIRECT, DIRECT, [], MACHINE);
  assert.equal(r.failover.stallMedianMs, null);
  assert.equal(r.targets[0]!.met, null);
  assert.equal(r.migration.usPerConnectionMedian, null);
  assert.equal(r.targets[3]!.met, null);
  assert.equal(r.throughputRatio, 1);
  assert.match(renderBenchText(r), /\? +failover stall, median: \?/);
});

Deno.test("failovers under netem are a section of their own, with the SPEC", () => {
  const base = buildBenchReport(DIRECT, DIRECT, [run(5)], MACHINE);
  assert.equal(base.failoverNetem, undefined);
  assert.doesNotMatch(renderBenchText(base), /netem/);
  const r = withNetemFailovers(base, { spec: "loss 1%", mode: "emulated" }, [
    run(700),
    run(1900, { completed: 15 }),
    run(900),
  ]);
  assert.equal(r.failoverNetem?.stallMedianMs, 900);
  assert.equal(r.failoverNetem?.stallMaxMs, 1900);
  assert.equal(r.failoverNetem?.cleanRuns, 2);
  // The clean failovers and the targets are untouched.
  assert.deepEqual(r.failover, base.failover);
  assert.deepEqual(r.targets, base.targets);
  const text = renderBenchText(r);
  assert.match(
    text,
    /failovers under netem "loss 1%" \(emulated\): 3 runs, 2 clean; stall across the kill median 900\.0 ms, max 1900\.0 ms/,
  );
});

Deno.test("the two-replica path is reported against the direct path", () => {
  const base = buildBenchReport(DIRECT, DIRECT, [run(5)], MACHINE);
  const two = {
    ...DIRECT,
    latencyP50Us: 100,
    latencyP99Us: 300,
    throughputMBps: 50,
    cpuMsPerMB: 9,
  };
  const r = withTwoReplicas(base, two);
  assert.equal(r.ha2?.p50OverheadUs, 60);
  assert.equal(r.ha2?.throughputRatio, 0.25);
  assert.match(
    renderBenchText(r),
    /HA with 2 replicas: latency p50 100\.0 µs \(\+60\.0\).*25\.0 %/,
  );
  assert.doesNotMatch(renderBenchText(base), /2 replicas/);
});
