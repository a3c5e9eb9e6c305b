import { deepEqual, equal } from "node:assert/strict";
import { meminfoPath, parseMeminfo } from "./memory.ts";

Deno.test("parseMeminfo reads values and units", () => {
  const m = parseMeminfo(
    "MemTotal:       16318440 kB\nActive(anon):      608 kB\nHugePages_Total:       4\n",
  );
  deepEqual(m, {
    MemTotal: { value: 16318440, unit: "kB" },
    "Active(anon)": { value: 608, unit: "kB" },
    HugePages_Total: { value: 4, unit: "" },
  });
});

Deno.test("meminfoPath gives dotted snake_case paths", () => {
  equal(meminfoPath("MemTotal", "kB"), "memory.mem_total_kb");
  equal(meminfoPath("SwapTotal", "kB"), "memory.swap_total_kb");
  equal(meminfoPath("Active(anon)", "kB"), "memory.active_anon_kb");
  equal(meminfoPath("HugePages_Total", ""), "hugepages.total");
  equal(meminfoPath("Hugepagesize", "kB"), "hugepages.default_size_kb");
  equal(meminfoPath("DirectMap1G", "kB"), "memory.direct_map_1g_kb");
  equal(meminfoPath("AnonHugePages", "kB"), "memory.anon_huge_pages_kb");
});
