import { deepEqual, equal } from "node:assert/strict";
import {
  ancestors,
  cfsToCpuMax,
  controllerDir,
  cpuMaxCpus,
  parseCgroupMounts,
  parseMemoryLimit,
  parseProcCgroup,
} from "./cgroup.ts";

const HYBRID_CGROUP = "4:memory:/process_api/abc\n1:cpu:/\n0::/\n";
const HYBRID_MOUNTS = [
  "30 25 0:26 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "31 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "32 25 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");
const V2_MOUNTS =
  "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";

Deno.test("cgroup v2 cpu.max: max means unlimited, quota/period is CPUs", () => {
  equal(cpuMaxCpus("max 100000"), Infinity);
  equal(cpuMaxCpus("50000 100000"), 0.5);
  equal(cpuMaxCpus("200000 100000\n"), 2);
  equal(cpuMaxCpus("junk"), undefined);
});

Deno.test("cgroup v1 CFS quota maps to cpu.max text", () => {
  equal(cfsToCpuMax("-1\n", "100000\n"), "max 100000");
  equal(cfsToCpuMax("150000", "100000"), "150000 100000");
});

Deno.test("memory limits: max, v1 'unlimited' sentinel, bytes", () => {
  equal(parseMemoryLimit("max\n"), "max");
  equal(parseMemoryLimit("9223372036854771712\n"), "max");
  equal(parseMemoryLimit("536870912"), 536870912);
  equal(parseMemoryLimit("-1"), undefined);
});

Deno.test("controllerDir picks the v1 hierarchy with the controller, else v2", () => {
  const entries = parseProcCgroup(HYBRID_CGROUP);
  const mounts = parseCgroupMounts(HYBRID_MOUNTS);
  deepEqual(controllerDir("memory", entries, mounts), {
    version: 1,
    dir: "/sys/fs/cgroup/memory/process_api/abc",
    top: "/sys/fs/cgroup/memory",
    path: "/process_api/abc",
  });
  equal(controllerDir("cpu", entries, mounts)?.dir, "/sys/fs/cgroup/cpu");
  // pids is in no v1 hierarchy: falls back to the unified one.
  deepEqual(controllerDir("pids", entries, mounts)?.version, 2);

  const v2 = controllerDir(
    "cpu",
    parseProcCgroup("0::/user.slice/a.scope\n"),
    parseCgroupMounts(V2_MOUNTS),
  );
  deepEqual(v2, {
    version: 2,
    dir: "/sys/fs/cgroup/user.slice/a.scope",
    top: "/sys/fs/cgroup",
    path: "/user.slice/a.scope",
  });
});

Deno.test("a namespaced mount root is stripped from the cgroup path", () => {
  const mounts = parseCgroupMounts(
    "30 25 0:26 /kubepods/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
  );
  const dir = controllerDir("cpu", parseProcCgroup("0::/kubepods/pod1/c1\n"), mounts);
  equal(dir?.dir, "/sys/fs/cgroup/c1");
});

Deno.test("ancestors walk up to the mount point", () => {
  deepEqual(ancestors("/sys/fs/cgroup/a/b", "/sys/fs/cgroup"), [
    "/sys/fs/cgroup/a/b",
    "/sys/fs/cgroup/a",
    "/sys/fs/cgroup",
  ]);
  deepEqual(ancestors("/sys/fs/cgroup", "/sys/fs/cgroup"), ["/sys/fs/cgroup"]);
});
