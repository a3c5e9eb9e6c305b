/**
 * Runs parts of `ha up` inside a node's namespace for ha_up_test.ts (the lib
 * acts on the namespace of its own process, so tests start it there with
 * `ip netns exec NODE deno run ... _ha_up_child.ts MODE ...`).
 *
 * - `nfns ID IFACE VIP`: makes the NF namespace, prints it as one JSON line,
 *   removes it when stdin closes, prints "removed".
 * - `up-fake ID IFACE VIP PEER -- CMD...`: `haUp` with a fake agent; prints
 *   the ready line as JSON, runs until SIGTERM, prints the agent's stop count.
 * - `up-not-supported ID IFACE VIP PEER -- CMD...`: `haUp` whose agent start
 *   fails as the native stub's does; prints the error, exits 1.
 */
import { createNfNamespace } from "../../lib/ha/agent/nf_namespace.ts";
import { haUp, type HaUpOptions } from "../../lib/ha/agent/up.ts";
import { FakeAgent } from "../../lib/ha/agent/_fake_agent.ts";
import { NativeStatusError } from "../../lib/native.ts";
import { ReliabError } from "../../lib/errors.ts";

const [mode, id, iface, vip, peer, ...rest] = Deno.args;

function line(value: unknown): void {
  console.log(typeof value === "string" ? value : JSON.stringify(value));
}

async function nfns(): Promise<void> {
  const nf = await createNfNamespace({ id: Number(id), outerIface: iface!, vip: vip! });
  const { remove: _, ...info } = nf;
  line(info);
  await new Response(Deno.stdin.readable).arrayBuffer();
  await nf.remove();
  await nf.remove(); // Idempotent.
  line("removed");
}

async function up(fake: boolean): Promise<void> {
  const agent = new FakeAgent({ id: Number(id), role: "primary" });
  const stop = new AbortController();
  Deno.addSignalListener("SIGTERM", () => stop.abort());
  const options: HaUpOptions = {
    id: Number(id),
    vip: vip!,
    iface: iface!,
    peers: [peer!],
    primary: true,
    command: rest.slice(rest.indexOf("--") + 1),
    signal: stop.signal,
    onReady: (ready) => line(ready),
    startAgent: (config) => {
      if (!fake) {
        throw new NativeStatusError(
          "not_supported",
          `Cannot start the ha agent of node ${config.id}`,
          "the agent's packet loop is not built yet",
        );
      }
      return agent;
    },
  };
  try {
    await haUp(options);
  } catch (error) {
    line(`error: ${error instanceof ReliabError ? error.message : String(error)}`);
    Deno.exit(1);
  }
  line(`stopped: agent stops ${agent.stops}`);
}

if (mode === "nfns") await nfns();
else if (mode === "up-fake") await up(true);
else if (mode === "up-not-supported") await up(false);
else throw new Error(`unknown mode ${mode}`);
Deno.exit(0);
