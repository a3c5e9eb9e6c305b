import assert from "node:assert/strict";
import { ReliabError } from "../errors.ts";
import { checkDemoOptions, DEMO_LAB_NAME, untilAborted } from "./demo.ts";

Deno.test("demo options default to 64 connections, 2 nodes, sigkill, its own lab", () => {
  const o = checkDemoOptions();
  assert.equal(o.connections, 64);
  assert.equal(o.nodes, 2);
  assert.equal(o.kill, "sigkill");
  assert.equal(o.name, DEMO_LAB_NAME);
  // Never the user's default lab.
  assert.notEqual(o.name, "rlha");
  assert.equal(checkDemoOptions({ kill: "link", nodes: 3 }).kill, "link");
});

Deno.test("demo options out of range are refused", () => {
  const bad = (options: Parameters<typeof checkDemoOptions>[0]) => () => checkDemoOptions(options);
  assert.throws(bad({ nodes: 1 }), /node count "1"/);
  assert.throws(bad({ nodes: 10 }), RangeError);
  assert.throws(bad({ connections: 0 }), RangeError);
  assert.throws(bad({ connections: 4097 }), RangeError);
  assert.throws(bad({ bytesPerConnection: 0 }), RangeError);
  assert.throws(bad({ killAtFraction: 1 }), RangeError);
  assert.throws(bad({ kill: "nuke" as "link" }), /kill mode "nuke"/);
  assert.throws(bad({ name: "Bad-Name" }), RangeError);
  assert.throws(bad({ port: 70000 }), RangeError);
});

Deno.test("untilAborted passes results through and turns an abort into interrupted", async () => {
  assert.equal(await untilAborted(Promise.resolve(5), undefined, "x"), 5);
  const controller = new AbortController();
  const never = new Promise<number>(() => {});
  const waiting = untilAborted(never, controller.signal, "Cannot finish the demo");
  controller.abort();
  await assert.rejects(
    waiting,
    (e: unknown) =>
      e instanceof ReliabError && e.code === "interrupted" &&
      e.message === "Cannot finish the demo: interrupted",
  );
  await assert.rejects(untilAborted(Promise.resolve(1), controller.signal, "x"), ReliabError);
});
