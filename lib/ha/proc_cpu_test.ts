import assert from "node:assert/strict";
import { cpuDeltaMs, parseParentPid, parseProcStat, parseStartTime } from "./proc_cpu.ts";

Deno.test("proc stat fields are counted from the last parenthesis", () => {
  const rest = "S 1 2 3 4 5 6 7 8 9 10 1234 567 0 0 20 0 4 0 100 0 0";
  assert.deepEqual(parseProcStat(`42 (deno) ${rest}`), { utime: 1234, stime: 567 });
  // A command name with spaces and a ')' does not shift the fields.
  assert.deepEqual(parseProcStat(`7 (a) b (c) ${rest}`), { utime: 1234, stime: 567 });
  assert.throws(() => parseProcStat("7 (short) S 1 2"), RangeError);
  assert.throws(() => parseProcStat("garbage"), RangeError);
});

Deno.test("proc stat of this very process reads", async () => {
  const t = parseProcStat(await Deno.readTextFile("/proc/self/stat"));
  assert.ok(t.utime + t.stime >= 0);
});

Deno.test("cpu delta sums growth per process and counts newcomers from zero", () => {
  const before = new Map([[1, 100], [2, 50], [3, 10]]);
  const after = new Map([[1, 150], [2, 50], [4, 20]]); // 3 exited, 4 is new
  assert.equal(cpuDeltaMs(before, after, 100), (50 + 0 + 20) * 10);
  assert.equal(cpuDeltaMs(after, after, 100), 0);
  assert.equal(cpuDeltaMs(new Map(), new Map([[9, 3]]), 1000), 3);
});

Deno.test("the parent pid is field 4, whatever the command name holds", async () => {
  assert.equal(parseParentPid("42 (deno) S 17 42 42 0"), 17);
  assert.equal(parseParentPid("42 (x) S (y) S 9 1"), 9);
  assert.throws(() => parseParentPid("42 (deno)"), RangeError);
  const mine = parseParentPid(await Deno.readTextFile("/proc/self/stat"));
  assert.equal(mine, Deno.ppid);
});

Deno.test("the start time is field 22 and stays put for one process", async () => {
  const rest = "S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 777 19 20";
  assert.equal(parseStartTime(`5 (a) b) ${rest}`), 777);
  assert.throws(() => parseStartTime("5 (a) S 1"), RangeError);
  const first = parseStartTime(await Deno.readTextFile("/proc/self/stat"));
  assert.equal(parseStartTime(await Deno.readTextFile("/proc/self/stat")), first);
});
