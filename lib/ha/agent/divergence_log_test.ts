import assert from "node:assert/strict";
import { DivergenceLog } from "./divergence_log.ts";
import type { HaAgentStatus, HaDiverged } from "./status.ts";
import { FakeAgent } from "./_fake_agent.ts";

function status(
  role: "primary" | "replica",
  counters: Record<string, number>,
  diverged: HaDiverged[],
): HaAgentStatus {
  const base = new FakeAgent({ id: 2, role }).status();
  return { ...base, counters, connections_stale: diverged.length, diverged };
}

const conn: HaDiverged = {
  client: "10.78.0.1:40000",
  port: 7000,
  offset: 65536,
  here: true,
  reported_by: [],
  closed: false,
};

Deno.test("a divergence is logged once, a takeover's resets once more", () => {
  const log = new DivergenceLog();
  assert.deepEqual(log.lines(status("replica", {}, [])), []);
  const first = log.lines(status("replica", { divergences: 1 }, [conn]));
  assert.equal(first.length, 1);
  assert.match(first[0]!, /^node 2: connection 10\.78\.0\.1:40000 -> port 7000 diverged/);
  assert.match(first[0]!, /at output byte 65536.*stale.*never served/);
  assert.deepEqual(log.lines(status("replica", { divergences: 1 }, [conn])), []);
  const takeover = log.lines(
    status("primary", { divergences: 1, stale_resets: 1 }, [{ ...conn, closed: true }]),
  );
  assert.deepEqual(takeover, [
    "node 2: reset 1 stale connection(s) towards their clients instead of serving diverged bytes",
  ]);
});

Deno.test("a primary logs what replicas report, and counts what the list misses", () => {
  const log = new DivergenceLog();
  const reported = { ...conn, here: false, reported_by: [3] };
  const lines = log.lines(status("primary", { divergences_reported: 3 }, [reported]));
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.match(lines[0]!, /^node 2: replica node 3 reports connection 10\.78\.0\.1:40000/);
  assert.match(lines[1]!, /^node 2: 2 more diverged connection\(s\), not listed/);
});
