import { deepEqual, equal, ok as assert } from "node:assert/strict";
import {
  cpuidFlags,
  type CpuidTable,
  decodeCpuid,
  decodeSignature,
  hypervisorVendor,
  leafKey,
} from "./cpu.ts";
import type { CpuidRegisters } from "../../native.ts";
import { known } from "../schema.ts";

/** ASCII of 4 characters as a little-endian register. */
function reg(text: string): number {
  const bytes = new TextEncoder().encode(text.padEnd(4, "\0"));
  return new DataView(bytes.buffer).getUint32(0, true);
}

function table(entries: Record<string, Partial<CpuidRegisters>>): CpuidTable {
  return new Map(
    Object.entries(entries).map(([k, r]) => [k, { eax: 0, ebx: 0, ecx: 0, edx: 0, ...r }]),
  );
}

const EPYC = table({
  [leafKey(0)]: { eax: 0x10, ebx: reg("Auth"), edx: reg("enti"), ecx: reg("cAMD") },
  [leafKey(1)]: { eax: 0x00a00f11, ecx: (1 << 28) | (1 << 31), edx: 1 | (1 << 4) },
  [leafKey(7)]: { ebx: 1 << 5 },
  [leafKey(0x40000000)]: { ebx: reg("KVMK"), ecx: reg("VMKV"), edx: reg("M") },
  [leafKey(0x80000000)]: { eax: 0x80000008 },
  [leafKey(0x80000007)]: { edx: 1 << 8 },
  [leafKey(0x80000008)]: { eax: 0x3030 },
  [leafKey(0x15)]: {},
});

Deno.test("decodeSignature applies extended family and model", () => {
  deepEqual(decodeSignature(0x00a00f11), { family: 25, model: 1, stepping: 1 }); // Zen 3
  deepEqual(decodeSignature(0x000806ec), { family: 6, model: 142, stepping: 12 }); // Intel Kaby Lake
});

Deno.test("cpuidFlags names set bits in /proc/cpuinfo spelling", () => {
  deepEqual(cpuidFlags(EPYC), ["avx", "avx2", "fpu", "hypervisor", "tsc"]);
});

Deno.test("decodeCpuid: vendor, signature, hypervisor, invariant TSC, missing leaves", () => {
  const props = decodeCpuid(EPYC);
  deepEqual(props["cpu.vendor"], known("AuthenticAMD", "cpuid:0x0.0"));
  deepEqual(props["cpu.family"], known(25, "cpuid:0x1.0"));
  deepEqual(props["cpu.tsc.invariant"], known(true, "cpuid:0x80000007.0"));
  deepEqual(props["cpu.address_bits.physical"], known(48, "cpuid:0x80000008.0"));
  equal(hypervisorVendor(EPYC), "KVMKVMKVM");
  const tsc = props["cpu.tsc.khz"]!;
  assert(tsc.status === "unknown" && /0x15/.test(tsc.reason));
  // Brand string leaves were not read: unknown with a reason, not a guess.
  equal(props["cpu.model_name"]?.status, "unknown");
});
