import { deepEqual, equal } from "node:assert/strict";
import { cpuinfoProperties, parseCpuinfo } from "./cpuinfo.ts";
import { known } from "../schema.ts";

const FIXTURE = `processor	: 0
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B13 64-Core Processor
microcode	: 0x1000065
cpu MHz		: 2450.000
flags		: fpu sse2 avx2 constant_tsc
bugs		: sysret_ss_attrs spectre_v1

processor	: 1
vendor_id	: AuthenticAMD
model name	: AMD EPYC 7B13 64-Core Processor
microcode	: 0x1000066
flags		: fpu sse2 avx2 constant_tsc
`;

Deno.test("parseCpuinfo splits processors and fields", () => {
  const blocks = parseCpuinfo(FIXTURE);
  equal(blocks.length, 2);
  equal(blocks[1]!.get("microcode"), "0x1000066");
});

Deno.test("cpuinfoProperties: first processor, sorted flags, microcode agreement", () => {
  const props = cpuinfoProperties(parseCpuinfo(FIXTURE));
  deepEqual(
    props["cpu.kernel_flags"],
    known(["avx2", "constant_tsc", "fpu", "sse2"], "/proc/cpuinfo"),
  );
  deepEqual(props["cpu.microcode"], known("0x1000065", "/proc/cpuinfo"));
  deepEqual(props["cpu.mhz"], known(2450, "/proc/cpuinfo"));
  deepEqual(props["cpu.microcode_uniform"], known(false, "/proc/cpuinfo"));
  equal(props["cpu.bogomips"]?.status, "unknown");
});
