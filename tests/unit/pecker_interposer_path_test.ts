// The compiled `reliab` embeds the pecker recorder beside libreliab.so and
// extracts it by content hash (LD_PRELOAD needs a real file): the include
// list names it, and an extracted copy records like the built one.
import assert from "node:assert/strict";
import { compileArgs, EMBEDDED_FILES, INTERPOSER_LIB } from "../../tools/compile.ts";
import { extractInterposer, INTERPOSER_NAME } from "../../lib/pecker/interposer_path.ts";
import { parseTrace } from "../../lib/pecker/trace_file.ts";

Deno.test("compile embeds the pecker recorder next to the native library", () => {
  const args = compileArgs("dist/reliab");
  const included = args.flatMap((arg, at) => arg === "--include" ? [args[at + 1]] : []);
  assert.deepEqual(included, [...EMBEDDED_FILES]);
  assert.ok(included.includes(INTERPOSER_LIB));
  assert.ok(INTERPOSER_LIB.endsWith(`/${INTERPOSER_NAME}`));
  assert.ok(Deno.statSync(new URL(`../../${INTERPOSER_LIB}`, import.meta.url)).isFile);
});

Deno.test("the extracted recorder is keyed by content and records a program", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = extractInterposer(dir);
    assert.match(path, /\/lib-[0-9a-f]{16}\/libreliab_interpose\.so$/);
    const built = Deno.readFileSync(new URL(`../../${INTERPOSER_LIB}`, import.meta.url));
    assert.deepEqual(Deno.readFileSync(path), built);
    const mtime = Deno.statSync(path).mtime;
    assert.equal(extractInterposer(dir), path, "same content, same path");
    assert.deepEqual(Deno.statSync(path).mtime, mtime, "not rewritten");

    const trace = `${dir}/head.trace`;
    const run = await new Deno.Command("head", {
      args: ["-c", "5"],
      env: { LD_PRELOAD: path, RELIAB_PECKER_MODE: "record", RELIAB_PECKER_TRACE: trace },
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const writer = run.stdin.getWriter();
    await writer.write(new TextEncoder().encode("hello world"));
    await writer.close();
    assert.equal((await run.output()).code, 0);
    const recorded = parseTrace(await Deno.readFile(trace));
    assert.equal(recorded.exe, "/usr/bin/head");
    assert.ok(recorded.events.some((e) => e.kind === "read" && e.result > 0n));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
