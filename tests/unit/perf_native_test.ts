// The perf wrappers of lib/native.ts against this machine: affinity agrees
// with taskset, software counters count, hardware counters and MSRs either
// work or say why not, and calibration returns five noisy-but-sane numbers.
import assert from "node:assert/strict";
import {
  calibrateRun,
  closeNative,
  msrRead,
  PERF_COUNTER_KINDS,
  type PerfCounterKind,
  perfCounterProbe,
  schedAffinity,
} from "../../lib/native.ts";
import { calibrate } from "../../lib/perf/calibrate.ts";

/** Expands taskset's list ("0-3,6") into CPU numbers. */
function parseCpuList(list: string): number[] {
  return list.split(",").flatMap((part) => {
    const [low, high] = part.split("-").map(Number);
    const cpus: number[] = [];
    for (let cpu = low!; cpu <= (high ?? low!); cpu++) cpus.push(cpu);
    return cpus;
  });
}

async function tasksetView(pid: number): Promise<number[]> {
  const out = await new Deno.Command("taskset", { args: ["-pc", String(pid)] }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const text = new TextDecoder().decode(out.stdout);
  const list = /affinity list:\s*(\S+)/.exec(text)?.[1];
  assert.ok(list, `unexpected taskset output: ${text}`);
  return parseCpuList(list);
}

Deno.test("schedAffinity of this process equals taskset's view", async () => {
  assert.deepEqual(schedAffinity(), await tasksetView(Deno.pid));
  assert.deepEqual(schedAffinity(Deno.pid), await tasksetView(Deno.pid));
  closeNative();
});

Deno.test("schedAffinity sees a restricted child's mask, not ours", async () => {
  // A child pinned to the last CPU we may use: its mask must differ from ours
  // whenever we have more than one CPU.
  const ours = schedAffinity();
  const last = ours[ours.length - 1]!;
  const child = new Deno.Command("taskset", { args: ["-c", String(last), "sleep", "5"] }).spawn();
  try {
    // taskset sets the mask and then execs sleep: wait until it has.
    let seen: number[] = [];
    for (let i = 0; i < 100; i++) {
      seen = schedAffinity(child.pid);
      if (seen.length === 1) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(seen, [last]);
    assert.deepEqual(seen, await tasksetView(child.pid));
  } finally {
    child.kill("SIGKILL");
    await child.status;
    closeNative();
  }
});

Deno.test("schedAffinity of a process that does not exist fails with not_found", () => {
  assert.throws(() => schedAffinity(2 ** 22 + 1), { code: "native_not_found" });
  assert.throws(() => schedAffinity(-1), RangeError);
  closeNative();
});

Deno.test("software counters count; task-clock and page-faults are positive", () => {
  for (const kind of ["task-clock", "page-faults", "context-switches", "cpu-migrations"] as const) {
    const r = perfCounterProbe(kind);
    assert.equal(r.kind, "ok", `${kind}: ${r.kind === "unavailable" ? r.reason : ""}`);
    if (r.kind === "ok" && (kind === "task-clock" || kind === "page-faults")) {
      assert.ok(r.value > 0n, `${kind} = ${r.value}`);
    }
  }
  closeNative();
});

Deno.test("hardware counters give a count or a reason naming the counter and errno", () => {
  for (const kind of ["cycles", "instructions", "cache-misses", "branch-misses"] as const) {
    const r = perfCounterProbe(kind);
    if (r.kind === "ok") continue;
    assert.ok(r.reason.includes(`"${kind}"`), r.reason);
    assert.match(r.reason, /\(E[A-Z]+/);
    if (r.status === "not_supported") assert.match(r.reason, /^not supported here: /);
  }
  assert.equal(PERF_COUNTER_KINDS.length, 8);
  assert.throws(() => perfCounterProbe("bogus" as unknown as PerfCounterKind), TypeError);
  closeNative();
});

Deno.test("MSR 0x10 (TSC) reads nonzero, or is unavailable with the reason", () => {
  const r = msrRead(0, 0x10);
  let exists = true;
  try {
    Deno.statSync("/dev/cpu/0/msr");
  } catch {
    exists = false;
  }
  if (r.kind === "ok") {
    assert.ok(exists);
    assert.ok(r.value > 0n);
  } else if (!exists) {
    assert.equal(r.status, "not_found");
    assert.match(r.reason, /^\/dev\/cpu\/0\/msr does not exist: /);
  } else {
    assert.ok(r.reason.length > 0);
  }
  assert.throws(() => msrRead(-1, 0x10), RangeError);
  assert.throws(() => msrRead(0, 2 ** 32), RangeError);
  closeNative();
});

Deno.test("one calibration repetition rejects sizes beyond the native limits", async () => {
  await assert.rejects(calibrateRun("memory_latency", { bytes: 2 ** 31 }), {
    code: "native_invalid_argument",
  });
  await assert.rejects(calibrateRun("syscall", { iterations: 0.5 }), RangeError);
  closeNative();
});

Deno.test("calibrate returns five sane measurements with runs and a finite cv", async () => {
  const messages: string[] = [];
  const started = performance.now();
  const m = await calibrate((message) => messages.push(message));
  const ms = performance.now() - started;
  console.log(`calibrate took ${ms.toFixed(0)} ms:`, m);
  const expected: Record<string, [string, number, number]> = {
    "calibration.effective_clock_ghz": ["GHz", 0.1, 10],
    "calibration.memory_latency_ns": ["ns", 0.5, 1000],
    "calibration.memory_bandwidth_gbps": ["GB/s", 0.1, 1000],
    "calibration.syscall_ns": ["ns", 10, 100_000],
    "calibration.timer_resolution_ns": ["ns", 1, 1_000_000],
  };
  assert.deepEqual(Object.keys(m).sort(), Object.keys(expected).sort());
  for (const [key, [unit, low, high]] of Object.entries(expected)) {
    const x = m[key]!;
    assert.equal(x.unit, unit, key);
    assert.ok(x.runs >= 3, key);
    assert.ok(Number.isFinite(x.cv) && x.cv >= 0, `${key} cv ${x.cv}`);
    assert.ok(x.median >= low && x.median <= high, `${key} = ${x.median}`);
  }
  assert.equal(messages.length, 5);
  assert.ok(ms < 5000, `calibration took ${ms} ms, budget 5000`);
  closeNative();
});
