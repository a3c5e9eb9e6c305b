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

Deno.test("diverged connections are checked and shown, here and as reported by replicas", () => {
  const raw = sample();
  raw.connections_stale = 3;
  raw.diverged = [
    {
      client: "10.78.0.1:40000",
      port: 7000,
      offset: 65536,
      here: false,
      reported_by: [2],
      closed: false,
    },
    {
      client: "10.78.0.1:40002",
      port: 7000,
      offset: 131072,
      here: true,
      reported_by: [],
      closed: true,
    },
  ];
  const lines = statusLines(parseAgentStatus(raw));
  const at = lines.indexOf("diverged connections 3 (the NFs wrote different bytes):");
  assert.ok(at > 0, lines.join("\n"));
  assert.equal(
    lines[at + 1],
    "  10.78.0.1:40000 -> port 7000 differed at output byte 65536: " +
      "replica node 2 reported its copy stale, not waited for",
  );
  assert.equal(
    lines[at + 2],
    "  10.78.0.1:40002 -> port 7000 differed at output byte 131072: " +
      "stale here, reset towards the client (closed)",
  );
  assert.equal(lines[at + 3], "  and 1 more");
  // None: no such line at all.
  assert.ok(!statusLines(parseAgentStatus(sample())).some((l) => l.startsWith("diverged")));

  const wrong = sample();
  wrong.diverged = [{
    client: "x",
    port: "7000",
    offset: 1,
    here: true,
    reported_by: [],
    closed: false,
  }];
  assert.throws(() => parseAgentStatus(wrong), /"diverged\[0\]\.port"/);
});
