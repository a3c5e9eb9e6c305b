import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import { labPlan } from "./lab.ts";
import {
  isEmulable,
  NETEM_DROP_DEVICE,
  netemDropDeviceCommands,
  netemPortCommands,
  parseNetemSpec,
  randomMatchBytecode,
} from "./lab_netem.ts";

Deno.test("a full SPEC parses into numbers and keeps its words for tc", () => {
  const spec = parseNetemSpec("  loss 1%  delay 1ms 200us reorder 5% duplicate 0.5% ");
  assert.deepEqual(spec, {
    text: "loss 1% delay 1ms 200us reorder 5% duplicate 0.5%",
    lossPercent: 1,
    delayUs: 1000,
    jitterUs: 200,
    reorderPercent: 5,
    duplicatePercent: 0.5,
  });
  assert.equal(parseNetemSpec("delay 0.5s").delayUs, 500_000);
  assert.equal(parseNetemSpec("delay 250us").jitterUs, null);
  assert.equal(parseNetemSpec("loss 100%").lossPercent, 100);
});

Deno.test("a bad SPEC is one ConfigError naming what is wrong, with a hint", () => {
  const cases: [string, RegExp][] = [
    ["", /it is empty/],
    ["   ", /it is empty/],
    ["loss", /loss needs a percentage/],
    ["loss 1", /loss needs a percentage .* got "1"/],
    ["loss 0%", /loss needs a percentage/],
    ["loss 101%", /loss needs a percentage/],
    ["loss -1%", /loss needs a percentage/],
    ["duplicate x%", /duplicate needs a percentage/],
    ["delay", /delay needs a time/],
    ["delay 1", /delay needs a time/],
    ["delay 0ms", /delay needs a time/],
    ["delay 11s", /delay needs a time/],
    ["delay 1ms 2ms", /jitter "2ms" is larger than the delay/],
    ["reorder 5%", /reorder needs a delay/],
    ["corrupt 1%", /corrupt is not accepted/],
    ["loss 1% loss 2%", /"loss" appears twice/],
    ["rate 1mbit", /unknown word "rate"/],
    ["delay 1ms 100us 25%", /unknown word "25%"/],
    ["loss 1% distribution normal", /unknown word "distribution"/],
  ];
  for (const [text, why] of cases) {
    assert.throws(() => parseNetemSpec(text), (error: unknown) => {
      assert.ok(error instanceof ConfigError, `${text}: ${error}`);
      assert.equal(error.code, "netem_spec_invalid");
      assert.match(error.message, why, text);
      assert.ok(error.message.startsWith(`Invalid netem spec "${text}": `));
      assert.ok(!error.message.includes("\n") && !error.hint.includes("\n"));
      assert.match(error.hint, /loss P%/);
      return true;
    });
  }
});

Deno.test("labPlan checks the SPEC before anything is made", () => {
  assert.throws(() => labPlan({ netem: "loss 1% corrupt 1%" }), ConfigError);
  assert.equal(labPlan({ netem: "loss 1%" }).nodes.length, 3);
});

Deno.test("only loss and duplicate can be emulated", () => {
  assert.equal(isEmulable(parseNetemSpec("loss 5% duplicate 1%")), true);
  assert.equal(isEmulable(parseNetemSpec("delay 1ms")), false);
  assert.equal(isEmulable(parseNetemSpec("loss 1% delay 1ms reorder 10%")), false);
  assert.throws(
    () => netemPortCommands(parseNetemSpec("delay 1ms"), "emulated", "n1"),
    RangeError,
  );
});

Deno.test("the random match draws below a threshold proportional to the share", () => {
  const threshold = (p: number) => Number(randomMatchBytecode(p).split(",")[2]!.split(" ")[3]);
  assert.equal(threshold(25), 2 ** 30);
  assert.equal(threshold(50), 2 ** 31);
  assert.equal(threshold(100), 2 ** 32 - 1);
  assert.equal(threshold(1), Math.round(0.01 * 2 ** 32));
  // ld [SKF_AD_OFF + SKF_AD_RANDOM]: k = 2^32 - 4096 + 56.
  assert.equal(randomMatchBytecode(1).split(",")[1], "32 0 0 4294963256");
  assert.throws(() => randomMatchBytecode(0), RangeError);
});

Deno.test("netem mode: the port's egress and, through its IFB, its ingress", () => {
  const commands = netemPortCommands(parseNetemSpec("loss 1% delay 1ms"), "netem", "n2");
  const text = commands.map((c) => c.join(" "));
  assert.deepEqual(text, [
    "tc qdisc replace dev n2 root netem loss 1% delay 1ms",
    "ip link add ifb-n2 type ifb",
    "ip link set ifb-n2 up",
    "tc qdisc replace dev ifb-n2 root netem loss 1% delay 1ms",
    "tc qdisc add dev n2 clsact",
    "tc filter add dev n2 ingress prio 1 protocol all bpf bytecode 1,6 0 0 4294967295 " +
    "action mirred egress redirect dev ifb-n2",
  ]);
  // Interface names fit in 15 bytes for every lab port.
  assert.ok(`ifb-n16`.length <= 15);
});

Deno.test("emulated mode: loss both ways to the black hole, duplicates at ingress", () => {
  const text = netemPortCommands(parseNetemSpec("loss 5% duplicate 1%"), "emulated", "c")
    .map((c) => c.join(" "));
  assert.equal(text[0], "tc qdisc add dev c clsact");
  assert.match(
    text[1]!,
    /^tc filter add dev c ingress prio 1 .* action mirred ingress mirror dev c$/,
  );
  assert.match(
    text[2]!,
    new RegExp(`^tc filter add dev c ingress prio 2 .* redirect dev ${NETEM_DROP_DEVICE}$`),
  );
  assert.match(
    text[3]!,
    new RegExp(`^tc filter add dev c egress prio 1 .* redirect dev ${NETEM_DROP_DEVICE}$`),
  );
  assert.ok(text[2]!.includes(randomMatchBytecode(5)) && text[3]!.includes(randomMatchBytecode(5)));
  assert.ok(text[1]!.includes(randomMatchBytecode(1)));
  assert.equal(text.length, 4);
  const lossOnly = netemPortCommands(parseNetemSpec("loss 5%"), "emulated", "c");
  assert.ok(!lossOnly.some((c) => c.includes("mirror")));
  assert.deepEqual(netemDropDeviceCommands().at(-1)!.slice(-3), ["pfifo", "limit", "0"]);
});
