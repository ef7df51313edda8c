// A deliberately dumb SMTP client with bounded waits, for inbound tests: writes exactly the
// bytes given, reads replies one at a time. Every client is tracked; closeClients() ends them.
import net from "node:net";
import tls from "node:tls";
import { once } from "node:events";
import { withTimeout } from "./wait.js";

export interface Reply {
  code: number;
  lines: string[];
  /** All lines joined with "\n". */
  text: string;
}

const liveClients = new Set<RawClient>();

/**
 * A deliberately dumb SMTP client: write exactly the bytes given, read replies one at a time.
 * Every read is bounded by a timeout.
 */
export class RawClient {
  private buf = "";
  private waiters: (() => void)[] = [];
  closed = false;
  socket!: net.Socket;

  private constructor() {}

  static async connect(port: number, opts: { host?: string; localAddress?: string; timeoutMs?: number; tls?: boolean } = {}): Promise<RawClient> {
    const c = new RawClient();
    liveClients.add(c);
    const host = opts.host ?? "127.0.0.1";
    const sock = opts.tls
      ? tls.connect({ host, port, localAddress: opts.localAddress, rejectUnauthorized: false, servername: "mx.test" } as tls.ConnectionOptions)
      : net.connect({ host, port, localAddress: opts.localAddress });
    c.attach(sock);
    await withTimeout(once(sock, opts.tls ? "secureConnect" : "connect"), opts.timeoutMs ?? 3000, "connect");
    return c;
  }

  private attach(sock: net.Socket): void {
    this.socket = sock;
    sock.setNoDelay(true);
    sock.on("data", (d: Buffer) => {
      this.buf += d.toString("utf8");
      this.wake();
    });
    sock.on("error", () => undefined);
    sock.on("close", () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private waitChange(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== done);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      this.waiters.push(done);
    });
  }

  /** Try to take one complete reply off the buffer. */
  private take(): Reply | undefined {
    let pos = 0;
    const lines: string[] = [];
    for (;;) {
      const nl = this.buf.indexOf("\n", pos);
      if (nl < 0) return undefined;
      const line = this.buf.slice(pos, nl).replace(/\r$/, "");
      pos = nl + 1;
      lines.push(line);
      if (/^\d{3}(?: |$)/.test(line) || !/^\d{3}-/.test(line)) {
        this.buf = this.buf.slice(pos);
        return { code: Number(line.slice(0, 3)), lines, text: lines.join("\n") };
      }
    }
  }

  /** Next reply, waiting at most timeoutMs. */
  async reply(timeoutMs = 3000): Promise<Reply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.take();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed while waiting for a reply (buffered: ${JSON.stringify(this.buf)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no reply within ${timeoutMs} ms (buffered: ${JSON.stringify(this.buf)})`);
      await this.waitChange(left);
    }
  }

  async replies(n: number, timeoutMs = 3000): Promise<Reply[]> {
    const out: Reply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.reply(timeoutMs));
    return out;
  }

  /** Whatever arrives within ms (for asserting that nothing more comes). */
  async drain(ms: number): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0 || this.closed) break;
      await this.waitChange(left);
    }
    const s = this.buf;
    this.buf = "";
    return s;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Send one command line and read its reply; if `expect` is given, assert the code. */
  async cmd(line: string, expect?: number | RegExp, timeoutMs = 3000): Promise<Reply> {
    this.write(line + "\r\n");
    const r = await this.reply(timeoutMs);
    if (expect !== undefined) {
      const ok = typeof expect === "number" ? r.code === expect : expect.test(r.text);
      if (!ok) throw new Error(`${JSON.stringify(line.slice(0, 80))}: expected ${String(expect)}, got ${JSON.stringify(r.text)}`);
    }
    return r;
  }

  /** True when the server closes the connection within ms. */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.waitChange(left);
    }
    return true;
  }

  /** Upgrade this connection to TLS (after a 220 to STARTTLS). */
  async startTls(timeoutMs = 3000): Promise<void> {
    const raw = this.socket;
    raw.removeAllListeners("data");
    raw.removeAllListeners("close");
    raw.on("close", () => {
      this.closed = true;
      this.wake();
    });
    const s = tls.connect({ socket: raw, rejectUnauthorized: false, servername: "mx.test" });
    this.attach(s);
    await withTimeout(once(s, "secureConnect"), timeoutMs, "TLS handshake");
  }

  get encrypted(): boolean {
    return (this.socket as tls.TLSSocket).encrypted === true;
  }

  destroy(): void {
    liveClients.delete(this);
    this.socket?.destroy();
  }
}

/** EHLO and return the extension keywords (upper-case, without the greeting line). */
export async function ehlo(c: RawClient, name = "client.test"): Promise<string[]> {
  const r = await c.cmd(`EHLO ${name}`, 250);
  return r.lines.slice(1).map((l) => l.slice(4));
}

/** Connect, read the greeting, EHLO. */
export async function session(port: number, opts: { localAddress?: string; helo?: string } = {}): Promise<RawClient> {
  const c = await RawClient.connect(port, opts);
  const g = await c.reply();
  if (g.code !== 220) throw new Error(`greeting: ${g.text}`);
  await ehlo(c, opts.helo);
  return c;
}

/** MAIL/RCPT/DATA/body; body must be the wire form (dot-stuffed, CRLF) without the final ".". Returns the final reply. */
export async function sendMessage(c: RawClient, from: string, to: string[], wireBody: string | Buffer, mailParams = ""): Promise<Reply> {
  await c.cmd(`MAIL FROM:<${from}>${mailParams ? " " + mailParams : ""}`, 250);
  for (const t of to) await c.cmd(`RCPT TO:<${t}>`, 250);
  await c.cmd("DATA", 354);
  c.write(wireBody);
  c.write(".\r\n");
  return c.reply(5000);
}

export function queuedId(r: Reply): string {
  const m = /^250 2\.0\.0 Ok: queued as ([0-9A-Z]{16})$/.exec(r.text);
  if (!m) throw new Error(`not a queued reply: ${JSON.stringify(r.text)}`);
  return m[1]!;
}

/** Destroy every raw client (use in afterEach; servers shared by a describe block survive). */
export function closeClients(): void {
  for (const c of [...liveClients]) c.destroy();
}
