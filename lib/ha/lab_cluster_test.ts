import assert from "node:assert/strict";
import { labPlan } from "./lab.ts";
import { agentArgv, referenceNfCommand } from "./lab_cluster.ts";

const lab = labPlan({ name: "rltest", nodes: 3 });

Deno.test("node 1 starts primary with every other node as a peer, CMD after --", () => {
  const argv = agentArgv(lab, 1, { command: ["socat", "TCP-LISTEN:7000"] });
  const at = (flag: string) => argv[argv.indexOf(flag) + 1];
  assert.equal(argv.slice(1, 3).join(" "), "ha up");
  assert.equal(at("--id"), "1");
  assert.equal(at("--vip"), "10.77.0.1");
  assert.equal(at("--iface"), "eth0");
  assert.equal(at("--peers"), "10.77.0.12,10.77.0.13");
  assert.ok(argv.includes("--primary"));
  assert.ok(argv.includes("--json"));
  assert.deepEqual(argv.slice(argv.indexOf("--") + 1), ["socat", "TCP-LISTEN:7000"]);
  assert.ok(!argv.includes("--heartbeat-ms"));
});

Deno.test("other nodes are replicas and get the heartbeat options given", () => {
  const argv = agentArgv(lab, 3, { command: ["nf"], heartbeatMs: 0.5, miss: 4 });
  assert.ok(!argv.includes("--primary"));
  assert.equal(argv[argv.indexOf("--peers") + 1], "10.77.0.11,10.77.0.12");
  assert.equal(argv[argv.indexOf("--heartbeat-ms") + 1], "0.5");
  assert.equal(argv[argv.indexOf("--miss") + 1], "4");
  assert.throws(() => agentArgv(lab, 4, { command: ["nf"] }), RangeError);
  assert.throws(() => agentArgv(lab, 1, { command: [] }), RangeError);
});

Deno.test("the reference NF listens on the VIP in echo mode", () => {
  const argv = referenceNfCommand("10.77.0.1", 7001);
  assert.deepEqual(argv.slice(1), ["ha", "nf", "--listen", "10.77.0.1:7001", "--mode", "echo"]);
  // From source: the checkout's launcher.
  assert.match(argv[0]!, /\/reliab$/);
});
