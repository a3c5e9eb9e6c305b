import assert from "node:assert/strict";
import { EventLog } from "./event_log.ts";
import type { HaAgentStatus } from "./status.ts";

function status(fields: Partial<HaAgentStatus> = {}, peerAlive = true): HaAgentStatus {
  return {
    id: 2,
    role: "replica",
    epoch: 17,
    primary_id: 1,
    uptime_ms: 10,
    peers: [{
      id: 1,
      addr: "10.77.0.11",
      alive: peerAlive,
      heard: true,
      last_heard_ms: 1,
      role: "primary",
    }],
    connections: 4,
    held_segments: 0,
    takeover: null,
    counters: {},
    ...fields,
  };
}

Deno.test("the first status is the starting point: no events", () => {
  assert.deepEqual(new EventLog().events(status()), []);
});

Deno.test("a failover: the peer goes silent, then this node takes over", () => {
  const log = new EventLog();
  log.events(status());
  const down = log.events(status({}, false));
  assert.deepEqual(down.map((e) => e.event), ["peer_down"]);
  assert.equal(down[0]!.message, "node 2: peer node 1 (10.77.0.11) went silent");
  const took = log.events(status({
    role: "primary",
    epoch: 34,
    primary_id: 2,
    takeover: { at_unix_ms: 5, detect_ms: 50.2, kind: "failover", connections: 4 },
  }, false));
  assert.equal(took.length, 1);
  assert.equal(took[0]!.event, "takeover");
  assert.equal(
    took[0]!.message,
    "node 2: took over as primary, epoch 34, after 50.2 ms of silence",
  );
  assert.equal(took[0]!.kind, "failover");
  assert.equal(took[0]!.connections, 4);
  // Nothing changed: nothing logged.
  assert.deepEqual(log.events(status({ role: "primary", epoch: 34, primary_id: 2 }, false)), []);
});

Deno.test("a handover, fencing and being dropped are logged as such", () => {
  const log = new EventLog();
  log.events(status({ id: 1, role: "primary", primary_id: 1 }));
  const handed = log.events(status({ id: 1, role: "replica", epoch: 34, primary_id: 2 }));
  assert.equal(handed[0]!.event, "role");
  assert.equal(handed[0]!.message, "node 1: primary -> replica, epoch 34, following node 2");
  const target = new EventLog();
  target.events(status());
  const migrated = target.events(status({
    role: "primary",
    epoch: 34,
    primary_id: 2,
    takeover: { at_unix_ms: 5, detect_ms: 0, kind: "migration" },
  }));
  assert.match(migrated[0]!.message, /by planned migration$/);
  const fenced = new EventLog();
  fenced.events(status({ role: "primary", primary_id: 2 }));
  assert.equal(fenced.events(status({ role: "fenced", epoch: 49 }))[0]!.to, "fenced");
  const dropped = new EventLog();
  dropped.events(status());
  const e = dropped.events({ ...status(), dropped_from_group: true } as HaAgentStatus);
  assert.deepEqual(e.map((x) => x.event), ["dropped_from_group"]);
});
