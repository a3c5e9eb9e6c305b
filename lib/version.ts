/** reliab's version, shown by `--version` and written into every snapshot. */
export const VERSION = "0.1.0";
