/**
 * CPU identity and features from the CPUID instruction (through libreliab).
 * Under a hypervisor every CPUID traps (~3.7 µs here), so each leaf is read
 * once into a table and all properties are decoded from that table; the
 * decoding is pure and tested on register fixtures.
 *
 * Flag names follow /proc/cpuinfo, so `cpu.flags` (what the CPU reports)
 * and `cpu.kernel_flags` (what the kernel enabled) can be compared.
 *
 * @module
 */
import { cpuid, type CpuidRegisters } from "../../native.ts";
import { known, unknown } from "../schema.ts";
import { messageOf, type Props } from "./_io.ts";

/** CPUID leaves read, keyed `leaf.subleaf` (hex leaf). */
export type CpuidTable = ReadonlyMap<string, CpuidRegisters>;

/**
 * Key of a leaf in a `CpuidTable`.
 *
 * @example
 * ```ts
 * leafKey(0x80000001); // "0x80000001.0"
 * ```
 */
export function leafKey(leaf: number, subleaf = 0): string {
  return `0x${leaf.toString(16)}.${subleaf}`;
}

/** A leaf read with CPUID, or why not. */
export type CpuidRead =
  | { readonly kind: "ok"; readonly table: CpuidTable }
  | { readonly kind: "error"; readonly reason: string };

const STANDARD = [[1, 0], [7, 0], [7, 1], [0xd, 1], [0x15, 0], [0x16, 0]] as const;
const EXTENDED = [0x80000001, 0x80000002, 0x80000003, 0x80000004, 0x80000007, 0x80000008];

/**
 * Reads the leaves reliab decodes, each once, skipping those above the
 * maximum the CPU reports.
 *
 * @example
 * ```ts
 * const read = readCpuidTable();
 * if (read.kind === "ok") console.log(read.table.size);
 * ```
 */
export function readCpuidTable(
  query: (leaf: number, subleaf: number) => CpuidRegisters = cpuid,
): CpuidRead {
  if (Deno.build.arch !== "x86_64") {
    return { kind: "error", reason: `CPUID exists only on x86-64 (this is ${Deno.build.arch})` };
  }
  try {
    const table = new Map<string, CpuidRegisters>();
    const read = (leaf: number, subleaf = 0) =>
      table.set(leafKey(leaf, subleaf), query(leaf, subleaf));
    read(0);
    const maxLeaf = table.get(leafKey(0))!.eax;
    for (const [leaf, subleaf] of STANDARD) if (leaf <= maxLeaf) read(leaf, subleaf);
    read(0x80000000);
    const maxExtended = table.get(leafKey(0x80000000))!.eax >>> 0;
    for (const leaf of EXTENDED) if (leaf <= maxExtended) read(leaf);
    // The hypervisor range answers only when leaf 1 sets the hypervisor bit.
    if (((table.get(leafKey(1))?.ecx ?? 0) >>> 31) === 1) read(0x40000000);
    return { kind: "ok", table };
  } catch (error) {
    return { kind: "error", reason: `CPUID through libreliab failed: ${messageOf(error)}` };
  }
}

/**
 * Bit → flag name tables, per leaf register, in /proc/cpuinfo spelling:
 * `"bit:name bit:name …"` (one string each, so the table stays compact).
 */
const FLAG_TABLES: readonly (readonly [leaf: string, reg: keyof CpuidRegisters, bits: string])[] = [
  [
    "0x1.0",
    "edx",
    "0:fpu 1:vme 2:de 3:pse 4:tsc 5:msr 6:pae 7:mce 8:cx8 9:apic 11:sep 12:mtrr " +
    "13:pge 14:mca 15:cmov 16:pat 17:pse36 18:pn 19:clflush 21:dts 22:acpi 23:mmx " +
    "24:fxsr 25:sse 26:sse2 27:ss 28:ht 29:tm 30:ia64 31:pbe",
  ],
  [
    "0x1.0",
    "ecx",
    "0:pni 1:pclmulqdq 2:dtes64 3:monitor 4:ds_cpl 5:vmx 6:smx 7:est 8:tm2 9:ssse3 " +
    "10:cid 11:sdbg 12:fma 13:cx16 14:xtpr 15:pdcm 17:pcid 18:dca 19:sse4_1 20:sse4_2 " +
    "21:x2apic 22:movbe 23:popcnt 24:tsc_deadline_timer 25:aes 26:xsave 27:osxsave " +
    "28:avx 29:f16c 30:rdrand 31:hypervisor",
  ],
  [
    "0x7.0",
    "ebx",
    "0:fsgsbase 1:tsc_adjust 2:sgx 3:bmi1 4:hle 5:avx2 7:smep 8:bmi2 9:erms " +
    "10:invpcid 11:rtm 12:cqm 14:mpx 15:rdt_a 16:avx512f 17:avx512dq 18:rdseed 19:adx " +
    "20:smap 21:avx512ifma 23:clflushopt 24:clwb 25:intel_pt 26:avx512pf 27:avx512er " +
    "28:avx512cd 29:sha_ni 30:avx512bw 31:avx512vl",
  ],
  [
    "0x7.0",
    "ecx",
    "0:prefetchwt1 1:avx512vbmi 2:umip 3:pku 4:ospke 5:waitpkg 6:avx512_vbmi2 7:shstk " +
    "8:gfni 9:vaes 10:vpclmulqdq 11:avx512_vnni 12:avx512_bitalg 13:tme " +
    "14:avx512_vpopcntdq 16:la57 22:rdpid 24:bus_lock_detect 25:cldemote 27:movdiri " +
    "28:movdir64b 29:enqcmd 30:sgx_lc 31:pks",
  ],
  [
    "0x7.0",
    "edx",
    "2:avx512_4vnniw 3:avx512_4fmaps 4:fsrm 5:uintr 8:avx512_vp2intersect " +
    "9:srbds_ctrl 10:md_clear 11:rtm_always_abort 13:tsx_force_abort 14:serialize " +
    "15:hybrid_cpu 16:tsxldtrk 18:pconfig 19:arch_lbr 20:ibt 22:amx_bf16 " +
    "23:avx512_fp16 24:amx_tile 25:amx_int8 26:spec_ctrl 27:intel_stibp 28:flush_l1d " +
    "29:arch_capabilities 30:core_capabilities 31:spec_ctrl_ssbd",
  ],
  [
    "0x7.1",
    "eax",
    "4:avx_vnni 5:avx512_bf16 10:fzrm 11:fsrs 12:fsrc 23:avx_ifma 26:lam",
  ],
  [
    "0xd.1",
    "eax",
    "0:xsaveopt 1:xsavec 2:xgetbv1 3:xsaves",
  ],
  [
    "0x80000001.0",
    "ecx",
    "0:lahf_lm 1:cmp_legacy 2:svm 3:extapic 4:cr8_legacy 5:abm 6:sse4a 7:misalignsse " +
    "8:3dnowprefetch 9:osvw 10:ibs 11:xop 12:skinit 13:wdt 15:lwp 16:fma4 17:tce " +
    "19:nodeid_msr 21:tbm 22:topoext 23:perfctr_core 24:perfctr_nb 26:bpext 27:ptsc " +
    "28:perfctr_llc 29:mwaitx",
  ],
  [
    "0x80000001.0",
    "edx",
    "11:syscall 19:mp 20:nx 22:mmxext 25:fxsr_opt 26:pdpe1gb 27:rdtscp 29:lm " +
    "30:3dnowext 31:3dnow",
  ],
  [
    "0x80000008.0",
    "ebx",
    "0:clzero 1:irperf 2:xsaveerptr 4:rdpru 9:wbnoinvd",
  ],
];

/**
 * The feature flags set in a CPUID table, sorted.
 *
 * @example
 * ```ts
 * cpuidFlags(new Map([["0x1.0", { eax: 0, ebx: 0, ecx: 1 << 28, edx: 1 }]])); // ["avx", "fpu"]
 * ```
 */
export function cpuidFlags(table: CpuidTable): string[] {
  const flags = new Set<string>();
  for (const [leaf, reg, bits] of FLAG_TABLES) {
    const regs = table.get(leaf);
    if (regs === undefined) continue;
    for (const pair of bits.split(" ")) {
      const [bit, name] = pair.split(":") as [string, string];
      if (((regs[reg] >>> Number(bit)) & 1) === 1) flags.add(name);
    }
  }
  return [...flags].sort();
}

/** Four little-endian registers as ASCII. */
function ascii(...words: number[]): string {
  const bytes = new Uint8Array(new Uint32Array(words.map((w) => w >>> 0)).buffer);
  return new TextDecoder().decode(bytes).replace(/\0+$/g, "").replace(/\0/g, "");
}

/**
 * Family, model and stepping from leaf 1 EAX, with the extended fields
 * applied the way Intel and AMD document them.
 *
 * @example
 * ```ts
 * decodeSignature(0x00a00f11); // { family: 25, model: 1, stepping: 1 }
 * ```
 */
export function decodeSignature(eax: number): { family: number; model: number; stepping: number } {
  const stepping = eax & 0xf;
  const baseModel = (eax >>> 4) & 0xf;
  const baseFamily = (eax >>> 8) & 0xf;
  const extModel = (eax >>> 16) & 0xf;
  const extFamily = (eax >>> 20) & 0xff;
  const family = baseFamily === 0xf ? baseFamily + extFamily : baseFamily;
  const model = baseFamily === 0xf || baseFamily === 0x6 ? (extModel << 4) + baseModel : baseModel;
  return { family, model, stepping };
}

/**
 * The hypervisor vendor id of leaf 0x40000000 (`KVMKVMKVM`, `VMwareVMware`,
 * `Microsoft Hv`, …), or undefined when the leaf was not read.
 *
 * @example
 * ```ts
 * hypervisorVendor(table); // "KVMKVMKVM"
 * ```
 */
export function hypervisorVendor(table: CpuidTable): string | undefined {
  const regs = table.get(leafKey(0x40000000));
  return regs === undefined ? undefined : ascii(regs.ebx, regs.ecx, regs.edx);
}

/**
 * Properties decoded from a CPUID table.
 *
 * @example
 * ```ts
 * const read = readCpuidTable();
 * if (read.kind === "ok") decodeCpuid(read.table)["cpu.vendor"];
 * ```
 */
export function decodeCpuid(table: CpuidTable): Props {
  const props: Props = {};
  const at = (leaf: number, subleaf = 0) => table.get(leafKey(leaf, subleaf));
  const src = (leaf: number, subleaf = 0) => `cpuid:${leafKey(leaf, subleaf)}`;
  const missing = (leaf: number) =>
    unknown(
      src(leaf),
      `CPUID leaf ${leafKey(leaf).slice(0, -2)} is above the highest leaf this CPU reports`,
    );

  const l0 = at(0)!;
  props["cpu.vendor"] = known(ascii(l0.ebx, l0.edx, l0.ecx), src(0));
  props["cpu.max_leaf"] = known(l0.eax >>> 0, src(0));
  props["cpu.max_extended_leaf"] = known(at(0x80000000)!.eax >>> 0, src(0x80000000));

  const l1 = at(1);
  if (l1 === undefined) {
    for (const p of ["cpu.family", "cpu.model", "cpu.stepping", "cpu.signature"]) {
      props[p] = missing(1);
    }
  } else {
    const sig = decodeSignature(l1.eax);
    props["cpu.family"] = known(sig.family, src(1));
    props["cpu.model"] = known(sig.model, src(1));
    props["cpu.stepping"] = known(sig.stepping, src(1));
    props["cpu.signature"] = known(`0x${(l1.eax >>> 0).toString(16).padStart(8, "0")}`, src(1));
    props["cpu.clflush_line_bytes"] = known(((l1.ebx >>> 8) & 0xff) * 8, src(1));
  }

  const brand = [0x80000002, 0x80000003, 0x80000004].map((leaf) => at(leaf));
  props["cpu.model_name"] = brand.every((r) => r !== undefined)
    ? known(
      ascii(...brand.flatMap((r) => [r!.eax, r!.ebx, r!.ecx, r!.edx])).trim().replace(/\s+/g, " "),
      "cpuid:0x80000002-0x80000004",
    )
    : missing(0x80000002);

  props["cpu.flags"] = known(cpuidFlags(table), "cpuid:0x1,0x7,0xd.1,0x80000001,0x80000008");
  const l7 = at(7);
  props["cpu.hybrid"] = l7 === undefined ? missing(7) : known(((l7.edx >>> 15) & 1) === 1, src(7));

  const l87 = at(0x80000007);
  props["cpu.tsc.invariant"] = l87 === undefined
    ? missing(0x80000007)
    : known(((l87.edx >>> 8) & 1) === 1, src(0x80000007));

  props["cpu.tsc.khz"] = tscKhz(at(0x15), src(0x15)) ?? missing(0x15);
  const l16 = at(0x16);
  if (l16 === undefined) {
    props["cpu.nominal.base_khz"] = missing(0x16);
    props["cpu.nominal.max_khz"] = missing(0x16);
  } else if ((l16.eax & 0xffff) === 0) {
    const why =
      "CPUID leaf 0x16 reports no frequencies (AMD CPUs and most hypervisors leave it zero)";
    props["cpu.nominal.base_khz"] = unknown(src(0x16), why);
    props["cpu.nominal.max_khz"] = unknown(src(0x16), why);
  } else {
    props["cpu.nominal.base_khz"] = known((l16.eax & 0xffff) * 1000, src(0x16));
    props["cpu.nominal.max_khz"] = known((l16.ebx & 0xffff) * 1000, src(0x16));
  }

  const l88 = at(0x80000008);
  if (l88 === undefined) {
    props["cpu.address_bits.physical"] = missing(0x80000008);
    props["cpu.address_bits.virtual"] = missing(0x80000008);
  } else {
    props["cpu.address_bits.physical"] = known(l88.eax & 0xff, src(0x80000008));
    props["cpu.address_bits.virtual"] = known((l88.eax >>> 8) & 0xff, src(0x80000008));
  }
  return props;
}

/** TSC frequency from leaf 0x15: crystal Hz × EBX / EAX, when the CPU reports all three. */
function tscKhz(regs: CpuidRegisters | undefined, source: string) {
  if (regs === undefined) return undefined;
  if (regs.eax === 0 || regs.ebx === 0 || regs.ecx === 0) {
    return unknown(
      source,
      "CPUID leaf 0x15 reports no TSC/crystal ratio (AMD CPUs and most hypervisors leave it zero)",
    );
  }
  return known(Math.round((regs.ecx * regs.ebx) / regs.eax / 1000), source);
}

/** Paths `collectCpuid` produces, so a failed CPUID marks each unknown. */
export const CPUID_PATHS = [
  "cpu.vendor",
  "cpu.max_leaf",
  "cpu.max_extended_leaf",
  "cpu.family",
  "cpu.model",
  "cpu.stepping",
  "cpu.signature",
  "cpu.model_name",
  "cpu.flags",
  "cpu.hybrid",
  "cpu.tsc.invariant",
  "cpu.tsc.khz",
] as const;

/**
 * The CPUID properties, from a table read once by the caller.
 *
 * @example
 * ```ts
 * const props = collectCpuid(readCpuidTable());
 * ```
 */
export function collectCpuid(read: CpuidRead): Props {
  if (read.kind === "ok") return decodeCpuid(read.table);
  const props: Props = {};
  for (const path of CPUID_PATHS) props[path] = unknown("cpuid", read.reason);
  return props;
}
