// Runs one AF_XDP forwarder (lib/native.ts HaForwarder) in the network
// namespace this process was started in (`ip netns exec NS deno run ...`),
// driven over stdin/stdout by ha_xsk_test.ts: one JSON line per event.
//   argv[0]: JSON { a, b, vip, mode, toA, toB, frameCount?, ringSize? } (interface names)
//   stdin "stats" -> {"event":"stats",...}; "stop" or EOF -> stops, {"event":"stopped",...}
import { HaForwarder, type HaForwarderOptions, type HaForwarderStats } from "../../lib/native.ts";

interface Args {
  readonly a: string;
  readonly b: string;
  readonly vip: string;
  readonly mode: "native" | "generic";
  readonly toA: { dst: string; src: string };
  readonly toB: { dst: string; src: string };
  readonly frameCount?: number;
  readonly ringSize?: number;
}

async function ifindex(name: string): Promise<number> {
  const out = await new Deno.Command("ip", { args: ["-j", "link", "show", "dev", name] }).output();
  const [link] = JSON.parse(new TextDecoder().decode(out.stdout));
  return link.ifindex;
}

function emit(event: string, fields: Record<string, unknown>): void {
  const line = JSON.stringify(
    { event, ...fields },
    (_, v) => typeof v === "bigint" ? String(v) : v,
  );
  Deno.stdout.writeSync(new TextEncoder().encode(line + "\n"));
}

const args: Args = JSON.parse(Deno.args[0]!);
const options: HaForwarderOptions = {
  aIfindex: await ifindex(args.a),
  bIfindex: await ifindex(args.b),
  vip: args.vip,
  mode: args.mode,
  toA: args.toA,
  toB: args.toB,
  ...(args.frameCount === undefined ? {} : { frameCount: args.frameCount }),
  ...(args.ringSize === undefined ? {} : { ringSize: args.ringSize }),
};
let forwarder: HaForwarder;
const started = performance.now();
try {
  forwarder = await HaForwarder.start(options);
} catch (error) {
  emit("failed", { message: error instanceof Error ? error.message : String(error) });
  Deno.exit(1);
}
emit("started", { startMs: performance.now() - started });

let last: HaForwarderStats = forwarder.stats();
const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
let buffered = "";
outer: for await (const chunk of lines) {
  buffered += chunk;
  let newline: number;
  while ((newline = buffered.indexOf("\n")) >= 0) {
    const command = buffered.slice(0, newline).trim();
    buffered = buffered.slice(newline + 1);
    if (command === "stats") {
      last = forwarder.stats();
      emit("stats", { stats: last });
    } else if (command === "stop") {
      break outer;
    }
  }
}
last = forwarder.stats();
const stopping = performance.now();
await forwarder.close();
emit("stopped", { stats: last, stopMs: performance.now() - stopping });
