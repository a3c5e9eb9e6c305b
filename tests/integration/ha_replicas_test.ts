// Several replicas on the real kernel: three nodes (a primary and two
// replicas), 32 connections streaming verified bytes both ways. SIGKILL of
// the primary: node 2 takes over and node 3 stays in its group (the new
// primary holds client bytes until node 3's stack has them). Then, with the
// stream still running, SIGKILL of node 2: node 3 takes over. Every
// connection must finish with no reset and no byte lost, duplicated or
// corrupted. The lab is taken down in `finally`. Needs root.
import assert from "node:assert/strict";
import { labDown, labLeftovers } from "../../lib/ha/lab.ts";
import { claimLab } from "../../lib/ha/demo.ts";
import { type Cluster, startCluster } from "../../lib/ha/lab_cluster.ts";
import type { NetnsProcess } from "../../lib/ha/_netns_process.ts";
import { parseLoadSummary } from "../../lib/ha/child_output.ts";
import { startLoad, untilShare } from "../_support/ha_load.ts";

const NAME = `rlrp${Deno.pid % 10_000}`;
const CONNECTIONS = 32;
const BYTES = 2 * 1024 * 1024;

/** Waits until node `id` is primary above `epochAbove` and hears every other live node. */
async function untilPrimaryWithGroup(
  cluster: Cluster,
  id: number,
  epochAbove: number,
  live: number,
) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const s = await cluster.status(id).catch(() => undefined);
    if (s?.role === "primary" && s.epoch > epochAbove && s.peersAlive === live) return s;
    assert.ok(Date.now() < deadline, `node ${id} did not become primary: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

Deno.test("three nodes: the survivors re-form a group and survive a second failure", async () => {
  await labDown({ name: NAME });
  let cluster: Cluster | undefined;
  let load: NetnsProcess | undefined;
  try {
    const lab = await claimLab(NAME, 3);
    cluster = await startCluster(lab, { port: 7000 });
    const epoch1 = (await cluster.status(1)).epoch;
    load = startLoad(lab, 7000, CONNECTIONS, BYTES);
    await untilShare(load, CONNECTIONS, 0.2);
    await cluster.kill(1, "sigkill");
    // Node 2, the lowest surviving id, takes over; node 3 follows it.
    const s2 = await untilPrimaryWithGroup(cluster, 2, epoch1, 1);
    const s3 = await cluster.status(3);
    assert.equal(s3.role, "replica", JSON.stringify(s3));
    assert.equal(s3.primaryId, 2, JSON.stringify(s3));

    await untilShare(load, CONNECTIONS, 0.5);
    await cluster.kill(2, "sigkill");
    const last = await untilPrimaryWithGroup(cluster, 3, s2.epoch, 0);

    const out = await load.output();
    const summary = parseLoadSummary(out.stdout);
    const detail = JSON.stringify({ summary, last });
    assert.equal(summary.completed, CONNECTIONS, detail);
    assert.equal(summary.resets, 0, detail);
    assert.equal(summary.bytesVerified, CONNECTIONS * BYTES, detail);
    assert.equal(summary.bytesLost + summary.bytesDuplicated + summary.bytesCorrupted, 0, detail);
  } finally {
    await load?.terminate(1000);
    await cluster?.stop();
    await labDown({ name: NAME });
  }
  assert.deepEqual(await labLeftovers(NAME), []);
});
