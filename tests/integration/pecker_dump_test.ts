// `pecker dump PID` copies the live trace of a process that is still
// running, including the input it has read so far, without stopping it.
import assert from "node:assert/strict";
import { isCleanError, LAUNCHER, runCli } from "../_support/cli.ts";
import { readTrace } from "../../lib/pecker/mod.ts";

async function childOf(parent: number, name: string): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const out = await new Deno.Command("pgrep", { args: ["-P", String(parent), "-x", name] })
      .output();
    const pid = Number(new TextDecoder().decode(out.stdout).trim().split("\n")[0]);
    if (pid > 0) return pid;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no ${name} child of ${parent}`);
}

Deno.test("dump writes the live trace of a running recorded process", async () => {
  const dir = await Deno.makeTempDir();
  const recorder = new Deno.Command(LAUNCHER, {
    args: ["pecker", "record", "--keep", "-o", `${dir}/live.trace`, "--", "cat"],
    cwd: dir,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = recorder.stdin.getWriter();
  try {
    await writer.write(new TextEncoder().encode("first line of input\n"));
    const cat = await childOf(recorder.pid, "cat");
    // Wait until cat has echoed the line, so its read() is in the trace.
    const reader = recorder.stdout.getReader();
    await reader.read();
    reader.releaseLock();
    const r = await runCli(["pecker", "dump", String(cat), "-o", `${dir}/now.trace`, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.pid, cat);
    assert.ok(summary.events >= 1);
    const trace = await readTrace(`${dir}/now.trace`);
    assert.equal(trace.exit, null, "the process is still running");
    const bytes = await Deno.readFile(`${dir}/now.trace`);
    assert.ok(new TextDecoder().decode(bytes).includes("first line of input"));
    assert.equal((await Deno.stat(`${dir}/now.trace`)).mode! & 0o777, 0o600);
    assert.equal(await Deno.readTextFile(`/proc/${cat}/comm`), "cat\n", "still running");
  } finally {
    await writer.close().catch(() => {});
    await recorder.output().catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dump of a process that is not recorded, or gone, fails cleanly", async () => {
  const notRecorded = await runCli(["pecker", "dump", String(Deno.pid), "-o", "/tmp/never.trace"]);
  assert.equal(notRecorded.code, 1);
  assert.ok(isCleanError(notRecorded.stderr), notRecorded.stderr);
  assert.match(notRecorded.stderr, /not recorded by reliab pecker/);
  const gone = await runCli(["pecker", "dump", "999999999", "-o", "/tmp/never.trace"]);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no such process/);
  const bad = await runCli(["pecker", "dump", "12ab"]);
  assert.equal(bad.code, 2);
  await assert.rejects(Deno.stat("/tmp/never.trace"));
});
