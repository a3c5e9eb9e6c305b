import { deepEqual, equal, ok as assert } from "node:assert/strict";
import { atOrAbove, type Difference, diffSnapshots, isSeverity, SEVERITIES } from "./diff.ts";
import { makeSnapshot } from "./_make_snapshot.ts";
import { type Json, type Property, unknown } from "./schema.ts";

type Props = Readonly<Record<string, Json | Property>>;

function diff(baseline: Props, current: Props): Difference[] {
  return diffSnapshots(makeSnapshot(baseline), makeSnapshot(current));
}

/** The single difference for `path`, failing when there is none. */
function one(baseline: Props, current: Props, path = Object.keys({ ...baseline, ...current })[0]!) {
  const found = diff(baseline, current).filter((d) => d.path === path);
  equal(found.length, 1, `expected one difference for ${path}, got ${JSON.stringify(found)}`);
  return found[0]!;
}

function redacted(value: string): Property {
  return { status: "ok", value, source: "test", redacted: true };
}

const HOST: Props = {
  "cpu.vendor": "AuthenticAMD",
  "cpu.model_name": "AMD EPYC 7B13",
  "cpu.flags": ["avx2", "avx512f", "fma", "sse4_2"],
  "cpu.count.online": 2,
  "frequency.governor": "performance",
  "frequency.max_khz": 3000000,
  "kernel.release": "6.1.0-18-amd64",
  "process.affinity": [0, 1],
  "limits.nofile.soft": 1024,
  "sysctl.kernel.randomize_va_space": 2,
  "thp.enabled": "always [madvise] never",
  "pressure.cpu.some_avg10": 0.5,
  "process.steal_percent": 1.0,
  "memory.total_kb": 8000000,
  "memory.free_kb": 4000000,
  "calibration.syscall_ns": { median: 100, unit: "ns", cv: 0.02, runs: 9 },
  "host.hostname": redacted("hmac-sha256:aaaa"),
  "boost.enabled": unknown("/sys/devices/system/cpu/cpufreq/boost", "no cpufreq driver"),
};

Deno.test("severity helpers order critical > major > minor > info", () => {
  deepEqual([...SEVERITIES], ["critical", "major", "minor", "info"]);
  assert(isSeverity("minor"));
  assert(!isSeverity("high"));
  assert(!isSeverity(3));
  assert(atOrAbove("critical", "major"));
  assert(atOrAbove("major", "major"));
  assert(!atOrAbove("minor", "major"));
  assert(atOrAbove("info", "info"));
  assert(!atOrAbove("info", "minor"));
});

Deno.test("identical snapshots have no difference", () => {
  deepEqual(diff(HOST, HOST), []);
});

Deno.test("volatile values of one unchanged host never reach major", () => {
  const later: Props = {
    ...HOST,
    "pressure.cpu.some_avg10": 7.25,
    "process.steal_percent": 6.0,
    "memory.free_kb": 1200000,
    "memory.total_kb": 7990000,
    "calibration.syscall_ns": { median: 109, unit: "ns", cv: 0.03, runs: 9 },
  };
  const differences = diff(HOST, later);
  assert(differences.length > 0, "volatile changes are still shown");
  for (const d of differences) assert(!atOrAbove(d.severity, "minor"), JSON.stringify(d));
});

Deno.test("differences are sorted by severity, then path", () => {
  const differences = diff(HOST, {
    ...HOST,
    "cpu.vendor": "GenuineIntel",
    "frequency.governor": "powersave",
    "kernel.release": "6.1.5-1-amd64",
    "limits.nofile.soft": 512,
    "sysctl.kernel.randomize_va_space": 0,
    "pressure.cpu.some_avg10": 3,
  });
  deepEqual(differences.map((d) => [d.severity, d.path]), [
    ["critical", "cpu.vendor"],
    ["major", "frequency.governor"],
    ["major", "sysctl.kernel.randomize_va_space"],
    ["minor", "kernel.release"],
    ["minor", "limits.nofile.soft"],
    ["info", "pressure.cpu.some_avg10"],
  ]);
});

Deno.test("exact rules: severity follows the field and direction", () => {
  const governor = one({ "frequency.governor": "performance" }, {
    "frequency.governor": "powersave",
  });
  equal(governor.severity, "major");
  equal(governor.rule, "exact");
  equal(governor.affects, "CPU-bound");
  assert(governor.advice.includes("cpupower frequency-set -g performance"));
  equal(
    one({ "frequency.governor": "schedutil" }, { "frequency.governor": "ondemand" }).severity,
    "minor",
  );
  equal(one({ "cpu.model_name": "A" }, { "cpu.model_name": "B" }).severity, "critical");
  equal(one({ "smt.active": true }, { "smt.active": false }).severity, "major");
  equal(one({ "cpu.count.online": 2 }, { "cpu.count.online": 1 }).severity, "critical");
  equal(one({ "cpu.count.online": 2 }, { "cpu.count.online": 4 }).severity, "major");
  const mitigation = one({ "mitigations.retbleed": "Mitigation: untrained return thunk" }, {
    "mitigations.retbleed": "Vulnerable",
  });
  equal(mitigation.severity, "major");
  equal(mitigation.affects, "syscall-heavy");
});

Deno.test("limits: lower is minor, higher is info, unlimited counts as infinite", () => {
  equal(one({ "limits.nofile.soft": 1024 }, { "limits.nofile.soft": 512 }).severity, "minor");
  equal(one({ "limits.nofile.soft": 512 }, { "limits.nofile.soft": 1024 }).severity, "info");
  equal(
    one({ "limits.stack.soft": "unlimited" }, { "limits.stack.soft": 8388608 }).severity,
    "minor",
  );
});

Deno.test("THP: any change involving always is major, madvise vs never minor", () => {
  const always = one({ "thp.enabled": "always [madvise] never" }, {
    "thp.enabled": "[always] madvise never",
  });
  equal(always.severity, "major");
  equal(always.affects, "memory-bound");
  equal(
    one({ "thp.enabled": "madvise" }, { "thp.enabled": "always madvise [never]" }).severity,
    "minor",
  );
  deepEqual(diff({ "thp.enabled": "madvise" }, { "thp.enabled": "always [madvise] never" }), []);
});

Deno.test("cgroup limits: a smaller CPU quota is critical, a larger one major", () => {
  const p = "process.cgroup.cpu_max";
  equal(one({ [p]: "max 100000" }, { [p]: "50000 100000" }).severity, "critical");
  equal(one({ [p]: "50000 100000" }, { [p]: "max 100000" }).severity, "major");
  equal(one({ [p]: "200000 100000" }, { [p]: "100000 100000" }).severity, "critical");
});

Deno.test("numa_balancing matters only with several nodes", () => {
  const p = "sysctl.kernel.numa_balancing";
  equal(one({ [p]: 1, "numa.nodes": 1 }, { [p]: 0, "numa.nodes": 1 }, p).severity, "minor");
  equal(one({ [p]: 1, "numa.nodes": 2 }, { [p]: 0, "numa.nodes": 2 }, p).severity, "major");
});

Deno.test("unknown on one side is info 'cannot compare', never 'off'", () => {
  const d = one(
    { "boost.enabled": unknown("/sys/x", "needs root") },
    { "boost.enabled": false },
  );
  equal(d.severity, "info");
  equal(d.why, "cannot compare: unknown in baseline: needs root");
  equal(d.baseline, undefined);
  equal(d.baselineStatus, "unknown");
  equal(d.baselineReason, "needs root");
  equal(d.current, false);
  equal(d.currentStatus, "ok");
  // The same value known on both sides does compare, with the field's severity.
  equal(one({ "boost.enabled": true }, { "boost.enabled": false }).severity, "major");
});

Deno.test("unknown on both sides: equal reasons are no difference", () => {
  const u = unknown("/dev/cpu/0/msr", "no msr driver");
  deepEqual(diff({ "msr.turbo": u }, { "msr.turbo": u }), []);
  const d = one({ "msr.turbo": u }, { "msr.turbo": unknown("/dev/cpu/0/msr", "needs root") });
  equal(d.severity, "info");
  assert(d.why.startsWith("cannot compare"));
});

Deno.test("a property recorded on one side only is info", () => {
  const d = one(
    { "cpu.vendor": "A", "kernel.new_thing": 1 },
    { "cpu.vendor": "A" },
    "kernel.new_thing",
  );
  equal(d.path, "kernel.new_thing");
  equal(d.severity, "info");
  equal(d.currentStatus, "missing");
  assert(d.why.includes("not recorded in the current snapshot"));
});

Deno.test("environment variables: absent means unset", () => {
  const omp = one({}, { "env.OMP_NUM_THREADS": "3" }, "env.OMP_NUM_THREADS");
  equal(omp.severity, "major");
  equal(omp.baselineStatus, "missing");
  assert(omp.why.startsWith("now set"));
  equal(one({}, { "env.LD_PRELOAD": "/x.so" }, "env.LD_PRELOAD").severity, "critical");
  equal(one({ "env.LD_PRELOAD": "/x.so" }, {}, "env.LD_PRELOAD").severity, "critical");
  equal(one({ "env.MALLOC_ARENA_MAX": "2" }, {}, "env.MALLOC_ARENA_MAX").severity, "major");
  equal(one({ "env.GLIBC_TUNABLES": "a=1" }, { "env.GLIBC_TUNABLES": "a=2" }).severity, "major");
  equal(one({}, { "env.SOMETHING_ELSE": "1" }, "env.SOMETHING_ELSE").severity, "minor");
});

Deno.test("tolerance: frequency within 5% is equal, beyond is major", () => {
  const p = "frequency.max_khz";
  deepEqual(diff({ [p]: 3000000 }, { [p]: 3100000 }), []);
  const d = one({ [p]: 3000000 }, { [p]: 2700000 });
  equal(d.severity, "major");
  equal(d.rule, "tolerance");
  assert(d.why.startsWith("lower by 10.0% (tolerance ±5.0%)"), d.why);
  deepEqual(diff({ "memory.total_kb": 8000000 }, { "memory.total_kb": 8100000 }), []);
  equal(one({ "memory.total_kb": 8000000 }, { "memory.total_kb": 4000000 }).severity, "major");
  equal(one({ "memory.total_kb": 8000000 }, { "memory.total_kb": 16000000 }).severity, "minor");
});

Deno.test("tolerance of calibration medians widens with their cv", () => {
  const p = "calibration.memory_latency_ns";
  const m = (median: number, cv: number) => ({ median, unit: "ns", cv, runs: 7 });
  // 25% apart: outside the base 15% when quiet, inside when each run is noisy.
  equal(one({ [p]: m(100, 0) }, { [p]: m(125, 0) }).severity, "minor");
  deepEqual(diff({ [p]: m(100, 0.05) }, { [p]: m(125, 0.05) }), []);
  // Far outside the tolerance: major.
  equal(one({ [p]: m(100, 0.01) }, { [p]: m(200, 0.01) }).severity, "major");
  // Different units cannot be compared numerically: the exact fallback flags them.
  assert(diff({ [p]: m(100, 0) }, { [p]: { ...m(100, 0), unit: "us" } }).length === 1);
});

Deno.test("set rules report missing and extra elements", () => {
  const lost = one({ "cpu.flags": ["avx2", "avx512f", "sse4_2"] }, {
    "cpu.flags": ["avx2", "sse4_2"],
  });
  equal(lost.severity, "critical");
  equal(lost.rule, "set");
  deepEqual(lost.removed, ["avx512f"]);
  deepEqual(lost.added, []);
  assert(lost.why.startsWith("missing avx512f"), lost.why);
  const other = one({ "cpu.flags": ["avx2", "hypervisor"] }, { "cpu.flags": ["avx2"] });
  equal(other.severity, "major");
  const extra = one({ "cpu.flags": ["avx2"] }, { "cpu.flags": ["avx2", "avx512f"] });
  equal(extra.severity, "minor");
  deepEqual(extra.added, ["avx512f"]);
  // Order does not matter for sets.
  deepEqual(diff({ "cpu.flags": ["a", "b"] }, { "cpu.flags": ["b", "a"] }), []);
});

Deno.test("affinity: fewer CPUs is critical, more is major", () => {
  const fewer = one({ "process.affinity": [0, 1] }, { "process.affinity": [0] });
  equal(fewer.severity, "critical");
  equal(fewer.affects, "multithreaded");
  deepEqual(fewer.removed, [1]);
  equal(one({ "process.affinity": [0] }, { "process.affinity": [0, 1] }).severity, "major");
});

Deno.test("kernel command line is compared as a set of options", () => {
  const p = "kernel.cmdline";
  const base = "BOOT_IMAGE=/vmlinuz-6.1 root=UUID=1 quiet";
  equal(one({ [p]: base }, { [p]: `${base} isolcpus=1` }).severity, "major");
  equal(one({ [p]: base }, { [p]: base.replace("6.1", "6.2") }).severity, "minor");
  deepEqual(diff({ [p]: base }, { [p]: "quiet  BOOT_IMAGE=/vmlinuz-6.1 root=UUID=1" }), []);
});

Deno.test("version rules: kernel major.minor is major, patch is minor", () => {
  const p = "kernel.release";
  const newer = one({ [p]: "6.1.0-18-amd64" }, { [p]: "6.5.0-1-amd64" });
  equal(newer.severity, "major");
  equal(newer.rule, "version");
  assert(newer.why.startsWith("newer major.minor version (6.1.0 → 6.5.0)"), newer.why);
  const patch = one({ [p]: "6.1.76" }, { [p]: "6.1.12" });
  equal(patch.severity, "minor");
  assert(patch.why.startsWith("older patch level"), patch.why);
  equal(one({ [p]: "6.1.0-18-amd64" }, { [p]: "6.1.0-19-amd64" }).severity, "minor");
  // 6.10 is newer than 6.9 (numeric, not text order).
  assert(one({ [p]: "6.9.1" }, { [p]: "6.10.0" }).why.startsWith("newer"));
});

Deno.test("version rules: compilers gate on the major version, libc on major.minor", () => {
  const gcc = "toolchain.gcc";
  equal(
    one({ [gcc]: "gcc (Debian 12.2.0-14) 12.2.0" }, { [gcc]: "gcc (GCC) 13.1.0" }).severity,
    "major",
  );
  equal(one({ [gcc]: "12.2.0" }, { [gcc]: "12.3.0" }).severity, "minor");
  equal(one({ "toolchain.libc": "2.36" }, { "toolchain.libc": "2.38" }).severity, "major");
  equal(
    one({ "toolchain.clang": "clang 16.0.6" }, { "toolchain.clang": "clang 17.0.1" }).severity,
    "major",
  );
});

Deno.test("ignore rules: hostname and pressure are info at most", () => {
  const host = one({ "host.hostname": "a" }, { "host.hostname": "b" });
  equal(host.severity, "info");
  equal(host.rule, "ignore");
  equal(one({ "pressure.io.full_avg60": 0 }, { "pressure.io.full_avg60": 50 }).severity, "info");
});

Deno.test("redacted values compare only with the same key", () => {
  const a = makeSnapshot({ "dmi.product_serial": redacted("hmac-sha256:1") }, { keyId: "k1" });
  const b = makeSnapshot({ "dmi.product_serial": redacted("hmac-sha256:2") }, { keyId: "k2" });
  const [d, ...rest] = diffSnapshots(a, b);
  equal(rest.length, 0);
  equal(d?.severity, "info");
  equal(d?.why, "cannot compare: redacted with different keys");
  equal(d?.redacted, true);
  const same = makeSnapshot({ "dmi.product_serial": redacted("hmac-sha256:2") }, { keyId: "k1" });
  const [e] = diffSnapshots(a, same);
  equal(e?.severity, "minor", "same key: compared by the field's rule");
  deepEqual(diffSnapshots(a, a), []);
});

Deno.test("unmatched paths use the default rule", () => {
  const d = one({ "zzz.whatever": 1 }, { "zzz.whatever": 2 });
  equal(d.severity, "minor");
  equal(d.pattern, "**");
  assert(d.why.includes("no specific rule"));
});
