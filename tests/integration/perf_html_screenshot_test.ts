/**
 * The HTML report renders in a real browser: two snapshots that differ (run
 * under `taskset -c 0` with OMP_NUM_THREADS set), `reliab perf diff --html`,
 * then headless Chromium takes a screenshot. Checks that the PNG is valid, as
 * wide as the window and not blank. The work directory (page and screenshot)
 * is kept and printed when the test fails.
 */
import { equal, ok as assert } from "node:assert/strict";
import { runOk, TEST_ENV } from "./_perf_cli.ts";

const CHROMIUM = "/usr/bin/chromium";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

const browser = await exists(CHROMIUM);

Deno.test({
  name: "diff --html renders in headless Chromium as a non-blank 1280-wide page",
  ignore: Deno.uid() !== 0 || !browser,
  fn: async () => {
    const work = await Deno.makeTempDir({ prefix: "reliab_perf_html_" });
    let ok = false;
    try {
      await runOk(["perf", "snapshot", "-o", "A.json", "--quiet"], { cwd: work, unset: TEST_ENV });
      await runOk(["perf", "snapshot", "-o", "B.json", "--quiet"], {
        cwd: work,
        prefix: ["taskset", "-c", "0"],
        env: { OMP_NUM_THREADS: "3" },
      });
      await runOk(["perf", "diff", "A.json", "B.json", "--html", "page.html"], { cwd: work });
      const page = `${work}/page.html`;
      const html = await Deno.readTextFile(page);
      assert(html.includes("process.affinity"), "the page lists the affinity difference");

      const png = `${work}/page.png`;
      const profile = await Deno.makeTempDir({ prefix: "reliab_chromium_", dir: work });
      const output = await new Deno.Command(CHROMIUM, {
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          `--user-data-dir=${profile}`,
          `--screenshot=${png}`,
          "--window-size=1280,2000",
          `file://${page}`,
        ],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(120_000),
      }).output();
      const log = new TextDecoder().decode(output.stderr);
      assert(await exists(png), `no screenshot written (chromium exit ${output.code}): ${log}`);

      const bytes = await Deno.readFile(png);
      const magic = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
      assert(magic.every((b, i) => bytes[i] === b), "PNG signature");
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      equal(new TextDecoder().decode(bytes.subarray(12, 16)), "IHDR");
      equal(view.getUint32(16), 1280, "width");
      equal(view.getUint32(20), 2000, "height");
      // A blank white 1280x2000 PNG compresses to a few KB; text, tables and
      // colour badges make it far larger.
      assert(bytes.length > 50_000, `screenshot looks blank: ${bytes.length} bytes`);
      ok = true;
    } finally {
      if (ok) await Deno.remove(work, { recursive: true });
      else console.error(`perf_html_screenshot_test: kept ${work} (page.html, page.png)`);
    }
  },
});
