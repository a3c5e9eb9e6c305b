// The verifying load client (`reliab ha load`) in a lab's client namespace,
// as the ha integration tests start it, and a wait for a share of its stream.
import type { Lab } from "../../lib/ha/lab.ts";
import { NetnsProcess } from "../../lib/ha/_netns_process.ts";
import { parseLoadProgress } from "../../lib/ha/child_output.ts";
import { reliabArgv } from "../../lib/ha/self_command.ts";

/**
 * Starts `ha load` against the lab's VIP: `connections` streams of `bytes`
 * each way, each paced to `rateBytesPerSecond` when given; `via` goes
 * through a SOCKS5 proxy to another destination.
 */
export function startLoad(
  lab: Lab,
  port: number,
  connections: number,
  bytes: number,
  rateBytesPerSecond?: number,
  via?: { readonly connect: string; readonly socks5: string },
): NetnsProcess {
  return new NetnsProcess(lab.client.netns, [
    ...reliabArgv(),
    "ha",
    "load",
    "--connect",
    via?.connect ?? `${lab.vip}:${port}`,
    ...(via === undefined ? [] : ["--socks5", via.socks5]),
    "--connections",
    String(connections),
    "--bytes",
    String(bytes),
    ...(rateBytesPerSecond === undefined ? [] : ["--rate", String(rateBytesPerSecond)]),
    "--progress-ms",
    "20",
    "--json",
  ]);
}

/**
 * Waits until every connection is up and `share` of the stream came back
 * verified. A load that ended first fails with its summary and last progress.
 */
export async function untilShare(
  load: NetnsProcess,
  connections: number,
  share: number,
): Promise<void> {
  try {
    await load.waitForLine("stderr", (line) => {
      const p = parseLoadProgress(line);
      return p !== undefined && p.connected === connections && p.verified >= share * p.total;
    }, { timeoutMs: 120_000, action: "The load made no progress", hint: "see 'reliab ha status'" });
  } catch (error) {
    const progress = load.lines("stderr").findLast((l) => parseLoadProgress(l) !== undefined);
    const summary = load.lines("stdout").join(" ").replace(/\s+/g, " ").slice(0, 600);
    throw new Error(
      `${error instanceof Error ? error.message : error}; last progress: ${progress ?? "none"}; ` +
        `load output: ${summary === "" ? "none" : summary}`,
    );
  }
}
