/**
 * Reassembly of one client byte stream by offset: segments may arrive out of
 * order, twice, or overlapping; the contiguous prefix is what an in-order
 * consumer (a TCP stack, the NF) has. Bytes are kept so a new primary can
 * re-send what a replica lacks.
 *
 * @module
 */

/** Most bytes one stream holds (the simulator's streams are far smaller). */
export const STREAM_BYTES_MAX = 64 * 1024 * 1024;

/**
 * A byte stream rebuilt from segments.
 *
 * @example
 * ```ts
 * const s = new ReassemblyStream();
 * s.insert(4, new Uint8Array([5, 6]));
 * s.insert(0, new Uint8Array([1, 2, 3, 4]));
 * s.prefix; // 6
 * ```
 */
export class ReassemblyStream {
  #bytes = new Uint8Array(4096);
  #present = new Uint8Array(4096);
  #prefix = 0;
  #inserted = 0;

  /** Length of the contiguous prefix [0, prefix). */
  get prefix(): number {
    return this.#prefix;
  }

  /** Highest offset + 1 of any byte held (>= prefix). */
  get end(): number {
    return this.#inserted;
  }

  /**
   * Stores `data` at `offset`; returns how many bytes were new. A byte already
   * held is kept (the first copy wins); the caller checks content elsewhere.
   */
  insert(offset: number, data: Uint8Array): number {
    if (!Number.isInteger(offset) || offset < 0 || offset + data.length > STREAM_BYTES_MAX) {
      throw new RangeError(`Cannot insert at "${offset}": outside the stream`);
    }
    this.#grow(offset + data.length);
    let fresh = 0;
    for (let i = 0; i < data.length; i++) {
      if (this.#present[offset + i] === 1) continue;
      this.#present[offset + i] = 1;
      this.#bytes[offset + i] = data[i]!;
      fresh += 1;
    }
    this.#inserted = Math.max(this.#inserted, offset + data.length);
    while (this.#prefix < this.#inserted && this.#present[this.#prefix] === 1) this.#prefix += 1;
    return fresh;
  }

  /** Whether every byte of [offset, offset + length) is held. */
  has(offset: number, length: number): boolean {
    if (offset + length <= this.#prefix) return true;
    for (let i = Math.max(offset, this.#prefix); i < offset + length; i++) {
      if (this.#present[i] !== 1) return false;
    }
    return true;
  }

  /** A copy of held bytes [offset, offset + length) (must be held). */
  read(offset: number, length: number): Uint8Array {
    if (!this.has(offset, length)) {
      throw new RangeError(`Cannot read [${offset}, ${offset + length}): not all held`);
    }
    return this.#bytes.slice(offset, offset + length);
  }

  #grow(length: number): void {
    if (length <= this.#bytes.length) return;
    let size = this.#bytes.length;
    while (size < length) size *= 2;
    const bytes = new Uint8Array(size);
    bytes.set(this.#bytes);
    const present = new Uint8Array(size);
    present.set(this.#present);
    this.#bytes = bytes;
    this.#present = present;
  }
}
