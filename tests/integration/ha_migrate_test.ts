// Planned migration on the real kernel: `reliab ha migrate --to 2` on the
// primary while 32 connections stream verified bytes both ways. Every
// connection must finish on node 2 with no reset and no byte lost,
// duplicated or corrupted; node 2 reports a migration (no detection delay)
// that resumed every connection, and node 1 lives on as its replica — not
// failed, not fenced. Then the other way round, asked on the replica: node 1
// forwards the request to primary node 2, which hands back. Wrong targets get
// one-line errors. The lab is taken down in `finally`. Needs root.
import assert from "node:assert/strict";
import { runCli } from "../_support/cli.ts";
import { labDown, labLeftovers } from "../../lib/ha/lab.ts";
import { claimLab, failoverUnderLoad } from "../../lib/ha/demo.ts";
import { type Cluster, startCluster } from "../../lib/ha/lab_cluster.ts";

const NAME = `rlmg${Deno.pid % 10_000}`;
const CONNECTIONS = 32;
const BYTES = 1024 * 1024;

async function migrateCli(netns: string, ...args: string[]) {
  return await runCli(["ha", "migrate", ...args], { wrap: ["ip", "netns", "exec", netns] });
}

Deno.test("'reliab ha migrate' moves every live connection to another node, and back", async () => {
  await labDown({ name: NAME });
  let cluster: Cluster | undefined;
  try {
    const lab = await claimLab(NAME, 2);
    cluster = await startCluster(lab, { port: 7000 });
    const [n1, n2] = [cluster.node(1).lab.netns, cluster.node(2).lab.netns];

    // Wrong targets: one line each, nothing changes.
    for (
      const [args, pattern] of [
        [
          ["--to", "1"],
          /^reliab: error: Cannot migrate to node "1": it is this node, which already serves$/m,
        ],
        [["--to", "9"], /^reliab: error: Cannot migrate to node "9": no such peer$/m],
        [["--to", "x"], /^reliab: error: Cannot migrate: --to "x" is not a node id$/m],
        [[], /^reliab: error: Missing --to/m],
      ] as const
    ) {
      const r = await migrateCli(n1, ...args);
      assert.notEqual(r.code, 0, r.stdout);
      assert.match(r.stderr, pattern);
      assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
    }
    assert.equal((await cluster.status(1)).role, "primary");

    // Node 1 -> node 2, asked on the primary, mid-stream (the demo's "migrate" kill).
    const epochBefore = (await cluster.status(1)).epoch;
    const { summary, facts } = await failoverUnderLoad(cluster, {
      connections: CONNECTIONS,
      bytesPerConnection: BYTES,
      kill: "migrate",
      killAtFraction: 0.25,
    });
    const detail = JSON.stringify({ summary, facts });
    assert.equal(summary.completed, CONNECTIONS, detail);
    assert.equal(summary.resets, 0, detail);
    assert.equal(summary.bytesLost + summary.bytesDuplicated + summary.bytesCorrupted, 0, detail);
    assert.equal(facts.midStream, true, detail);
    const node2 = await cluster.status(2);
    assert.equal(node2.role, "primary", detail);
    assert.ok(node2.epoch > epochBefore, detail);
    assert.equal(node2.takeover?.kind, "migration", detail);
    assert.equal(node2.takeover?.detectMs, 0, detail);
    assert.ok((node2.takeover?.connections ?? 0) >= CONNECTIONS, detail);
    assert.equal(node2.takeover?.resumed, node2.takeover?.connections, detail);
    // The old primary lives on as the new primary's replica: not failed, not fenced.
    const node1 = await cluster.status(1);
    assert.equal(node1.role, "replica", detail);
    assert.equal(node1.epoch, node2.epoch, detail);
    assert.equal(node1.peersAlive, node1.peersTotal, detail);

    // Both agents logged it, as JSON events on stdout (`ha up --json`) for log pipelines.
    const logged = (id: number, match: (e: Record<string, unknown>) => boolean) =>
      cluster!.node(id).agent.waitForLine("stdout", (line) => {
        try {
          return match(JSON.parse(line));
        } catch {
          return false;
        }
      }, { timeoutMs: 5_000, action: `Node ${id} logged no such event`, hint: "" });
    await logged(2, (e) => e.event === "takeover" && e.kind === "migration" && e.node === 2);
    await logged(1, (e) => e.event === "role" && e.from === "primary" && e.to === "replica");

    // Node 2 is primary now: it is no target, and node 2 cannot hand over to itself.
    const busy = await migrateCli(n1, "--to", "2");
    assert.notEqual(busy.code, 0, "node 2 is the primary: not a migration target");
    assert.match(busy.stderr, /^reliab: error: Cannot migrate to node "2": it is primary$/m);
    const self = await migrateCli(n2, "--to", "2");
    assert.match(self.stderr, /^reliab: error: Cannot migrate to node "2": it is this node/m);

    // And back, asked on the replica: node 1 forwards the request to primary node 2.
    const handBack = await migrateCli(n1, "--to", "1", "--json");
    assert.equal(handBack.code, 0, handBack.stderr);
    const outcome = JSON.parse(handBack.stdout);
    assert.equal(outcome.before.role, "replica");
    const home = await cluster.status(1);
    assert.equal(home.role, "primary", handBack.stdout);
    assert.ok(home.epoch > node2.epoch);
    assert.equal(home.takeover?.kind, "migration");
    assert.equal((await cluster.status(2)).role, "replica");
    // The group keeps serving: a fresh load through node 1.
    const load = await runCli([
      "ha",
      "load",
      "--connect",
      `${lab.vip}:7000`,
      "--connections",
      "4",
      "--bytes",
      "65536",
      "--json",
    ], { wrap: ["ip", "netns", "exec", lab.client.netns] });
    assert.equal(load.code, 0, load.stderr);
    assert.equal(JSON.parse(load.stdout).completed, 4, load.stdout);
    const text = await runCli(["ha", "status"], { wrap: ["ip", "netns", "exec", n1] });
    assert.match(
      text.stdout,
      /took over at .*, by migration, \d+\/\d+ connections resumed in \d+ µs/,
    );
  } finally {
    await cluster?.stop();
    await labDown({ name: NAME });
  }
  assert.deepEqual(await labLeftovers(NAME), []);
});
