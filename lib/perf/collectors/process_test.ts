import { deepEqual, equal } from "node:assert/strict";
import {
  capabilityNames,
  effectiveCpus,
  parseProcStat,
  parseStat,
  parseStatus,
  stealPercent,
} from "./process.ts";
import { known } from "../schema.ts";

Deno.test("parseStat counts fields after the last parenthesis", () => {
  const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
  fields[4 - 3] = "77"; // ppid
  fields[19 - 3] = "-5"; // nice
  fields[40 - 3] = "0"; // rt_priority
  fields[41 - 3] = "3"; // policy
  const stat = `123 (evil) name) ${fields.join(" ")}`;
  deepEqual(parseStat(stat), { ppid: 77, nice: -5, rt_priority: 0, policy: "SCHED_BATCH" });
  equal(parseStat("garbage"), undefined);
});

Deno.test("steal from /proc/stat samples", () => {
  const before = parseProcStat("cpu  100 0 50 800 0 0 0 50 0 0\ncpu0 1 2 3\n")!;
  deepEqual(before, { total: 1000, steal: 50 });
  equal(stealPercent(before, { total: 1200, steal: 70 }), 10);
  equal(stealPercent(before, before), undefined);
});

Deno.test("status fields and capability names", () => {
  equal(parseStatus("Name:\tdeno\nCpus_allowed_list:\t0-3\n").get("Cpus_allowed_list"), "0-3");
  deepEqual(capabilityNames("0000004000200000"), ["cap_perfmon", "cap_sys_admin"]);
  deepEqual(capabilityNames("0"), []);
});

Deno.test("effective CPUs: the tightest of affinity, cpuset and cpu.max", () => {
  const affinity = known([0, 1, 2, 3], "a");
  equal(effectiveCpus({ "process.affinity": affinity }).status === "ok", true);
  deepEqual(
    effectiveCpus({
      "process.affinity": affinity,
      "process.cgroup.cpu_max": known("150000 100000", "c"),
    }),
    known(1.5, "min(affinity, cpuset, cpu.max)"),
  );
  deepEqual(
    effectiveCpus({
      "process.affinity": affinity,
      "process.cgroup.cpu_max": known("max 100000", "c"),
      "process.cgroup.cpuset_cpus_effective": known([2, 3], "s"),
    }),
    known(2, "min(affinity, cpuset, cpu.max)"),
  );
});
