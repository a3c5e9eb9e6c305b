// CLI conventions every command shares: help, usage errors (exit 2), user
// errors as one line plus a hint (exit 1), no stack traces, atomic outputs
// that are never replaced without --force.
import assert from "node:assert/strict";
import { isCleanError, runCli } from "../_support/cli.ts";

Deno.test("no arguments prints help and exits 2; --help exits 0; --version prints it", async () => {
  const none = await runCli([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout, /Usage: reliab <tool>/);
  const help = await runCli(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Exit codes/);
  const version = await runCli(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^reliab \d+\.\d+\.\d+/);
});

Deno.test("an unknown tool, command or option is a usage error with a hint", async () => {
  for (
    const args of [["bogus"], ["perf", "bogus"], ["perf", "snapshot", "--bogus"], [
      "perf",
      "show",
    ], ["perf", "check", "a.json", "--fail-on", "severe"]]
  ) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.ok(isCleanError(r.stderr), `${args.join(" ")}: ${r.stderr}`);
  }
});

Deno.test("every perf command has --help", async () => {
  for (const command of ["snapshot", "show", "diff", "check"]) {
    const r = await runCli(["perf", command, "--help"]);
    assert.equal(r.code, 0, command);
    assert.match(r.stdout, new RegExp(`Usage: reliab perf ${command}`));
  }
});

Deno.test("snapshot never replaces a file without --force, and replaces it atomically with it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/host.json`;
    await Deno.writeTextFile(path, "precious");
    const refused = await runCli(["perf", "snapshot", "-o", path]);
    assert.equal(refused.code, 1);
    assert.ok(isCleanError(refused.stderr), refused.stderr);
    assert.match(refused.stderr, /--force/);
    assert.equal(await Deno.readTextFile(path), "precious");
    const forced = await runCli(["perf", "snapshot", "-o", path, "--force", "--json"]);
    assert.equal(forced.code, 0, forced.stderr);
    const summary = JSON.parse(forced.stdout);
    assert.equal(summary.path, path);
    assert.match(summary.hash, /^sha256:[0-9a-f]{64}$/);
    assert.equal(JSON.parse(await Deno.readTextFile(path)).hash, summary.hash);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(names, ["host.json"], "no temporary file left");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("snapshot into a missing folder fails cleanly", async () => {
  const r = await runCli(["perf", "snapshot", "-o", "/nonexistent-dir/x/host.json"]);
  assert.equal(r.code, 1);
  assert.ok(isCleanError(r.stderr), r.stderr);
  assert.match(
    r.stderr,
    /Cannot write "\/nonexistent-dir\/x\/host.json": folder "\/nonexistent-dir\/x" does not exist/,
  );
});
