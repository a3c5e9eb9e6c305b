/**
 * A small seeded PRNG (mulberry32) for the simulator: the same seed gives the
 * same run, so a failing seed is a reproducible bug report.
 *
 * @module
 */

/**
 * Seeded pseudo-random numbers.
 *
 * @example
 * ```ts
 * const prng = new Prng(42);
 * prng.float(); // in [0, 1)
 * prng.int(10); // in 0..9
 * ```
 */
export class Prng {
  #state: number;

  constructor(seed: number) {
    this.#state = (seed ^ 0x9e3779b9) >>> 0;
  }

  /** A float in [0, 1). */
  float(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [0, bound). */
  int(bound: number): number {
    return Math.floor(this.float() * bound);
  }

  /** A float in [low, high). */
  between(low: number, high: number): number {
    return low + this.float() * (high - low);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** `length` random bytes. */
  bytes(length: number): Uint8Array {
    const out = new Uint8Array(length);
    for (let i = 0; i < length; i++) out[i] = this.int(256);
    return out;
  }
}
