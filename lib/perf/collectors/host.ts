/**
 * Host identity: host name, machine and boot ids, network addresses and
 * interface MACs. All identifying, all redacted by default; recorded so two
 * snapshots of one host can be recognized as such.
 *
 * @module
 */
import { known, unknown } from "../schema.ts";
import { messageOf, type Props, readAll } from "./_io.ts";

/**
 * Host properties (`host.*`).
 *
 * @example
 * ```ts
 * (await collectHost())["host.hostname"]; // known("myhost", "syscall:gethostname")
 * ```
 */
export async function collectHost(): Promise<Props> {
  const props = await readAll({
    "host.domainname": ["/proc/sys/kernel/domainname", (t) => t.trim()],
    "host.machine_id": ["/etc/machine-id", (t) => t.trim()],
    "host.boot_id": ["/proc/sys/kernel/random/boot_id", (t) => t.trim()],
  }, { missing: "not present on this system" });
  try {
    props["host.hostname"] = known(Deno.hostname(), "syscall:gethostname");
  } catch (error) {
    props["host.hostname"] = unknown("syscall:gethostname", messageOf(error));
  }
  try {
    const interfaces = Deno.networkInterfaces().filter((i) =>
      !i.address.startsWith("127.") && i.address !== "::1"
    );
    props["host.addresses"] = known(
      [...new Set(interfaces.map((i) => i.address))].sort(),
      "syscall:getifaddrs",
    );
    for (const name of [...new Set(interfaces.map((i) => i.name))].sort()) {
      const mac = interfaces.find((i) => i.name === name)?.mac;
      if (mac !== undefined && mac !== "00:00:00:00:00:00") {
        props[`host.interfaces.${name.replaceAll(".", "_")}.mac`] = known(
          mac,
          "syscall:getifaddrs",
        );
      }
    }
  } catch (error) {
    props["host.addresses"] = unknown("syscall:getifaddrs", messageOf(error));
  }
  return props;
}
