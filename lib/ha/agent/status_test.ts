import assert from "node:assert/strict";
import { ReliabError } from "../../errors.ts";
import { parseAgentStatus, statusLines } from "./status.ts";
import { FakeAgent } from "./_fake_agent.ts";

function sample(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(new FakeAgent({ id: 1, role: "primary" }).status()));
}

Deno.test("a full status parses and keeps fields it does not know", () => {
  const raw = { ...sample(), replication_lag_us: 12 };
  const status = parseAgentStatus(raw);
  assert.equal(status.role, "primary");
  assert.equal((status as unknown as { replication_lag_us: number }).replication_lag_us, 12);
});

Deno.test("each wrong or missing field is named", () => {
  const cases: [string, (s: Record<string, unknown>) => void][] = [
    ["role", (s) => s.role = "leader"],
    ["epoch", (s) => delete s.epoch],
    ["peers", (s) => s.peers = {}],
    ["peers[0].alive", (s) => (s.peers as Record<string, unknown>[])[0]!.alive = "yes"],
    ["peers[0].role", (s) => (s.peers as Record<string, unknown>[])[0]!.role = "boss"],
    ["takeover", (s) => s.takeover = 5],
    ["counters.to_nf", (s) => (s.counters as Record<string, unknown>).to_nf = "40"],
  ];
  for (const [field, spoil] of cases) {
    const raw = sample();
    spoil(raw);
    assert.throws(() => parseAgentStatus(raw), (error: unknown) => {
      assert.ok(error instanceof ReliabError);
      assert.match(error.message, new RegExp(`"${field.replace(/[[\]]/g, "\\$&")}"`));
      return true;
    }, field);
  }
  assert.throws(() => parseAgentStatus(null), ReliabError);
  assert.throws(() => parseAgentStatus([]), ReliabError);
});

Deno.test("the text shows role, epoch, primary, peers, counts and counters", () => {
  const raw = sample();
  raw.takeover = { at_unix_ms: Date.UTC(2025, 0, 2, 3, 4, 5), detect_ms: 12.25 };
  const lines = statusLines(parseAgentStatus(raw));
  assert.match(lines[0]!, /^node 1: primary, epoch 17, this node is primary, up 1\.2 s$/);
  assert.equal(lines[1], "connections 3, held segments 2");
  assert.ok(
    lines.includes("took over at 2025-01-02T03:04:05.000Z, detected in 12.3 ms"),
    lines.join("\n"),
  );
  const peer = lines.find((l) => l.startsWith("  node 2"));
  assert.match(peer ?? "", /10\.77\.0\.99 +alive +replica +last heard 0\.5 ms ago/);
  assert.ok(lines.includes("  client_frames 42"), lines.join("\n"));

  const dead = sample();
  (dead.peers as Record<string, unknown>[])[0]!.alive = false;
  (dead.peers as Record<string, unknown>[])[0]!.heard = false;
  dead.primary_id = 2;
  const text = statusLines(parseAgentStatus(dead)).join("\n");
  assert.match(text, /primary is node 2/);
  assert.match(text, /DEAD +replica +never heard/);
});
