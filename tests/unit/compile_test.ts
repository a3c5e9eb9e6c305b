// What can be tested of `deno task compile` without denort (which the
// registries reachable here do not carry): the include list, the refusal
// without a runtime, the smoke test that rejects a wrong runtime, and that a
// failed build leaves nothing behind.
import assert from "node:assert/strict";
import { compileArgs, NATIVE_LIB, PERMISSIONS } from "../../tools/compile.ts";

const root = new URL("../../", import.meta.url).pathname;

async function compile(env: Record<string, string>, output: string) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "tools/compile.ts", "--output", output],
    cwd: root,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("compile embeds the native library and scopes nothing away from the CLI", () => {
  const args = compileArgs("dist/reliab");
  const include = args.indexOf("--include");
  assert.ok(include > 0);
  assert.equal(args[include + 1], NATIVE_LIB);
  assert.equal(args.at(-1), "cli/main.ts");
  for (const p of PERMISSIONS) assert.ok(args.includes(p), p);
  const launcher = Deno.readTextFileSync(`${root}/reliab`);
  for (const p of PERMISSIONS) assert.ok(launcher.includes(p), `launcher grants ${p}`);
});

Deno.test("compile without denort fails with one clear line and writes nothing", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const r = await compile({ DENO_DIR: `${dir}/empty-deno-dir`, DENORT_BIN: "" }, `${dir}/reliab`);
    // An empty DENORT_BIN counts as "set to a path that does not exist".
    assert.equal(r.code, 1);
    assert.match(r.stderr, /reliab compile: error: DENORT_BIN "" does not exist/);
    const env = { DENO_DIR: `${dir}/empty-deno-dir` };
    const unset = await new Deno.Command("env", {
      args: [
        "-u",
        "DENORT_BIN",
        Deno.execPath(),
        "run",
        "--allow-all",
        "tools/compile.ts",
        "--output",
        `${dir}/reliab`,
      ],
      cwd: root,
      env,
      stderr: "piped",
    }).output();
    assert.equal(unset.code, 1);
    const stderr = new TextDecoder().decode(unset.stderr);
    assert.match(stderr, /needs the denort runtime/);
    assert.match(stderr, /hint: set DENORT_BIN/);
    assert.doesNotMatch(stderr, /at .*\.ts:\d+/, "no stack trace");
    assert.deepEqual(
      [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n !== "empty-deno-dir"),
      [],
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("compile rejects a runtime that is not denort and leaves no executable", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    // The deno binary itself ignores an appended payload: the smoke test must catch it.
    const r = await compile({ DENORT_BIN: Deno.execPath() }, `${dir}/reliab`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /did not start reliab/);
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
