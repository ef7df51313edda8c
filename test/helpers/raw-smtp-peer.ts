// A hand-scripted SMTP server for client tests: a plain net.Server whose every connection runs a
// test-supplied script, so the test controls the exact bytes (replies split across TCP segments,
// multi-line replies, 421 mid-session, drops at chosen points, silence for timeouts).
// Everything the client sends is recorded per connection. After the script returns the
// connection stays in a small "tail" mode (QUIT → 221 and close, RSET/NOOP → 250) so a client
// that pools the connection and QUITs it later is served. Every wait is bounded.
// The usual steps of a script are here too (greet, acceptTransaction), and a silent peer (a
// blackhole MX that accepts TCP and never speaks), so tests do not each write their own.
import * as net from "node:net";
import * as tls from "node:tls";

export class PeerConn {
  private buf = Buffer.alloc(64 * 1024);
  private len = 0;
  private pos = 0;
  /** Where data() resumes its search for the end of data (keeps big bodies linear). */
  private scan = 0;
  private wake: (() => void) | undefined;
  closed = false;
  /** Commands read in tail mode, after the script. */
  readonly tail: string[] = [];
  private readonly closedP: Promise<void>;

  constructor(
    readonly index: number,
    public socket: net.Socket,
  ) {
    socket.setNoDelay(true);
    this.closedP = new Promise((resolve) => socket.once("close", () => resolve()));
    this.listen(socket);
    socket.once("close", () => {
      this.closed = true;
      this.poke();
    });
  }

  private listen(s: net.Socket): void {
    s.on("data", (c: Buffer) => {
      if (this.len + c.length > this.buf.length) {
        const nb = Buffer.alloc(Math.max(this.buf.length * 2, this.len + c.length));
        this.buf.copy(nb, 0, 0, this.len);
        this.buf = nb;
      }
      c.copy(this.buf, this.len);
      this.len += c.length;
      this.poke();
    });
    s.on("error", () => {});
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private get rx(): Buffer {
    return this.buf.subarray(0, this.len);
  }

  /** Everything the client sent on this connection (clear text and, after STARTTLS, decrypted). */
  get received(): string {
    return this.rx.toString("latin1");
  }

  get receivedBytes(): Buffer {
    return this.rx;
  }

  private async until<T>(find: () => T | undefined, ms: number, what: string): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const v = find();
      if (v !== undefined) return v;
      if (this.closed) throw new Error(`peer conn ${this.index}: closed while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`peer conn ${this.index}: timeout waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => (clearTimeout(t), resolve());
      });
    }
  }

  /** The next CRLF-terminated line from the client, without the CRLF. */
  line(ms = 3000): Promise<string> {
    return this.until(
      () => {
        const i = this.rx.indexOf("\r\n", this.pos, "latin1");
        if (i < 0) return undefined;
        const l = this.rx.subarray(this.pos, i).toString("utf8");
        this.pos = i + 2;
        return l;
      },
      ms,
      "a command line",
    );
  }

  /** Read one command, check it against `re`, optionally answer. */
  async expect(re: RegExp, reply?: string, ms = 3000): Promise<string> {
    const l = await this.line(ms);
    if (!re.test(l)) throw new Error(`peer conn ${this.index}: expected ${re}, got ${JSON.stringify(l)}`);
    if (reply !== undefined) this.write(reply);
    return l;
  }

  /** The DATA payload up to and including the terminating ".\r\n". */
  data(ms = 3000): Promise<Buffer> {
    return this.until(
      () => {
        let end: number;
        if (this.rx.subarray(this.pos, this.pos + 3).toString("latin1") === ".\r\n") end = this.pos + 3;
        else {
          const i = this.rx.indexOf("\r\n.\r\n", Math.max(this.pos, this.scan), "latin1");
          if (i < 0) {
            this.scan = Math.max(this.pos, this.len - 4);
            return undefined;
          }
          end = i + 5;
        }
        const d = this.rx.subarray(this.pos, end);
        this.pos = end;
        this.scan = end;
        return Buffer.from(d);
      },
      ms,
      "the end of data",
    );
  }

  /** Waits for unread bytes from the client and returns them (e.g. a TLS ClientHello). */
  bytes(ms = 3000): Promise<Buffer> {
    return this.until(
      () => {
        if (this.len <= this.pos) return undefined;
        const b = Buffer.from(this.rx.subarray(this.pos));
        this.pos = this.len;
        return b;
      },
      ms,
      "bytes",
    );
  }

  /** Resolves once the client closed the connection (or rejects after ms). */
  async waitClose(ms = 3000): Promise<void> {
    await this.until(() => (this.closed ? true : undefined), ms, "the client to close").catch((e: Error) => {
      if (!this.closed) throw e;
    });
  }

  write(s: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(s);
  }

  /** Write the parts as separate TCP segments (a pause between them). */
  async segments(...parts: string[]): Promise<void> {
    for (const [i, p] of parts.entries()) {
      if (i > 0) await sleep(15);
      this.write(p);
    }
  }

  /** Upgrade to TLS as the server (after our "220" to STARTTLS); discards unread clear text. */
  async startTls(ctx: { key: string; cert: string }, ms = 3000): Promise<void> {
    this.socket.removeAllListeners("data");
    this.len = 0;
    this.pos = 0;
    this.scan = 0;
    const secure = new tls.TLSSocket(this.socket, { isServer: true, key: ctx.key, cert: ctx.cert });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("server TLS handshake timeout")), ms);
      secure.once("secure", () => (clearTimeout(t), resolve()));
      secure.once("error", (e) => (clearTimeout(t), reject(e)));
    });
    this.socket = secure;
    this.listen(secure);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  get done(): Promise<void> {
    return this.closedP;
  }

  /** After the script: answer QUIT/RSET/NOOP until the client closes. */
  async runTail(): Promise<void> {
    while (!this.closed && !this.socket.destroyed) {
      let l: string;
      try {
        l = await this.line(10_000);
      } catch {
        return;
      }
      this.tail.push(l);
      const v = l.toUpperCase();
      if (v === "QUIT") {
        this.write("221 2.0.0 bye\r\n");
        this.end();
        return;
      }
      this.write(v === "RSET" || v === "NOOP" ? "250 2.0.0 ok\r\n" : "502 5.5.1 not in the script\r\n");
    }
  }
}

export interface RawPeerOptions {
  host: string;
  port?: number;
  /** Runs once per accepted connection (index 0, 1, …). */
  script: (c: PeerConn) => Promise<void>;
}

export interface RawPeer {
  host: string;
  port: number;
  /** "host:port" for a route entry. */
  address: string;
  conns: PeerConn[];
  /** Script failures (a test asserts this is empty). */
  errors: Error[];
  /** Connections open at most at once so far. */
  readonly maxOpen: number;
  /** Every connection closed (by the client or the script) within ms. */
  allClosed(ms?: number): Promise<void>;
  close(): Promise<void>;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function startRawPeer(o: RawPeerOptions): Promise<RawPeer> {
  const conns: PeerConn[] = [];
  const errors: Error[] = [];
  let open = 0;
  let maxOpen = 0;
  const server = net.createServer((socket) => {
    const c = new PeerConn(conns.length, socket);
    conns.push(c);
    maxOpen = Math.max(maxOpen, ++open);
    socket.once("close", () => open--);
    void (async () => {
      try {
        await o.script(c);
        await c.runTail();
      } catch (e) {
        errors.push(e as Error);
        c.destroy();
      }
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(o.port ?? 0, o.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    host: o.host,
    port,
    address: `${o.host}:${port}`,
    conns,
    errors,
    get maxOpen() {
      return maxOpen;
    },
    async allClosed(ms = 3000) {
      let timer: NodeJS.Timeout | undefined;
      const t = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`peer ${o.host}:${port}: ${conns.filter((c) => !c.closed).length} connection(s) still open after ${ms} ms`)), ms);
      });
      try {
        await Promise.race([Promise.all(conns.map((c) => c.done)), t]);
      } finally {
        clearTimeout(timer);
      }
    },
    close() {
      for (const c of conns) c.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A peer that accepts connections and never writes a byte (a blackhole MX, a tarpit). */
export function startSilentPeer(host: string, port?: number): Promise<RawPeer> {
  return startRawPeer({ host, ...(port !== undefined ? { port } : {}), script: (c) => c.done });
}

/** The greeting, then EHLO (checked against `ehlo`) answered with these keywords. */
export async function greet(c: PeerConn, ext: readonly string[] = ["PIPELINING", "8BITMIME", "SIZE 1000000"], ehlo: RegExp = /^EHLO /): Promise<void> {
  c.write("220 peer.test ESMTP\r\n");
  await c.expect(ehlo);
  const lines = ["peer.test hello", ...ext];
  c.write(lines.map((l, i) => `250${i === lines.length - 1 ? " " : "-"}${l}\r\n`).join(""));
}

/** A complete pipelined transaction from `sender` to `rcpts`; returns the data received. */
export async function acceptTransaction(c: PeerConn, sender: string, rcpts: readonly string[], final = "250 2.0.0 queued\r\n"): Promise<Buffer> {
  const re = (a: string) => a.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  await c.expect(new RegExp(`^MAIL FROM:<${re(sender)}>`));
  for (const r of rcpts) await c.expect(new RegExp(`^RCPT TO:<${re(r)}>`));
  c.write("250 2.1.0 ok\r\n" + rcpts.map(() => "250 2.1.5 ok\r\n").join(""));
  await c.expect(/^DATA$/, "354 go ahead\r\n");
  const d = await c.data();
  c.write(final);
  return d;
}
