// A map bounded to `capacity` entries in two generations of capacity/2 (an approximate
// least-recently-used order in O(1) per operation): new entries go into the current
// generation; an entry found in the previous one moves to the current one; when the current
// generation is full it becomes the previous one and the old previous one is dropped whole.
// (Evicting a Map's first key one by one instead is quadratic in V8: its iterator walks the
// holes earlier deletions left.) Used by the rate limiter and the DNS cache.
export class GenerationalMap<V> {
  private current = new Map<string, V>();
  private previous = new Map<string, V>();
  /** Entries dropped to stay under the capacity, since creation. */
  evictions = 0;

  constructor(private cap: number) {}

  get capacity(): number {
    return this.cap;
  }

  /** Entries held now (never more than the capacity). */
  get size(): number {
    return this.current.size + this.previous.size;
  }

  private get generation(): number {
    return Math.max(1, Math.floor(this.cap / 2));
  }

  /** The value of `key`, moved into the current generation; undefined when there is none. */
  get(key: string): V | undefined {
    const v = this.current.get(key);
    if (v !== undefined) return v;
    const old = this.previous.get(key);
    if (old === undefined) return undefined;
    this.previous.delete(key);
    this.insert(key, old);
    return old;
  }

  set(key: string, v: V): void {
    if (this.current.has(key)) {
      this.current.set(key, v);
      return;
    }
    this.previous.delete(key);
    this.insert(key, v);
  }

  delete(key: string): boolean {
    return this.current.delete(key) || this.previous.delete(key);
  }

  /** Every entry, both generations (deleting the entry being visited is allowed). */
  *entries(): IterableIterator<[string, V]> {
    yield* this.current;
    yield* this.previous;
  }

  /** A new capacity: a smaller one evicts at once (the older generation first). */
  setCapacity(cap: number): void {
    this.cap = cap;
    if (this.size > cap) this.dropPrevious();
    if (this.current.size > this.generation) this.rotate();
    if (this.size > cap) {
      this.evictions += this.size;
      this.previous = new Map();
      this.current = new Map();
    }
  }

  private insert(key: string, v: V): void {
    if (this.current.size >= this.generation) this.rotate();
    this.current.set(key, v);
  }

  private rotate(): void {
    this.evictions += this.previous.size;
    this.previous = this.current;
    this.current = new Map();
  }

  private dropPrevious(): void {
    this.evictions += this.previous.size;
    this.previous = new Map();
  }
}
