// One connection migrated on its own, on the real kernel: 8 connections
// stream verified bytes both ways; `reliab ha migrate --to 2 --conn
// CLIENT:PORT` on the primary moves one of them to replica node 2 while node
// 1 stays primary for the rest; then node 2 hands it back. Every connection
// must finish with no reset and no byte lost, duplicated or corrupted. The
// lab is taken down in `finally`. Needs root.
import assert from "node:assert/strict";
import { runCli } from "../_support/cli.ts";
import { labDown, labLeftovers } from "../../lib/ha/lab.ts";
import { claimLab } from "../../lib/ha/demo.ts";
import { type Cluster, startCluster } from "../../lib/ha/lab_cluster.ts";
import type { NetnsProcess } from "../../lib/ha/_netns_process.ts";
import { parseLoadSummary } from "../../lib/ha/child_output.ts";
import { startLoad, untilShare } from "../_support/ha_load.ts";

const NAME = `rlmc${Deno.pid % 10_000}`;
const CONNECTIONS = 8;
const BYTES = 8 * 1024 * 1024;

async function statusJson(netns: string) {
  const r = await runCli(["ha", "status", "--json"], { wrap: ["ip", "netns", "exec", netns] });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

Deno.test("'reliab ha migrate --conn' moves one live connection and back; the others stay", async () => {
  await labDown({ name: NAME });
  let cluster: Cluster | undefined;
  let load: NetnsProcess | undefined;
  try {
    const lab = await claimLab(NAME, 2);
    cluster = await startCluster(lab, { port: 7000 });
    const [n1, n2] = [cluster.node(1).lab.netns, cluster.node(2).lab.netns];
    load = startLoad(lab, 7000, CONNECTIONS, BYTES);
    await untilShare(load, CONNECTIONS, 0.1);
    // One established connection's client address, as the client sees it.
    const ss = await new Deno.Command("ip", {
      args: [
        "netns",
        "exec",
        lab.client.netns,
        "ss",
        "-Htn",
        "state",
        "established",
        "dst",
        lab.vip,
      ],
    }).output();
    const local = new TextDecoder().decode(ss.stdout).trim().split("\n")[0]!.trim().split(
      /\s+/,
    )[2]!;
    assert.match(local, /^\d+\.\d+\.\d+\.\d+:\d+$/, "ss gave no connection");

    const away = await runCli(["ha", "migrate", "--to", "2", "--conn", local], {
      wrap: ["ip", "netns", "exec", n1],
    });
    assert.equal(away.code, 0, away.stderr);
    assert.match(away.stdout, new RegExp(`handed the connection from ${local} to node 2`));
    // Asked again on node 1, which no longer serves it: it names the node that does.
    const again = await runCli(["ha", "migrate", "--to", "2", "--conn", local], {
      wrap: ["ip", "netns", "exec", n1],
    });
    assert.match(again.stderr, /is served by node 2, not this one/);
    // No such connection.
    const none = await runCli(["ha", "migrate", "--to", "2", "--conn", "10.78.0.99:1"], {
      wrap: ["ip", "netns", "exec", n1],
    });
    assert.match(none.stderr, /no open connection from 10\.78\.0\.99:1 on this node/);

    const s2 = await statusJson(n2);
    assert.equal(s2.role, "replica", "node 2 serves one connection and stays a replica");
    assert.equal(s2.counters.conn_migrations_in, 1, JSON.stringify(s2.counters));
    // It resumed there: the node measured from the notice to the connection resumed.
    assert.equal(typeof s2.conn_migration.last_resume_ms, "number");
    console.log(`connection resumed on node 2 in ${s2.conn_migration.last_resume_ms} ms`);
    const s1 = await statusJson(n1);
    assert.equal(s1.role, "primary");
    assert.equal(s1.counters.conn_migrations_out, 1);

    // Back to node 1, asked on node 2 which serves it now.
    const back = await runCli(["ha", "migrate", "--to", "1", "--conn", local], {
      wrap: ["ip", "netns", "exec", n2],
    });
    assert.equal(back.code, 0, back.stderr);

    const out = await load.output();
    const summary = parseLoadSummary(out.stdout);
    const detail = JSON.stringify(summary);
    assert.equal(summary.completed, CONNECTIONS, detail);
    assert.equal(summary.resets, 0, detail);
    assert.equal(summary.bytesVerified, CONNECTIONS * BYTES, detail);
    assert.equal(summary.bytesLost + summary.bytesDuplicated + summary.bytesCorrupted, 0, detail);
    assert.equal((await statusJson(n1)).counters.conn_migrations_in, 1);
  } finally {
    await load?.terminate(1000);
    await cluster?.stop();
    await labDown({ name: NAME });
  }
  assert.deepEqual(await labLeftovers(NAME), []);
});
