// The bodies of messages just accepted, kept in memory for their first delivery attempt: the
// attempt then reads neither the head (Message-ID for the log) nor the body back from the
// journal (two preads per message under load; docs/performance.md, session 10). Bounded by the
// memory the buffers hold (their whole ArrayBuffers are counted); the oldest go first. An entry
// is dropped when its message leaves the queue or when the delivery has taken it. Only a copy
// of what is durable in the journal: losing an entry costs a read, never a message.

export class RecentBodies {
  private readonly map = new Map<string, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  /** Remember `body` for `id` (after its record is durable). Too big for the budget: not kept. */
  put(id: string, body: Buffer): void {
    this.drop(id);
    const cost = held(body);
    if (cost > this.maxBytes / 4) return;
    this.map.set(id, body);
    this.bytes += cost;
    while (this.bytes > this.maxBytes) {
      const oldest = this.map.keys().next().value as string;
      this.drop(oldest);
    }
  }

  get(id: string): Buffer | undefined {
    return this.map.get(id);
  }

  /** The body, and forget it (the first delivery has it now). */
  take(id: string): Buffer | undefined {
    const b = this.map.get(id);
    if (b) this.drop(id);
    return b;
  }

  drop(id: string): void {
    const b = this.map.get(id);
    if (!b) return;
    this.map.delete(id);
    this.bytes -= held(b);
  }

  get size(): number {
    return this.map.size;
  }

  get heldBytes(): number {
    return this.bytes;
  }
}

/** What keeping `b` keeps alive: its whole backing store (a slice of a larger read keeps all of it). */
function held(b: Buffer): number {
  return Math.max(b.length, b.buffer.byteLength);
}
