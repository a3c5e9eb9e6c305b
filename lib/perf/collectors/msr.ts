/**
 * Model-specific registers that change performance behind the kernel's
 * back: turbo disable, hardware prefetchers, energy/performance bias (Intel)
 * and core performance boost (AMD). They need /dev/cpu/N/msr (the msr
 * driver, root); without it each is unknown with the reason.
 *
 * @module
 */
import { type Json, known, unknown } from "../schema.ts";
import type { Props } from "./_io.ts";
import { nativeMsrRead } from "./_native.ts";

/** One MSR and how to decode it. */
interface MsrSpec {
  readonly name: string;
  readonly register: number;
  readonly vendor: "GenuineIntel" | "AuthenticAMD";
  readonly decode: (value: bigint) => Json;
}

const bit = (value: bigint, n: number) => ((value >> BigInt(n)) & 1n) === 1n;

/** MSRs read on cpu0, by vendor. */
export const MSRS: readonly MsrSpec[] = [
  {
    name: "intel.turbo_disabled",
    register: 0x1a0, // IA32_MISC_ENABLE, bit 38: turbo mode disable
    vendor: "GenuineIntel",
    decode: (v) => bit(v, 38),
  },
  {
    name: "intel.prefetchers_disabled",
    register: 0x1a4, // MSR_MISC_FEATURE_CONTROL: bits 0-3 disable the four prefetchers
    vendor: "GenuineIntel",
    decode: (v) =>
      ["l2_stream", "l2_adjacent_line", "l1_stream", "l1_ip"].filter((_, i) => bit(v, i)),
  },
  {
    name: "intel.energy_perf_bias",
    register: 0x1b0, // IA32_ENERGY_PERF_BIAS: 0 performance … 15 power saving
    vendor: "GenuineIntel",
    decode: (v) => Number(v & 0xfn),
  },
  {
    name: "amd.boost_disabled",
    register: 0xc0010015, // HWCR, bit 25: core performance boost disable
    vendor: "AuthenticAMD",
    decode: (v) => bit(v, 25),
  },
];

/**
 * MSR properties for a CPU vendor (`msr.<vendor>.<name>`, read on cpu0).
 *
 * @example
 * ```ts
 * (await collectMsr("GenuineIntel"))["msr.intel.turbo_disabled"]; // unknown(…, "no msr driver …")
 * ```
 */
export async function collectMsr(vendor: string | undefined): Promise<Props> {
  const specs = MSRS.filter((m) => vendor === undefined || m.vendor === vendor);
  const props: Props = {};
  if (specs.length === 0) {
    props["msr.supported"] = unknown("msr", `reliab reads no MSRs on "${vendor}" CPUs`);
    return props;
  }
  await Promise.all(specs.map(async (spec) => {
    const source = `msr:cpu0:0x${spec.register.toString(16)}`;
    const result = await nativeMsrRead(0, spec.register);
    const path = `msr.${spec.name}`;
    if (result.kind === "error") props[path] = unknown(source, result.reason);
    else if (result.value.kind === "unavailable") {
      props[path] = unknown(source, result.value.reason);
    } else props[path] = known(spec.decode(result.value.value), source);
  }));
  return props;
}
