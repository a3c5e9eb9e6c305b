/**
 * A seeded, time-injected simulation of the `ha` replication protocol, in the
 * spirit of TigerBeetle's VOPR: one client streaming a byte stream to a VIP
 * (every node sees its segments, as the lab's switch floods them), N nodes
 * running `ReplicationNode`, and a network that loses, delays, reorders and
 * duplicates messages, cuts links (also one way) and crashes the primary.
 *
 * After every step it checks what clients must be able to rely on:
 *
 * 1. No byte is acknowledged to the client that a live member of the
 *    emitting primary's group lacks.
 * 2. The client is never acknowledged a byte it has not sent.
 * 3. A stale primary never emits: once a primary of epoch E emitted, nothing
 *    of an older epoch does.
 * 4. A primary that emits holds every byte ever acknowledged to the client
 *    (no loss across failover), and every node's stream equals the client's
 *    bytes (no corruption, no duplication: streams are rebuilt by offset).
 * 5. Liveness: once faults stop, the client's whole stream gets acknowledged,
 *    unless no node that could serve is left.
 *
 * @module
 */
import {
  type Action,
  type NodeId,
  type PeerMessage,
  ReplicationNode,
} from "../replication/node.ts";
import { Prng } from "./prng.ts";

/** Faults the network injects. */
export interface FaultOptions {
  /** Probability that a message is lost. */
  readonly loss: number;
  /** Probability that a message is delivered twice. */
  readonly duplication: number;
  /** One-way delay range in ms; a wide range reorders. */
  readonly delayMinMs: number;
  readonly delayMaxMs: number;
  /**
   * Cut links (some one way) now and then until `faultsEndMs`:
   * "none"; "sequential", one cut at a time (each healed, and the group
   * settled, before the next); "overlapping", cuts at any time.
   */
  readonly partitions: "none" | "sequential" | "overlapping";
  /** Longest cut, in ms (default 25; detection takes 5). */
  readonly partitionMaxMs?: number;
  /** Primaries to crash (at most nodes - 1). */
  readonly crashes: number;
  /** After this time the network heals and stops failing. */
  readonly faultsEndMs: number;
}

/** Options of `simulate`. */
export interface SimOptions {
  readonly seed: number;
  readonly nodes: number;
  readonly streamBytes: number;
  readonly faults: FaultOptions;
  /** Give up (liveness violation) after this long (default faultsEndMs + 2000). */
  readonly timeLimitMs?: number;
  /** Receives one line per notable event (role changes, crashes, cuts), to debug a seed. */
  readonly trace?: (line: string) => void;
}

/** What a run did. `violations` is empty when every invariant held. */
export interface SimResult {
  readonly seed: number;
  readonly violations: readonly string[];
  readonly clientDone: boolean;
  readonly finishedAtMs: number;
  readonly promotions: number;
  readonly crashes: number;
  readonly messages: number;
  /** Longest time the client waited for ack progress, in ms. */
  readonly longestStallMs: number;
}

const CLIENT = -1;
const NODE_TICK_MS = 0.5;
const CLIENT_TICK_MS = 1;

type Payload =
  | { readonly kind: "segment"; readonly offset: number; readonly data: Uint8Array }
  | { readonly kind: "ack"; readonly ack: number }
  | { readonly kind: "peer"; readonly message: PeerMessage };

interface Event {
  readonly at: number;
  readonly order: number;
  readonly run: () => void;
}

/** A binary min-heap of events by (time, insertion order): runs are deterministic. */
class EventQueue {
  #heap: Event[] = [];
  #order = 0;

  get size(): number {
    return this.#heap.length;
  }

  push(at: number, run: () => void): void {
    const heap = this.#heap;
    heap.push({ at, order: this.#order++, run });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  pop(): Event | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      while (true) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(a: Event, b: Event): boolean {
  return a.at < b.at || (a.at === b.at && a.order < b.order);
}

/**
 * Runs one seeded simulation and reports every invariant violation.
 *
 * @example
 * ```ts
 * const r = simulate({
 *   seed: 7, nodes: 3, streamBytes: 50_000,
 *   faults: { loss: 0.02, duplication: 0.01, delayMinMs: 0.02, delayMaxMs: 0.4,
 *             partitions: "sequential", crashes: 1, faultsEndMs: 200 },
 * });
 * if (r.violations.length > 0) console.log(r.seed, r.violations);
 * ```
 */
export function simulate(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

class Simulation {
  readonly #options: SimOptions;
  readonly #prng: Prng;
  readonly #queue = new EventQueue();
  readonly #nodes: ReplicationNode[];
  readonly #crashed = new Set<NodeId>();
  /** Directed links cut now: "from>to". */
  readonly #cuts = new Map<string, number>();
  readonly #violations: string[] = [];
  readonly #data: Uint8Array;
  #now = 0;
  #messages = 0;
  #promotions = 0;
  #crashes = 0;
  #maxEmittedEpoch = -1;
  #maxAckEmitted = 0;
  #lastEmitter: NodeId | undefined;
  // Client (a simplified TCP sender: cumulative acks, go-back-N on timeout).
  #sndUna = 0;
  #sndNxt = 0;
  #sndMax = 0;
  #mss: number;
  #windowBytes: number;
  #rtoMs = 4;
  #lastProgressAt = 0;
  /** Last ack progress only (the RTO timer also restarts #lastProgressAt). */
  #lastAckAt = 0;
  #longestStall = 0;

  constructor(options: SimOptions) {
    if (options.nodes < 1 || options.nodes > 8) {
      throw new RangeError("Cannot simulate: use 1 to 8 nodes");
    }
    this.#options = options;
    this.#prng = new Prng(options.seed);
    this.#data = this.#prng.bytes(options.streamBytes);
    this.#mss = 500 + this.#prng.int(1000);
    this.#windowBytes = this.#mss * (4 + this.#prng.int(12));
    const ids = Array.from({ length: options.nodes }, (_, i) => i);
    const config = {
      heartbeatIntervalMs: 1,
      missThreshold: 5,
      resyncSegmentBytes: 1000,
      resyncSegmentsPerTickMax: 8,
    };
    this.#nodes = ids.map((id) =>
      new ReplicationNode({ id, nodes: ids, primary: 0, config, now: 0 })
    );
  }

  run(): SimResult {
    const limit = this.#options.timeLimitMs ?? this.#options.faults.faultsEndMs + 2000;
    for (const node of this.#nodes) this.#every(NODE_TICK_MS, () => this.#nodeTick(node));
    this.#every(CLIENT_TICK_MS, () => this.#clientTick());
    this.#scheduleFaults();
    while (this.#queue.size > 0 && this.#violations.length === 0) {
      const event = this.#queue.pop()!;
      if (event.at > limit) break;
      this.#now = event.at;
      event.run();
      if (this.#sndUna === this.#data.length && this.#now > this.#options.faults.faultsEndMs) break;
    }
    const done = this.#sndUna === this.#data.length;
    this.#checkStreams("end");
    if (!done && this.#violations.length === 0 && this.#canServe()) {
      this.#violate(
        `liveness: client acked ${this.#sndUna}/${this.#data.length} when time ran out`,
      );
    }
    return {
      seed: this.#options.seed,
      violations: this.#violations,
      clientDone: done,
      finishedAtMs: this.#now,
      promotions: this.#promotions,
      crashes: this.#crashes,
      messages: this.#messages,
      longestStallMs: this.#longestStall,
    };
  }

  #every(periodMs: number, run: () => void): void {
    const step = () => {
      run();
      this.#queue.push(this.#now + periodMs, step);
    };
    this.#queue.push(this.#prng.between(0, periodMs), step);
  }

  #trace(line: string): void {
    this.#options.trace?.(`t=${this.#now.toFixed(3)} ${line}`);
  }

  #violate(detail: string): void {
    this.#violations.push(`t=${this.#now.toFixed(3)}ms ${detail}`);
  }

  // ---------------------------------------------------------------- faults

  #scheduleFaults(): void {
    const f = this.#options.faults;
    for (let i = 0; i < Math.min(f.crashes, this.#options.nodes - 1); i++) {
      this.#queue.push(
        this.#prng.between(5, Math.max(5, f.faultsEndMs)),
        () => this.#crashPrimary(),
      );
    }
    if (f.partitions === "none") return;
    let t = this.#prng.between(5, 30);
    while (t < f.faultsEndMs) {
      {
        const start = t; // captured by the event; `t` moves on
        const duration = this.#prng.between(1, f.partitionMaxMs ?? 25);
        const isolated = this.#prng.int(this.#options.nodes);
        const oneWay = this.#prng.chance(0.3);
        const peers = [CLIENT, ...this.#nodes.map((n) => n.id)].filter((p) =>
          p !== isolated && this.#prng.chance(0.7)
        );
        this.#queue.push(start, () => {
          this.#trace(
            `cut node ${isolated} ${oneWay ? "->" : "<->"} [${peers}] for ${duration.toFixed(1)}ms`,
          );
          for (const p of peers) {
            this.#cut(isolated, p, start + duration);
            if (!oneWay) this.#cut(p, isolated, start + duration);
          }
        });
        // Sequential: the next cut comes after this one healed and a failover settled.
        t += f.partitions === "overlapping"
          ? this.#prng.between(5, 40)
          : duration + this.#prng.between(15, 40);
      }
    }
  }

  #cut(from: number, to: number, until: number): void {
    const key = `${from}>${to}`;
    this.#cuts.set(key, Math.max(this.#cuts.get(key) ?? 0, until));
  }

  #linkUp(from: number, to: number): boolean {
    const until = this.#cuts.get(`${from}>${to}`);
    return until === undefined || this.#now >= until;
  }

  #crashPrimary(): void {
    // The node that last acknowledged the client: the one the client talks to
    // (a node that only believes it is primary is a replica to everyone else,
    // and a dead replica is not survived yet: issue 4).
    const primary = this.#lastEmitter === undefined || this.#crashed.has(this.#lastEmitter)
      ? undefined
      : this.#nodes[this.#lastEmitter];
    if (primary === undefined) return;
    this.#crashed.add(primary.id);
    this.#crashes += 1;
    this.#trace(`crash node ${primary.id} (primary, epoch ${primary.epoch})`);
  }

  /** Whether some live node could still serve (else liveness is not expected). */
  #canServe(): boolean {
    const up = (id: NodeId) => !this.#crashed.has(id) && this.#nodes[id]!.role !== "fenced";
    return this.#nodes.some((n) =>
      up(n.id) && n.members.every(up) &&
      (n.role === "primary" ? n.members.length + 1 : n.members.length) >= n.groupSizeMin
    );
  }

  // ---------------------------------------------------------------- network

  #send(from: number, to: number, payload: Payload): void {
    this.#messages += 1;
    const f = this.#options.faults;
    const faulty = this.#now < f.faultsEndMs;
    if (!this.#linkUp(from, to)) return;
    if (faulty && this.#prng.chance(f.loss)) return;
    const copies = faulty && this.#prng.chance(f.duplication) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const delay = this.#prng.between(f.delayMinMs, faulty ? f.delayMaxMs : f.delayMinMs * 2);
      this.#queue.push(this.#now + delay, () => this.#deliver(to, payload));
    }
  }

  #deliver(to: number, payload: Payload): void {
    if (to === CLIENT) {
      if (payload.kind === "ack") this.#clientAck(payload.ack);
      return;
    }
    if (this.#crashed.has(to)) return;
    const node = this.#nodes[to]!;
    const actions = payload.kind === "segment"
      ? node.clientSegment(payload.offset, payload.data, this.#now)
      : payload.kind === "peer"
      ? node.message(payload.message, this.#now)
      : [];
    this.#apply(node, actions);
  }

  #nodeTick(node: ReplicationNode): void {
    if (this.#crashed.has(node.id)) return;
    this.#apply(node, node.tick(this.#now));
  }

  /** Carries out a node's actions, checking the invariants on each. */
  #apply(node: ReplicationNode, actions: Action[]): void {
    for (const action of actions) {
      switch (action.kind) {
        case "send":
          this.#send(node.id, action.to, { kind: "peer", message: action.message });
          break;
        case "client_ack":
          this.#checkAck(node, action.ack, action.epoch);
          this.#send(node.id, CLIENT, { kind: "ack", ack: action.ack });
          break;
        case "promoted":
          this.#promotions += 1;
          this.#trace(
            `node ${node.id} promoted: epoch ${action.epoch}, members [${action.members}]`,
          );
          this.#checkStreams(`promotion of node ${node.id}`);
          break;
        case "following":
          this.#trace(`node ${node.id} follows ${action.primary} in epoch ${action.epoch}`);
          break;
        case "fenced":
          this.#trace(`node ${node.id} fenced by epoch ${action.epoch}`);
          break;
      }
    }
  }

  #checkAck(node: ReplicationNode, ack: number, epoch: number): void {
    if (node.role !== "primary" || node.epoch !== epoch) {
      this.#violate(`node ${node.id} (${node.role}) emitted for epoch ${epoch}`);
    }
    if (ack > this.#sndMax) this.#violate(`node ${node.id} acked ${ack} of ${this.#sndMax} sent`);
    // Checked at emission, not promotion: a candidate that lost the race may
    // promote with less, but it must never speak (its lease cannot be had).
    if (node.stream.prefix < this.#maxAckEmitted) {
      this.#violate(
        `loss: node ${node.id} emits in epoch ${epoch} holding ${node.stream.prefix} bytes, ` +
          `but ${this.#maxAckEmitted} were acknowledged`,
      );
    }
    if (epoch < this.#maxEmittedEpoch) {
      this.#violate(
        `stale primary: node ${node.id} emitted in epoch ${epoch} after epoch ${this.#maxEmittedEpoch}`,
      );
    }
    for (const m of node.members) {
      if (this.#crashed.has(m)) continue;
      const held = this.#nodes[m]!.stream.prefix;
      if (held < ack) {
        this.#violate(`node ${node.id} acked ${ack} but live member ${m} holds ${held}`);
      }
    }
    this.#maxEmittedEpoch = Math.max(this.#maxEmittedEpoch, epoch);
    this.#lastEmitter = node.id;
    this.#maxAckEmitted = Math.max(this.#maxAckEmitted, ack);
  }

  /** Every node's contiguous stream must be the client's bytes. */
  #checkStreams(when: string): void {
    for (const node of this.#nodes) {
      const held = node.stream.read(0, node.stream.prefix);
      for (let i = 0; i < held.length; i++) {
        if (held[i] !== this.#data[i]) {
          this.#violate(`corruption at ${when}: node ${node.id} byte ${i}`);
          return;
        }
      }
    }
  }

  // ---------------------------------------------------------------- client

  #clientTick(): void {
    if (this.#sndUna < this.#data.length && this.#now - this.#lastProgressAt >= this.#rtoMs) {
      // Retransmission timeout: go back to the first unacknowledged byte.
      this.#sndNxt = this.#sndUna;
      this.#rtoMs = Math.min(this.#rtoMs * 2, 64);
      this.#lastProgressAt = this.#now;
    }
    this.#clientSend();
  }

  #clientSend(): void {
    const limit = Math.min(this.#data.length, this.#sndUna + this.#windowBytes);
    while (this.#sndNxt < limit) {
      const length = Math.min(this.#mss, limit - this.#sndNxt);
      const data = this.#data.subarray(this.#sndNxt, this.#sndNxt + length);
      for (const node of this.#nodes) {
        this.#send(CLIENT, node.id, { kind: "segment", offset: this.#sndNxt, data });
      }
      this.#sndNxt += length;
      this.#sndMax = Math.max(this.#sndMax, this.#sndNxt);
    }
  }

  #clientAck(ack: number): void {
    if (ack > this.#sndMax) this.#violate(`client got ack ${ack} beyond ${this.#sndMax} sent`);
    if (ack <= this.#sndUna) return;
    this.#longestStall = Math.max(this.#longestStall, this.#now - this.#lastAckAt);
    this.#lastAckAt = this.#now;
    this.#sndUna = ack;
    this.#sndNxt = Math.max(this.#sndNxt, ack);
    this.#rtoMs = 4;
    this.#lastProgressAt = this.#now;
    this.#clientSend();
  }
}
