// The control socket round trip against a fake agent: no privileges, no
// packet loop. The socket lives in a temporary folder, so a real agent of
// this namespace (in /run/reliab/ha) is never touched.
import assert from "node:assert/strict";
import { ConfigError, ReliabError } from "../../errors.ts";
import {
  controlSocketPath,
  probeControlSocket,
  requestFail,
  requestMigrate,
  requestStatus,
  serveControl,
} from "./control_socket.ts";
import { FakeAgent } from "./_fake_agent.ts";

async function withDir(run: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "rlhu-control-" });
  try {
    await run(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("the socket path names this network namespace by its inode", () => {
  const inode = /\[(\d+)\]/.exec(Deno.readLinkSync("/proc/self/ns/net"))![1]!;
  assert.equal(controlSocketPath({ dir: "/x" }), `/x/net-${inode}.sock`);
  assert.match(controlSocketPath(), /^\/run\/reliab\/ha\/net-\d+\.sock$/);
});

Deno.test("status round trip returns the agent's status with its extra fields", async () => {
  await withDir(async (dir) => {
    const agent = new FakeAgent({ id: 2, role: "replica" });
    await using server = await serveControl(agent, { dir });
    assert.equal((await Deno.stat(server.path)).mode! & 0o777, 0o600);
    const status = await requestStatus({ dir });
    assert.equal(status.id, 2);
    assert.equal(status.role, "replica");
    assert.equal(status.peers[0]!.role, "primary");
    assert.equal((status as unknown as { extra_field: string }).extra_field, "kept");
    agent.epoch = 99;
    assert.equal((await requestStatus({ dir })).epoch, 99, "every request reads a fresh status");
  });
});

Deno.test("fail round trip: the agent fails once and the reply shows before and after", async () => {
  await withDir(async (dir) => {
    const primary = new FakeAgent({ id: 1, role: "primary" });
    await using server = await serveControl(primary, { dir });
    const outcome = await requestFail({ dir });
    assert.equal(primary.fails, 1);
    assert.equal(outcome.before.role, "primary");
    assert.equal(outcome.after.role, "failed");
    await server.close();

    const replica = new FakeAgent({ id: 2, role: "replica" });
    await using again = await serveControl(replica, { dir });
    const forwarded = await requestFail({ dir });
    assert.equal(forwarded.before.role, "replica");
    assert.equal(forwarded.after.role, "primary");
    assert.equal(forwarded.after.epoch, forwarded.before.epoch + 16);
    await again.close();
  });
});

Deno.test("no agent: a ConfigError that says how to start one", async () => {
  await withDir(async (dir) => {
    const error = await requestStatus({ dir }).catch((e) => e);
    assert.ok(error instanceof ConfigError, String(error));
    assert.equal(error.code, "agent_not_running");
    assert.match(error.hint, /reliab ha up/);
    assert.equal(error.message.split("\n").length, 1);
    await assert.rejects(requestFail({ dir }), ConfigError);
  });
});

Deno.test("a stale socket file is replaced; a live one refuses a second agent", async () => {
  await withDir(async (dir) => {
    const path = controlSocketPath({ dir });
    // A socket file whose listener is gone: what a SIGKILLed agent leaves
    // (Deno's own listener removes its file on close, so bind one elsewhere).
    const bind = await new Deno.Command("python3", {
      args: ["-c", "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])", path],
    }).output();
    assert.equal(bind.code, 0, new TextDecoder().decode(bind.stderr));
    assert.equal(await probeControlSocket(path), "stale");
    await assert.rejects(requestStatus({ dir }), ConfigError);
    await using server = await serveControl(new FakeAgent({ id: 1, role: "primary" }), { dir });
    assert.equal(await probeControlSocket(path), "live");
    const second = await serveControl(new FakeAgent({ id: 1, role: "primary" }), { dir })
      .catch((e) => e);
    assert.ok(second instanceof ConfigError && second.code === "agent_running", String(second));
    assert.equal((await requestStatus({ dir })).role, "primary", "the first agent still serves");
    await server.close();
    assert.equal(await probeControlSocket(path), "absent", "close removes the socket file");
  });
});

Deno.test("an agent error and a bad request reach the client as one-line errors", async () => {
  await withDir(async (dir) => {
    const agent = new FakeAgent({ id: 1, role: "primary" });
    await using server = await serveControl(agent, { dir });
    agent.broken = new ReliabError("Cannot read the ha agent's status: loop died", {
      code: "native_io_error",
      hint: "check dmesg",
    });
    const error = await requestStatus({ dir }).catch((e) => e);
    assert.ok(error instanceof ReliabError, String(error));
    assert.equal(error.code, "native_io_error");
    assert.equal(error.hint, "check dmesg");
    assert.match(error.message, /loop died/);
    assert.equal(agent.fails, 0);

    const conn = await Deno.connect({ transport: "unix", path: server.path });
    await conn.write(new TextEncoder().encode('{"op":"reboot"}\n'));
    const reply = JSON.parse(await new Response(conn.readable).text());
    assert.equal(reply.ok, false);
    assert.equal(reply.code, "bad_request");
  });
});

Deno.test("migrate round trip: a live replica target is handed over to; wrong targets are refused", async () => {
  await withDir(async (dir) => {
    const primary = new FakeAgent({ id: 1, role: "primary" }); // its one peer: node 2, a replica
    await using _server = await serveControl(primary, { dir });
    for (
      const [to, pattern] of [
        [1, /Cannot migrate to node "1": it is this node, which already serves$/],
        [7, /Cannot migrate to node "7": no such peer$/],
        [0, /Cannot migrate to node "0": "0" is not a node id$/],
      ] as const
    ) {
      await assert.rejects(requestMigrate(to, { dir }), (error: unknown) => {
        assert.ok(error instanceof ReliabError);
        assert.match(error.message, pattern);
        assert.equal(error.code, "bad_target");
        return true;
      });
    }
    assert.deepEqual(primary.migrations, [], "a refused target never reaches the agent");
    const outcome = await requestMigrate(2, { dir });
    assert.deepEqual(primary.migrations, [2]);
    assert.equal(outcome.before.role, "primary");
    assert.equal(outcome.after.role, "replica");
    assert.equal(outcome.after.primary_id, 2);
  });
});

Deno.test("migrate one connection: the address is checked, the agent gets it host-order", async () => {
  await withDir(async (dir) => {
    const primary = new FakeAgent({ id: 1, role: "primary" });
    await using _server = await serveControl(primary, { dir });
    const outcome = await requestMigrate(2, { dir, conn: "10.78.0.1:40000" });
    assert.deepEqual(primary.connMigrations, [`2 ${0x0a4e0001} 40000`]);
    assert.equal(outcome.after.conn_migration?.result, "handed");
    assert.equal(outcome.after.role, "primary", "one connection moves, the node's role does not");
    for (
      const [to, conn, pattern] of [
        [
          2,
          "10.78.0.1",
          /Cannot migrate 10\.78\.0\.1 to node "2": "10\.78\.0\.1" is not a client ADDR:PORT$/,
        ],
        [2, "10.78.0.300:5", /is not a client ADDR:PORT$/],
        [1, "10.78.0.1:40000", /"1" is not another node's id$/],
        [7, "10.78.0.1:40000", /no such peer$/],
      ] as const
    ) {
      await assert.rejects(requestMigrate(to, { dir, conn }), pattern);
    }
    assert.equal(primary.connMigrations.length, 1, "refused requests never reach the agent");
  });
});
