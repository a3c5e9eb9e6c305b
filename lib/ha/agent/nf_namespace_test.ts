import assert from "node:assert/strict";
import { agentIfaceName, virtualMac } from "./nf_namespace.ts";
import { listensOn } from "./up.ts";

Deno.test("the virtual MAC is 02:72:6c and the VIP's three low bytes", () => {
  assert.equal(virtualMac("10.77.0.1"), "02:72:6c:4d:00:01");
  assert.equal(virtualMac("192.168.255.16"), "02:72:6c:a8:ff:10");
  assert.throws(() => virtualMac("10.77.0"), TypeError);
  assert.throws(() => virtualMac("10.77.0.256"), TypeError);
});

Deno.test("the agent's veth end fits the 15-byte interface name limit", () => {
  assert.equal(agentIfaceName(1), "rlha1a");
  assert.ok(agentIfaceName(15).length <= 15);
});

Deno.test("a listener counts when bound to the VIP or to any address, not elsewhere", () => {
  const line = (local: string) => `LISTEN 0      4096     ${local}      0.0.0.0:*`;
  assert.ok(listensOn(line("10.77.0.1:7000"), "10.77.0.1"));
  assert.ok(listensOn(line("0.0.0.0:7000"), "10.77.0.1"));
  assert.ok(listensOn(line("*:7000"), "10.77.0.1"));
  assert.ok(listensOn(line("10.77.0.1%nf0:7000"), "10.77.0.1"));
  assert.ok(!listensOn(line("127.0.0.1:7000"), "10.77.0.1"));
  assert.ok(!listensOn(line("10.77.0.11:7000"), "10.77.0.1"));
  assert.ok(!listensOn("", "10.77.0.1"));
});
