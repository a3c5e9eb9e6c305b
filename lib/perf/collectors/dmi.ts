/**
 * Firmware (DMI/SMBIOS) identity from /sys/class/dmi/id: vendor, product,
 * board, BIOS. Serial numbers and UUIDs are readable only by root and are
 * redacted by default.
 *
 * @module
 */
import { type Props, readAll } from "./_io.ts";

const DIR = "/sys/class/dmi/id";

/** DMI files recorded. */
export const DMI_FILES = [
  "sys_vendor",
  "product_name",
  "product_version",
  "product_family",
  "product_sku",
  "product_serial",
  "product_uuid",
  "board_vendor",
  "board_name",
  "board_version",
  "board_serial",
  "board_asset_tag",
  "bios_vendor",
  "bios_version",
  "bios_date",
  "bios_release",
  "chassis_type",
  "chassis_vendor",
  "chassis_serial",
  "chassis_asset_tag",
] as const;

/**
 * DMI properties (`dmi.<file>`).
 *
 * @example
 * ```ts
 * (await collectDmi())["dmi.sys_vendor"]; // known("QEMU", "/sys/class/dmi/id/sys_vendor")
 * ```
 */
export async function collectDmi(): Promise<Props> {
  return await readAll(
    Object.fromEntries(
      DMI_FILES.map((f) => [`dmi.${f}`, [`${DIR}/${f}`, (t: string) => t.trim()]]),
    ),
    {
      missing:
        "the firmware provides no DMI tables (usual in microVMs such as Firecracker, and on many ARM boards)",
    },
  );
}
