/**
 * Dawn prints warnings about adapter limits to the process's native stderr every time an adapter is
 * requested ("maxDynamicUniformBuffersPerPipelineLayout artificially reduced …"). They say nothing
 * the user can act on, and webgpu's binding offers no way to silence them, so the launcher reads the
 * child's native stderr through this filter. Only these exact lines are dropped; everything else,
 * including partial lines such as a progress display, passes through unchanged and at once.
 */
const STARTUP_WARNING =
  /Warning: maxDynamic\w+PerPipelineLayout artificially reduced from \d+ to \d+ to fit dynamic offset allocation limit\.\r?\n/g;

/** How a dropped warning begins (heldTail relies on it), and a length no such line reaches. */
const LEAD = 'Warning: maxDynamic';
const LONGEST_WARNING = 256;

export class NativeStderrFilter {
  private pending = '';
  /** How many start-up warnings were dropped so far. */
  dropped = 0;

  /** Feeds a chunk; returns the text to forward now (possibly empty). */
  push(chunk: string): string {
    const text = (this.pending + chunk).replace(STARTUP_WARNING, () => {
      this.dropped++;
      return '';
    });
    const hold = heldTail(text);
    this.pending = text.slice(hold);
    return text.slice(0, hold);
  }

  /** The end of the stream: whatever was held back is not a warning after all. */
  end(): string {
    const rest = this.pending;
    this.pending = '';
    return rest;
  }
}

/**
 * The index from which `text` must be held back (text.length when nothing is): a tail that may
 * still become a dropped warning. That is a line begun with LEAD, not ended and not yet longer than
 * any warning, or a tail that is a proper prefix of LEAD (the chunk ended inside it). Any other
 * partial line, a "Warning: " of someone else's included, goes out at once.
 */
function heldTail(text: string): number {
  const start = text.lastIndexOf(LEAD);
  if (start >= 0 && text.length - start < LONGEST_WARNING && !text.includes('\n', start)) return start;
  for (let n = Math.min(LEAD.length - 1, text.length); n > 0; n--) {
    if (text.endsWith(LEAD.slice(0, n))) return text.length - n;
  }
  return text.length;
}
