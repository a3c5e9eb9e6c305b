/**
 * Virtualization and containers, in the manner of systemd-detect-virt:
 * the CPUID hypervisor leaf first (it cannot be faked from inside the
 * guest), then /sys/hypervisor and DMI; containers from their markers
 * (/.dockerenv, /run/.containerenv, PID 1's environment and cgroup, WSL's
 * kernel name).
 *
 * @module
 */
import { known, type Property, unknown } from "../schema.ts";
import { type Props, readText } from "./_io.ts";
import { type CpuidRead, hypervisorVendor, leafKey } from "./cpu.ts";

/** CPUID hypervisor vendor ids → systemd-detect-virt names. */
const HYPERVISORS: Record<string, string> = {
  KVMKVMKVM: "kvm",
  "Linux KVM Hv": "kvm",
  "Microsoft Hv": "microsoft",
  VMwareVMware: "vmware",
  XenVMMXenVMM: "xen",
  TCGTCGTCGTCG: "qemu",
  "bhyve bhyve": "bhyve",
  ACRNACRNACRN: "acrn",
  VBoxVBoxVBox: "oracle",
  " lrpepyh  vr": "parallels",
  "QNXQVMBSQG": "qnx",
  "SRESRESRESRE": "sre",
  "Apple VZ": "apple",
};

/** DMI sys_vendor/product substrings → hypervisor names. */
const DMI_VIRT: readonly (readonly [RegExp, string])[] = [
  [/QEMU/i, "qemu"],
  [/KVM/i, "kvm"],
  [/Amazon EC2/i, "amazon"],
  [/VMware/i, "vmware"],
  [/innotek|VirtualBox/i, "oracle"],
  [/Xen/i, "xen"],
  [/Bochs/i, "bochs"],
  [/Parallels/i, "parallels"],
  [/Google Compute Engine/i, "google"],
  [/Microsoft Corporation.*Virtual Machine/i, "microsoft"],
];

/**
 * The hypervisor name of a CPUID vendor id.
 *
 * @example
 * ```ts
 * hypervisorName("KVMKVMKVM"); // "kvm"
 * ```
 */
export function hypervisorName(vendorId: string): string {
  return HYPERVISORS[vendorId] ?? HYPERVISORS[vendorId.trim()] ?? `other (${vendorId.trim()})`;
}

/**
 * The container a process runs in, from its markers.
 *
 * @example
 * ```ts
 * detectContainer({ dockerenv: true }); // "docker"
 * ```
 */
export function detectContainer(markers: {
  readonly pid1Container?: string;
  readonly systemdContainer?: string;
  readonly dockerenv?: boolean;
  readonly containerenv?: boolean;
  readonly pid1Cgroup?: string;
  readonly osrelease?: string;
  readonly kubernetes?: boolean;
}): string {
  const named = markers.pid1Container ?? markers.systemdContainer;
  if (named !== undefined && named !== "") return named === "oci" ? "container-other" : named;
  if (markers.kubernetes) return "kubernetes";
  if (markers.containerenv) return "podman";
  if (markers.dockerenv) return "docker";
  const cgroup = markers.pid1Cgroup ?? "";
  if (/kubepods/.test(cgroup)) return "kubernetes";
  if (/\/docker[/-]/.test(cgroup)) return "docker";
  if (/libpod/.test(cgroup)) return "podman";
  if (/\/lxc[./]/.test(cgroup)) return "lxc";
  if (/microsoft|WSL/i.test(markers.osrelease ?? "")) return "wsl";
  return "none";
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Virtualization properties (`virtualization.*`).
 *
 * @example
 * ```ts
 * (await collectVirtualization(readCpuidTable()))["virtualization.hypervisor"]; // known("kvm", "cpuid:0x40000000.0")
 * ```
 */
export async function collectVirtualization(cpuid: CpuidRead): Promise<Props> {
  const [
    hypervisorType,
    sysVendor,
    productName,
    pid1Env,
    systemdContainer,
    pid1Cgroup,
    osrelease,
    dockerenv,
    containerenv,
  ] = await Promise.all([
    readText("/sys/hypervisor/type"),
    readText("/sys/class/dmi/id/sys_vendor"),
    readText("/sys/class/dmi/id/product_name"),
    readText("/proc/1/environ"),
    readText("/run/systemd/container"),
    readText("/proc/1/cgroup"),
    readText("/proc/sys/kernel/osrelease"),
    exists("/.dockerenv"),
    exists("/run/.containerenv"),
  ]);
  const props: Props = {};
  let hypervisor: Property;
  if (cpuid.kind === "ok") {
    const bitSet = (((cpuid.table.get(leafKey(1))?.ecx ?? 0) >>> 31) & 1) === 1;
    props["virtualization.cpuid_hypervisor_bit"] = known(bitSet, "cpuid:0x1.0");
    const vendor = hypervisorVendor(cpuid.table);
    props["virtualization.cpuid_vendor"] = vendor === undefined
      ? known("none", "cpuid:0x1.0")
      : known(vendor, "cpuid:0x40000000.0");
    hypervisor = vendor === undefined
      ? known("none", "cpuid:0x1.0")
      : known(hypervisorName(vendor), "cpuid:0x40000000.0");
  } else {
    hypervisor = unknown("cpuid:0x40000000", cpuid.reason);
  }
  // A hypervisor that hides the CPUID bit still shows in /sys/hypervisor or DMI.
  if (hypervisor.status !== "ok" || hypervisor.value === "none") {
    if (hypervisorType.kind === "ok" && hypervisorType.text.trim() !== "") {
      hypervisor = known(hypervisorType.text.trim(), "/sys/hypervisor/type");
    } else {
      const dmi = `${sysVendor.kind === "ok" ? sysVendor.text.trim() : ""} ${
        productName.kind === "ok" ? productName.text.trim() : ""
      }`;
      const hit = DMI_VIRT.find(([pattern]) => pattern.test(dmi));
      if (hit !== undefined) hypervisor = known(hit[1], "/sys/class/dmi/id/sys_vendor");
    }
  }
  props["virtualization.hypervisor"] = hypervisor;
  props["virtualization.type"] = hypervisor.status === "ok"
    ? known(hypervisor.value === "none" ? "bare-metal" : "virtual-machine", hypervisor.source)
    : hypervisor;

  const pid1Container = pid1Env.kind === "ok"
    ? pid1Env.text.split("\0").find((e) => e.startsWith("container="))?.slice("container=".length)
    : undefined;
  const markers: string[] = [];
  if (pid1Container !== undefined) markers.push(`/proc/1/environ:container=${pid1Container}`);
  if (systemdContainer.kind === "ok") markers.push("/run/systemd/container");
  if (dockerenv) markers.push("/.dockerenv");
  if (containerenv) markers.push("/run/.containerenv");
  const kubernetes = Deno.env.get("KUBERNETES_SERVICE_HOST") !== undefined;
  if (kubernetes) markers.push("env:KUBERNETES_SERVICE_HOST");
  const container = detectContainer({
    ...(pid1Container === undefined ? {} : { pid1Container }),
    ...(systemdContainer.kind === "ok" ? { systemdContainer: systemdContainer.text.trim() } : {}),
    dockerenv,
    containerenv,
    ...(pid1Cgroup.kind === "ok" ? { pid1Cgroup: pid1Cgroup.text } : {}),
    ...(osrelease.kind === "ok" ? { osrelease: osrelease.text } : {}),
    kubernetes,
  });
  props["virtualization.container"] = pid1Env.kind === "error" && container === "none"
    ? unknown("/proc/1/environ", `${pid1Env.reason}; no other container marker found`)
    : known(container, "/proc/1/environ,/.dockerenv,/run/.containerenv,/proc/1/cgroup");
  props["virtualization.container_markers"] = known(markers.sort(), "filesystem markers");
  return props;
}
