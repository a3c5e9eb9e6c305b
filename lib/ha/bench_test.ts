import assert from "node:assert/strict";
import { BENCH_LAB_NAME, checkBenchOptions } from "./bench.ts";
import { DEMO_LAB_NAME } from "./demo.ts";

Deno.test("bench options default to 5 failovers on a lab of its own", () => {
  const o = checkBenchOptions();
  assert.equal(o.failovers, 5);
  assert.equal(o.name, BENCH_LAB_NAME);
  assert.notEqual(o.name, DEMO_LAB_NAME);
  assert.notEqual(o.name, "rlha");
  assert.equal(checkBenchOptions({ failovers: 0 }).failovers, 0);
});

Deno.test("bench options out of range are refused", () => {
  assert.throws(() => checkBenchOptions({ failovers: -1 }), RangeError);
  assert.throws(() => checkBenchOptions({ failovers: 101 }), RangeError);
  assert.throws(() => checkBenchOptions({ latencyRequests: 0 }), RangeError);
  assert.throws(() => checkBenchOptions({ bulkBytesPerConnection: 2.5 }), RangeError);
});

Deno.test("a bench netem SPEC is checked before any lab is made", () => {
  assert.equal(checkBenchOptions().netem, undefined);
  assert.equal(checkBenchOptions({ netem: " loss  1% " }).netem, "loss 1%");
  assert.throws(() => checkBenchOptions({ netem: "corrupt 1%" }), /corrupt is not accepted/);
});
