// summarize() is pure: median and coefficient of variation of the runs.
import assert from "node:assert/strict";
import { CALIBRATIONS, summarize } from "./calibrate.ts";

Deno.test("summarize takes the middle sample of an odd count", () => {
  assert.equal(summarize([30, 10, 20]).median, 20);
});

Deno.test("summarize averages the two middle samples of an even count", () => {
  assert.equal(summarize([4, 1, 3, 2]).median, 2.5);
});

Deno.test("summarize gives the sample standard deviation over the mean", () => {
  // mean 11, sample variance ((1 + 1 + 0) / 2) = 1, so cv = 1/11.
  const { cv } = summarize([10, 12, 11]);
  assert.ok(Math.abs(cv - 1 / 11) < 1e-12, String(cv));
});

Deno.test("summarize gives a cv of 0 for identical samples and for one sample", () => {
  assert.deepEqual(summarize([5, 5, 5]), { median: 5, cv: 0 });
  assert.deepEqual(summarize([7]), { median: 7, cv: 0 });
});

Deno.test("summarize is not fooled by one outlier in the median", () => {
  const { median, cv } = summarize([100, 101, 99, 100, 1000]);
  assert.equal(median, 100);
  assert.ok(cv > 1, "the outlier shows up in the cv");
});

Deno.test("summarize refuses no samples and non-finite ones", () => {
  assert.throws(() => summarize([]), RangeError);
  assert.throws(() => summarize([1, Number.NaN]), RangeError);
  assert.throws(() => summarize([1, Infinity]), RangeError);
});

Deno.test("every calibration has a unique key, a unit and at least three runs", () => {
  assert.equal(new Set(CALIBRATIONS.map((c) => c.key)).size, CALIBRATIONS.length);
  for (const c of CALIBRATIONS) {
    assert.match(c.key, /^calibration\.[a-z_]+$/);
    assert.ok(c.unit.length > 0);
    assert.ok(c.runs >= 3, c.key);
  }
});
