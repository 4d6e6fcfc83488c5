/**
 * GPU time of compute passes from timestamp queries (when the device has them). Each pass gets a
 * begin/end pair; `resolveInto` copies the raw nanosecond counters into a caller's staging buffer so
 * that timings come back with the results in the same single readback.
 */
export class PassTimer {
  readonly querySet: GPUQuerySet;
  private readonly resolveBuffer: GPUBuffer;
  /** Bytes the timer needs in a staging buffer: two u64 per pass. */
  readonly bytes: number;

  constructor(
    device: GPUDevice,
    readonly maxPasses: number,
    label: string,
  ) {
    this.querySet = device.createQuerySet({
      label: `${label} timestamps`,
      type: 'timestamp',
      count: 2 * maxPasses,
    });
    this.bytes = 16 * maxPasses;
    this.resolveBuffer = device.createBuffer({
      label: `${label} timestamps resolve`,
      size: this.bytes,
      usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
    });
  }

  /** The timestampWrites of pass `i`. */
  writes(i: number): GPUComputePassTimestampWrites {
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /**
   * Resolves `passes` pairs from pass `first` on and copies them into `staging` at `offset` (8-byte
   * aligned).
   */
  resolveInto(
    encoder: GPUCommandEncoder,
    passes: number,
    staging: GPUBuffer,
    offset: number,
    first = 0,
  ): void {
    encoder.resolveQuerySet(this.querySet, 2 * first, 2 * passes, this.resolveBuffer, 0);
    encoder.copyBufferToBuffer(this.resolveBuffer, 0, staging, offset, 16 * passes);
  }

  /** Total GPU milliseconds of `passes` passes from a mapped staging range. */
  static totalMs(mapped: ArrayBuffer, offset: number, passes: number): number {
    const ticks = new BigUint64Array(mapped, offset, 2 * passes);
    let ns = 0n;
    for (let i = 0; i < passes; i++) {
      const d = ticks[2 * i + 1]! - ticks[2 * i]!;
      if (d > 0n) ns += d;
    }
    return Number(ns) / 1e6;
  }

  /** Milliseconds of each pass. */
  static passMs(mapped: ArrayBuffer, offset: number, passes: number): number[] {
    const ticks = new BigUint64Array(mapped, offset, 2 * passes);
    return Array.from({ length: passes }, (_, i) => {
      const d = ticks[2 * i + 1]! - ticks[2 * i]!;
      return d > 0n ? Number(d) / 1e6 : 0;
    });
  }

  destroy(): void {
    this.querySet.destroy();
    this.resolveBuffer.destroy();
  }
}
