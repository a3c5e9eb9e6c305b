import assert from "node:assert/strict";
import { type Action, type PeerMessage, ReplicationNode } from "./node.ts";

const config = {
  heartbeatIntervalMs: 1,
  missThreshold: 5,
  resyncSegmentBytes: 1000,
  resyncSegmentsPerTickMax: 8,
};
const bytes = (n: number, start = 0) =>
  Uint8Array.from({ length: n }, (_, i) => (start + i) & 0xff);

function sends(actions: Action[]): { to: number; message: PeerMessage }[] {
  return actions.flatMap((a) => a.kind === "send" ? [{ to: a.to, message: a.message }] : []);
}
function acks(actions: Action[]): number[] {
  return actions.flatMap((a) => a.kind === "client_ack" ? [a.ack] : []);
}

/** A primary (0) with replicas 1 and 2 whose heartbeats were acknowledged at `now`. */
function group(now = 0) {
  const nodes = [0, 1, 2].map((id) =>
    new ReplicationNode({ id, nodes: [0, 1, 2], primary: 0, config, now })
  );
  const primary = nodes[0]!;
  for (const { to, message } of sends(primary.tick(now))) {
    for (const reply of sends(nodes[to]!.message(message, now))) {
      primary.message(reply.message, now);
    }
  }
  return { nodes, primary };
}

Deno.test("a segment reaches the primary's stack only after every replica acked its copy", () => {
  const { nodes, primary } = group();
  const copies = sends(primary.clientSegment(0, bytes(100), 0.1));
  assert.deepEqual(copies.map((c) => [c.to, c.message.kind]), [[1, "replicate"], [2, "replicate"]]);
  const [ack1] = sends(nodes[1]!.message(copies[0]!.message, 0.2));
  assert.deepEqual(acks(primary.message(ack1!.message, 0.3)), []);
  assert.equal(primary.stream.prefix, 0, "held until replica 2 acks");
  const [ack2] = sends(nodes[2]!.message(copies[1]!.message, 0.2));
  assert.deepEqual(acks(primary.message(ack2!.message, 0.4)), [100]);
  assert.equal(primary.stream.prefix, 100);
});

Deno.test("a lost copy is never acked: the client's retransmission recovers it", () => {
  const { nodes, primary } = group();
  const copies = sends(primary.clientSegment(0, bytes(50), 0.1));
  // Only replica 1's copy arrives.
  primary.message(sends(nodes[1]!.message(copies[0]!.message, 0.2))[0]!.message, 0.3);
  assert.equal(primary.stream.prefix, 0);
  const again = sends(primary.clientSegment(0, bytes(50), 1.5));
  assert.deepEqual(again.map((c) => c.to), [2], "only the replica that did not ack gets it again");
  const ack = sends(nodes[2]!.message(again[0]!.message, 1.6))[0]!;
  assert.deepEqual(acks(primary.message(ack.message, 1.7)), [50]);
});

Deno.test("without fresh heartbeat acks the primary holds its client acks (lease)", () => {
  const { nodes, primary } = group(0);
  const copies = sends(primary.clientSegment(0, bytes(10), 10));
  const replies = copies.map((c) => sends(nodes[c.to]!.message(c.message, 10))[0]!);
  let emitted: number[] = [];
  for (const r of replies) emitted = emitted.concat(acks(primary.message(r.message, 10)));
  assert.deepEqual(emitted, [], "lease from t=0 expired at t=4");
  assert.equal(primary.leaseValid(10), false);
  assert.equal(primary.stream.prefix, 10, "the stack has the bytes; only the ack waits");
});

Deno.test("a silent primary is replaced by the lowest replica; a higher epoch fences the old one", () => {
  const { nodes, primary } = group(0);
  let promoted: Action[] = [];
  for (let t = 0.5; t <= 8 && promoted.length === 0; t += 0.5) {
    promoted = nodes[1]!.tick(t).filter((a) => a.kind === "promoted");
    assert.deepEqual(
      nodes[2]!.tick(t).filter((a) => a.kind === "promoted"),
      [],
      "replica 2 waits its stagger",
    );
  }
  assert.equal(promoted.length, 1);
  assert.equal(nodes[1]!.role, "primary");
  assert.deepEqual(nodes[1]!.members, [2]);
  // The old primary hears the new epoch and, not being a member, is fenced.
  const heartbeat = sends(nodes[1]!.tick(20)).find((s) => s.message.kind === "heartbeat")!;
  const notice = sends(nodes[2]!.message(heartbeat.message, 20));
  assert.equal(notice[0]?.message.kind, "heartbeat_ack");
  const stale = sends(primary.tick(20)).find((s) => s.to === 2)!;
  const reply = sends(nodes[2]!.message(stale.message, 20));
  assert.equal(reply[0]?.message.kind, "epoch_notice");
  const fenced = primary.message(reply[0]!.message, 20);
  assert.equal(primary.role, "fenced");
  assert.deepEqual(fenced.map((a) => a.kind), ["fenced"]);
  assert.deepEqual(primary.clientSegment(0, bytes(5), 21), [], "a fenced node never acts again");
});
