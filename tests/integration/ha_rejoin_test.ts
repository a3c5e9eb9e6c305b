// A replica that restarts rejoins with the state of the connections already
// open (issue 4, "Replica failure"). Two nodes, 16 paced connections
// streaming verified bytes both ways. SIGKILL of the replica mid-stream; its
// agent and NF are started again; the primary catches every open connection
// up (its NF gets the client's SYN and every byte since from the primary's
// input log) and makes it a member again. Then SIGKILL of the primary: the
// restarted node takes over connections that were opened before it started,
// with no reset and no byte lost, duplicated or corrupted. The lab is taken
// down in `finally`. Needs root.
import assert from "node:assert/strict";
import { labDown, labLeftovers } from "../../lib/ha/lab.ts";
import { claimLab } from "../../lib/ha/demo.ts";
import { type Cluster, startCluster } from "../../lib/ha/lab_cluster.ts";
import type { NetnsProcess } from "../../lib/ha/_netns_process.ts";
import { parseLoadProgress, parseLoadSummary } from "../../lib/ha/child_output.ts";
import { startLoad, untilShare } from "../_support/ha_load.ts";

const NAME = `rlrj${Deno.pid % 10_000}`;
const CONNECTIONS = 16;
// 4 MiB per connection at 512 KiB/s: about 8 s of stream, time for a restart.
const BYTES = 4 * 1024 * 1024;
const RATE = 512 * 1024;

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    assert.ok(Date.now() < deadline, `${what}${last === undefined ? "" : `: ${last}`}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("a restarted replica is caught up on open connections and can then take them over", async () => {
  await labDown({ name: NAME });
  let cluster: Cluster | undefined;
  let load: NetnsProcess | undefined;
  try {
    const lab = await claimLab(NAME, 2);
    cluster = await startCluster(lab, { port: 7000 });
    const c = cluster;
    load = startLoad(lab, 7000, CONNECTIONS, BYTES, RATE);
    await untilShare(load, CONNECTIONS, 0.05);
    await c.kill(2, "sigkill");
    // The primary goes on alone, then hears node 2 again once it is back.
    await c.restart(2);
    const joined = await until("node 2 never rejoined", async () => {
      const s = await c.status(2);
      return s.role === "replica" && s.peersAlive === 1 ? s : undefined;
    }, 10_000);
    assert.equal(joined.counters["catchup_resets"] ?? 0, 0);
    // Every open connection is caught up: the primary counts it a member again.
    const primary = await until("the primary never caught node 2 up", async () => {
      const s = await c.status(1);
      return (s.counters["catchups_done"] ?? 0) >= CONNECTIONS ? s : undefined;
    }, 20_000);
    const rejoined = await c.status(2);
    assert.equal(
      rejoined.counters["catchups_joined"],
      CONNECTIONS,
      JSON.stringify(rejoined.counters),
    );
    assert.equal(primary.counters["catchups_impossible"] ?? 0, 0, JSON.stringify(primary.counters));
    const epoch = primary.epoch;

    const pick = (counters: Readonly<Record<string, number>>) =>
      Object.fromEntries(
        Object.entries(counters).filter(([k]) => /catchup|missing|input_log/.test(k)),
      );
    console.log(`primary: ${JSON.stringify(pick(primary.counters))}`);
    console.log(`rejoined: ${JSON.stringify(pick(rejoined.counters))}`);
    // The old primary dies mid-stream: node 2 serves connections it never saw open.
    const progress = load.lines("stderr").at(-1) ?? "";
    await c.kill(1, "sigkill");
    const p = parseLoadProgress(progress);
    assert.ok(
      p !== undefined && p.verified < 0.9 * p.total,
      `the stream was nearly over: ${progress}`,
    );
    const after = await until("node 2 did not take over", async () => {
      const s = await c.status(2);
      return s.role === "primary" && s.epoch > epoch ? s : undefined;
    }, 10_000);
    const out = await load.output();
    const summary = parseLoadSummary(out.stdout);
    const final = await c.status(2);
    const detail = JSON.stringify({ summary, counters: final.counters });
    assert.equal(summary.completed, CONNECTIONS, detail);
    assert.equal(summary.resets, 0, detail);
    assert.equal(summary.bytesVerified, CONNECTIONS * BYTES, detail);
    assert.equal(summary.bytesLost + summary.bytesDuplicated + summary.bytesCorrupted, 0, detail);
    assert.equal(final.counters["catchup_resets"] ?? 0, 0, detail);
    assert.equal(after.takeover?.kind, "failover");
  } finally {
    await load?.terminate(1000);
    await cluster?.stop();
    await labDown({ name: NAME });
  }
  assert.deepEqual(await labLeftovers(NAME), []);
});
