/**
 * Transparent huge pages (global and per size), khugepaged and KSM from
 * /sys/kernel/mm. Choice files (`always [madvise] never`) are stored as the
 * selected value.
 *
 * @module
 */
import { type Json, unknown } from "../schema.ts";
import { listDir, parseBool, parseSelected, type Props, readAll } from "./_io.ts";

const THP = "/sys/kernel/mm/transparent_hugepage";
const KSM = "/sys/kernel/mm/ksm";

/** KSM `run` values. */
const KSM_RUN: Record<string, string> = { "0": "stopped", "1": "running", "2": "unmerging" };

/**
 * THP, khugepaged and KSM properties.
 *
 * @example
 * ```ts
 * (await collectThp())["thp.enabled"]; // known("madvise", …)
 * ```
 */
export async function collectThp(): Promise<Props> {
  const sizes = await listDir(THP, {
    missing: "the kernel was built without transparent huge pages",
  });
  const files: Record<
    string,
    readonly [string, ((t: string) => Json | undefined)?]
  > = {
    "thp.enabled": [`${THP}/enabled`, parseSelected],
    "thp.defrag": [`${THP}/defrag`, parseSelected],
    "thp.shmem_enabled": [`${THP}/shmem_enabled`, parseSelected],
    "thp.use_zero_page": [`${THP}/use_zero_page`, parseBool],
    "thp.hpage_pmd_size_bytes": [`${THP}/hpage_pmd_size`],
    "thp.khugepaged.defrag": [`${THP}/khugepaged/defrag`, parseBool],
    "thp.khugepaged.pages_to_scan": [`${THP}/khugepaged/pages_to_scan`],
    "thp.khugepaged.scan_sleep_ms": [`${THP}/khugepaged/scan_sleep_millisecs`],
    "thp.khugepaged.alloc_sleep_ms": [`${THP}/khugepaged/alloc_sleep_millisecs`],
    "thp.khugepaged.max_ptes_none": [`${THP}/khugepaged/max_ptes_none`],
    "ksm.run": [`${KSM}/run`, (t) => KSM_RUN[t.trim()]],
    "ksm.pages_to_scan": [`${KSM}/pages_to_scan`],
    "ksm.sleep_ms": [`${KSM}/sleep_millisecs`],
    "ksm.merge_across_nodes": [`${KSM}/merge_across_nodes`, parseBool],
    "ksm.use_zero_pages": [`${KSM}/use_zero_pages`, parseBool],
    "ksm.pages_shared": [`${KSM}/pages_shared`],
    "ksm.pages_sharing": [`${KSM}/pages_sharing`],
  };
  // Multi-size THP (6.8+): each size has its own policy, "inherit" meaning the global one.
  if (sizes.kind === "ok") {
    for (const name of sizes.names) {
      const m = /^hugepages-(\d+)kB$/.exec(name);
      if (m) files[`thp.sizes.${m[1]}kb.enabled`] = [`${THP}/${name}/enabled`, parseSelected];
    }
  }
  const props = await readAll(files, { missing: "not supported by this kernel" });
  if (sizes.kind === "error") props["thp.enabled"] = unknown(`${THP}/enabled`, sizes.reason);
  return props;
}
