/**
 * Block devices (queue scheduler, rotational, read-ahead, request queue
 * depth, size) and the root file system type. Loop and RAM devices are
 * skipped: they do not hold benchmark data.
 *
 * @module
 */
import { type Json, known, unknown } from "../schema.ts";
import { listDir, parseBool, parseSelected, type Props, readAll, readText } from "./_io.ts";

/**
 * The file system type and options of a mount point from /proc/self/mountinfo.
 *
 * @example
 * ```ts
 * rootMount("22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n", "/"); // { fstype: "ext4", options: "rw,relatime" }
 * ```
 */
export function rootMount(
  mountinfo: string,
  mountPoint: string,
): { fstype: string; options: string } | undefined {
  let found: { fstype: string; options: string } | undefined;
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (left === undefined || right === undefined) continue;
    const fields = left.split(" ");
    // The last mount on a point wins (it hides the earlier ones).
    if (fields[4] === mountPoint) {
      found = { fstype: right.split(" ")[0]!, options: fields[5] ?? "" };
    }
  }
  return found;
}

/**
 * Storage properties (`storage.<device>.*`, `storage.root.*`).
 *
 * @example
 * ```ts
 * (await collectStorage())["storage.vda.scheduler"]; // known("mq-deadline", …)
 * ```
 */
export async function collectStorage(): Promise<Props> {
  const [listing, mountinfo] = await Promise.all([
    listDir("/sys/block"),
    readText("/proc/self/mountinfo"),
  ]);
  const props: Props = {};
  if (mountinfo.kind === "ok") {
    const root = rootMount(mountinfo.text, "/");
    props["storage.root.fstype"] = root === undefined
      ? unknown("/proc/self/mountinfo", "no mount for /")
      : known(root.fstype, "/proc/self/mountinfo");
    if (root !== undefined) {
      props["storage.root.options"] = known(root.options, "/proc/self/mountinfo");
    }
  } else {
    props["storage.root.fstype"] = unknown("/proc/self/mountinfo", mountinfo.reason);
  }
  if (listing.kind === "error") {
    props["storage.devices"] = unknown("/sys/block", listing.reason);
    return props;
  }
  const devices = listing.names.filter((n) => !/^(loop|ram)\d+$/.test(n));
  props["storage.devices"] = known(devices, "/sys/block");
  const files: Record<
    string,
    readonly [string, ((t: string) => Json | undefined)?]
  > = {};
  for (const dev of devices) {
    const q = `/sys/block/${dev}/queue`;
    files[`storage.${dev}.scheduler`] = [`${q}/scheduler`, parseSelected];
    files[`storage.${dev}.rotational`] = [`${q}/rotational`, parseBool];
    files[`storage.${dev}.read_ahead_kb`] = [`${q}/read_ahead_kb`];
    files[`storage.${dev}.nr_requests`] = [`${q}/nr_requests`];
    files[`storage.${dev}.max_sectors_kb`] = [`${q}/max_sectors_kb`];
    files[`storage.${dev}.size_bytes`] = [`/sys/block/${dev}/size`, (t) => Number(t.trim()) * 512];
  }
  return { ...props, ...await readAll(files, { missing: "the device does not expose it" }) };
}
