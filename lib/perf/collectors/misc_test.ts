// Pure parsers of the smaller collectors, on fixture strings.
import { deepEqual, equal, ok as assert } from "node:assert/strict";
import {
  parseBool,
  parseCpuList,
  parseScalar,
  parseSelected,
  parseSize,
  parseSysctl,
  reasonOf,
} from "./_io.ts";
import { parseToolVersion } from "./toolchains.ts";
import { envProperties, isAllowedEnv } from "./env.ts";
import { parseKernelConfig, preemptBuild } from "./kernel.ts";
import { parsePressure } from "./pressure.ts";
import { rootMount } from "./storage.ts";
import { detectContainer, hypervisorName } from "./virtualization.ts";
import { perfProbeProperties } from "./perf_events.ts";
import { summarizeTopology } from "./topology.ts";
import { parseNodeMeminfo } from "./numa.ts";
import { cacheName } from "./caches.ts";
import { known, unknown } from "../schema.ts";

Deno.test("sysfs value parsers", () => {
  deepEqual(parseCpuList("0-2,5,8-9\n"), [0, 1, 2, 5, 8, 9]);
  deepEqual(parseCpuList("\n"), []);
  equal(parseCpuList("a-b"), undefined);
  equal(parseScalar("60\n"), 60);
  equal(parseScalar("18446744073709551615"), "18446744073709551615");
  equal(parseSelected("always [madvise] never\n"), "madvise");
  equal(parseSelected("tsc\n"), "tsc");
  deepEqual(parseSysctl("4096\t131072\t6291456\n"), [4096, 131072, 6291456]);
  equal(parseSysctl("bbr\n"), "bbr");
  equal(parseSize("32K"), 32768);
  equal(parseSize("16M\n"), 16777216);
  equal(parseBool("1\n"), true);
  equal(parseBool("N"), false);
  equal(parseBool("maybe"), undefined);
});

Deno.test("reasons say what to do, never 'off'", () => {
  equal(
    reasonOf(new Deno.errors.NotFound("x"), { missing: "no cpufreq driver" }),
    "no such file: no cpufreq driver",
  );
  assert(/permission denied/.test(reasonOf(new Deno.errors.PermissionDenied("x"))));
  assert(/not supported/.test(reasonOf(new Error("Invalid argument (os error 22)"))));
});

Deno.test("tool versions from --version output", () => {
  equal(parseToolVersion("gcc", "gcc (Debian 12.2.0-14) 12.2.0\nCopyright"), "12.2.0");
  equal(
    parseToolVersion(
      "cc",
      "cc (Debian 12.2.0-14) 12.2.0\nCopyright (C) 2022 Free Software Foundation",
    ),
    "gcc 12.2.0",
  );
  equal(parseToolVersion("cc", "Debian clang version 14.0.6\nTarget: x86_64"), "clang 14.0.6");
  equal(parseToolVersion("clang", "Debian clang version 14.0.6\n"), "14.0.6");
  equal(parseToolVersion("rustc", "rustc 1.78.0 (9b00956e5 2024-04-29)\n"), "1.78.0");
  equal(parseToolVersion("go", "go version go1.22.3 linux/amd64\n"), "1.22.3");
  equal(parseToolVersion("python3", "Python 3.11.2\n"), "3.11.2");
  equal(parseToolVersion("node", "v20.11.1\n"), "20.11.1");
  equal(
    parseToolVersion("libc", "ldd (Debian GLIBC 2.36-9+deb12u4) 2.36\nCopyright"),
    "glibc 2.36",
  );
  equal(
    parseToolVersion("libc", "musl libc (x86_64)\nVersion 1.2.4\nDynamic Program Loader"),
    "musl 1.2.4",
  );
  equal(parseToolVersion("zig", "no version here"), undefined);
});

Deno.test("environment allow-list", () => {
  for (
    const n of [
      "OMP_NUM_THREADS",
      "MKL_DEBUG_CPU_TYPE",
      "GOMAXPROCS",
      "LD_PRELOAD",
      "LC_ALL",
      "RAYON_NUM_THREADS",
    ]
  ) {
    assert(isAllowedEnv(n), n);
  }
  for (const n of ["HOME", "PATH", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "USER"]) {
    assert(!isAllowedEnv(n), n);
  }
  deepEqual(envProperties({ OMP_NUM_THREADS: "4", HOME: "/root", TZ: "UTC" }), {
    "env.OMP_NUM_THREADS": known("4", "env:OMP_NUM_THREADS"),
    "env.TZ": known("UTC", "env:TZ"),
  });
});

Deno.test("kernel config and preemption model", () => {
  const config = parseKernelConfig(
    "CONFIG_HZ=250\nCONFIG_PREEMPT_DYNAMIC=y\n# CONFIG_PREEMPT_RT is not set\nCONFIG_X86_MSR=m\n",
  );
  equal(config.CONFIG_HZ, 250);
  equal(config.CONFIG_PREEMPT_DYNAMIC, "y");
  equal(config.CONFIG_PREEMPT_RT, "not set");
  equal(config.CONFIG_X86_MSR, "m");
  equal(preemptBuild("#1 SMP PREEMPT_DYNAMIC Fri"), "PREEMPT_DYNAMIC");
  equal(preemptBuild("#1 SMP PREEMPT_RT"), "PREEMPT_RT");
  assert(preemptBuild("#1 SMP Fri").startsWith("none"));
});

Deno.test("pressure, mounts, NUMA meminfo, caches, topology", () => {
  deepEqual(
    parsePressure(
      "some avg10=1.50 avg60=0.00 avg300=0.25 total=12\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    ),
    {
      some: { avg10: 1.5, avg60: 0, avg300: 0.25, total: 12 },
      full: { avg10: 0, avg60: 0, avg300: 0, total: 0 },
    },
  );
  deepEqual(
    rootMount(
      "20 1 0:2 / / ro - rootfs rootfs ro\n22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n",
      "/",
    ),
    {
      fstype: "ext4",
      options: "rw,relatime",
    },
  );
  deepEqual(parseNodeMeminfo("Node 0 MemTotal:  100 kB\nNode 0 MemFree:   50 kB\n"), {
    MemTotal: 100,
    MemFree: 50,
  });
  equal(cacheName(1, "Data"), "l1d");
  equal(cacheName(3, "Unified"), "l3");
  deepEqual(
    summarizeTopology([
      { cpu: 0, package: 0, die: 0, core: 0 },
      { cpu: 1, package: 0, die: 0, core: 0 },
      { cpu: 2, package: 1, die: 0, core: 0 },
      { cpu: 3, package: 1, die: 0, core: 0 },
    ]),
    { sockets: 2, dies: 2, cores: 2, threads_per_core: 2, cores_per_socket: 1 },
  );
});

Deno.test("virtualization names and container markers", () => {
  equal(hypervisorName("KVMKVMKVM"), "kvm");
  equal(hypervisorName("Microsoft Hv"), "microsoft");
  equal(hypervisorName("NewHypervsr"), "other (NewHypervsr)");
  equal(detectContainer({}), "none");
  equal(detectContainer({ dockerenv: true }), "docker");
  equal(detectContainer({ pid1Container: "podman", dockerenv: true }), "podman");
  equal(detectContainer({ pid1Cgroup: "0::/kubepods/burstable/pod1\n" }), "kubernetes");
  equal(detectContainer({ osrelease: "5.15.0-microsoft-standard-WSL2" }), "wsl");
});

Deno.test("perf probes: absent counters are known false, forbidden ones unknown", () => {
  deepEqual(perfProbeProperties("cycles", { kind: "ok", value: { kind: "ok", value: 10n } }), {
    "perf_events.cycles.available": known(true, "perf_event_open:cycles"),
  });
  deepEqual(
    perfProbeProperties("cache-misses", {
      kind: "ok",
      value: { kind: "unavailable", reason: "no PMU (ENOENT)" },
    }),
    {
      "perf_events.cache_misses.available": known(false, "perf_event_open:cache-misses"),
      "perf_events.cache_misses.reason": known("no PMU (ENOENT)", "perf_event_open:cache-misses"),
    },
  );
  deepEqual(
    perfProbeProperties("cycles", {
      kind: "ok",
      value: { kind: "unavailable", reason: "permission denied (EACCES)" },
    }),
    {
      "perf_events.cycles.available": unknown(
        "perf_event_open:cycles",
        "permission denied (EACCES)",
      ),
    },
  );
});
