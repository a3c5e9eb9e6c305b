import assert from "node:assert/strict";
import { ReliabError } from "../errors.ts";
import {
  findJsonObject,
  formatLoadProgress,
  parseHaStatus,
  parseLatencySummary,
  parseLoadProgress,
  parseLoadSummary,
  parseUpLine,
} from "./child_output.ts";

const UP = { id: 2, role: "replica", netns: "rlhd-n2", nf_netns: "rlhd-n2-nf", vip: "10.77.0.1" };

Deno.test("the up line is found on one line or pretty, among the NF's own output", () => {
  assert.equal(parseUpLine([]), undefined);
  assert.equal(parseUpLine(["listening 10.77.0.1:7000"]), undefined);
  const expected = {
    id: 2,
    role: "replica",
    netns: "rlhd-n2",
    nfNetns: "rlhd-n2-nf",
    vip: "10.77.0.1",
  };
  assert.deepEqual(parseUpLine(["listening 10.77.0.1:7000", JSON.stringify(UP)]), expected);
  const pretty = JSON.stringify(UP, null, 2).split("\n");
  assert.deepEqual(parseUpLine(["noise", ...pretty]), expected);
  // Half printed: not yet.
  assert.equal(parseUpLine(pretty.slice(0, 3)), undefined);
  assert.equal(findJsonObject(["{", '  "a": 1']), undefined);
});

Deno.test("an up line missing a field is an error naming it", () => {
  const { nf_netns: _, ...rest } = UP;
  assert.throws(
    () => parseUpLine([JSON.stringify(rest)]),
    (e: unknown) => e instanceof ReliabError && /"nf_netns"/.test(e.message),
  );
  assert.throws(() => parseUpLine(["{not json}"]), ReliabError);
});

const STATUS = {
  id: 2,
  role: "primary",
  epoch: 3,
  primary_id: 2,
  uptime_ms: 1000,
  peers: [{ id: 1, addr: "10.77.0.11", alive: false, last_heard_ms: 120, role: "primary" }],
  connections: 64,
  held_segments: 0,
  takeover: { at_unix_ms: 1_700_000_000_123, detect_ms: 10.5 },
  counters: { replicated: 5, catchups_done: 2, bogus: "x" },
};

Deno.test("status parses role, epoch, primary, takeover and counters", () => {
  assert.deepEqual(parseHaStatus(JSON.stringify(STATUS)), {
    id: 2,
    role: "primary",
    epoch: 3,
    primaryId: 2,
    connections: 64,
    takeover: {
      atUnixMs: 1_700_000_000_123,
      detectMs: 10.5,
      kind: "failover",
      connections: null,
      resumed: null,
      resumeMs: null,
      commandToResumeMs: null,
    },
    peersAlive: 0,
    peersTotal: 1,
    counters: { replicated: 5, catchups_done: 2 }, // numbers only
  });
  const replica = parseHaStatus(
    JSON.stringify({ ...STATUS, role: "replica", primary_id: 0, takeover: null }),
  );
  assert.equal(replica.primaryId, null);
  assert.equal(replica.takeover, null);
  const migrated = parseHaStatus(JSON.stringify({
    ...STATUS,
    takeover: {
      at_unix_ms: 5,
      detect_ms: 0,
      kind: "migration",
      connections: 64,
      resumed: 63,
      resume_ms: 0.25,
      command_to_resume_ms: 0.4,
    },
  }));
  assert.deepEqual(migrated.takeover, {
    atUnixMs: 5,
    detectMs: 0,
    kind: "migration",
    connections: 64,
    resumed: 63,
    resumeMs: 0.25,
    commandToResumeMs: 0.4,
  });
});

Deno.test("status with a wrong role or field is refused", () => {
  const bad = (value: unknown) => () => parseHaStatus(JSON.stringify(value));
  assert.throws(bad({ ...STATUS, role: "leader" }), /"role"/);
  assert.throws(bad({ ...STATUS, epoch: "3" }), /"epoch"/);
  assert.throws(bad({ ...STATUS, takeover: { at_unix_ms: 1 } }), /"detect_ms"/);
  assert.throws(bad([STATUS]), /not a JSON object/);
  assert.throws(() => parseHaStatus(""), ReliabError);
});

const LOAD = {
  connections: 64,
  completed: 64,
  resets: 0,
  bytesSent: 1000,
  bytesVerified: 1000,
  bytesLost: 0,
  bytesDuplicated: 0,
  bytesCorrupted: 0,
  longestStallMs: 12.5,
  gaps: [{ atUnixMs: 1_700_000_000_000.5, ms: 12.5 }, { atUnixMs: 1_700_000_000_100, ms: 3 }],
  elapsedMs: 900,
  goodputMbps: 8.9,
};

Deno.test("load summary keeps every counter and refuses a missing one", () => {
  assert.deepEqual(parseLoadSummary(JSON.stringify({ ...LOAD, extra: 1 })), LOAD);
  const { bytesLost: _, ...rest } = LOAD;
  assert.throws(() => parseLoadSummary(JSON.stringify(rest)), /"bytesLost"/);
  assert.throws(() => parseLoadSummary(JSON.stringify({ ...LOAD, resets: null })), /"resets"/);
  assert.throws(() => parseLoadSummary(JSON.stringify({ ...LOAD, gaps: 3 })), /"gaps"/);
  assert.throws(
    () => parseLoadSummary(JSON.stringify({ ...LOAD, gaps: [{ ms: 1 }] })),
    /"atUnixMs"/,
  );
});

Deno.test("load progress lines round-trip and other lines are ignored", () => {
  const p = { connected: 64, verified: 123_456, total: 268_435_456 };
  assert.deepEqual(parseLoadProgress(formatLoadProgress(p)), p);
  assert.equal(parseLoadProgress("reliab: building the native core (zig build)"), undefined);
  assert.equal(parseLoadProgress("progress connected=1 verified=-2 total=3"), undefined);
});

Deno.test("latency summary parses and refuses a missing percentile", () => {
  const latency = {
    requests: 10,
    messageBytes: 64,
    mismatches: 0,
    p50Us: 40,
    p90Us: 50,
    p99Us: 80,
    maxUs: 90,
    meanUs: 45,
    elapsedMs: 1,
  };
  assert.deepEqual(parseLatencySummary(JSON.stringify(latency)), latency);
  const { p99Us: _, ...rest } = latency;
  assert.throws(() => parseLatencySummary(JSON.stringify(rest)), /"p99Us"/);
});
