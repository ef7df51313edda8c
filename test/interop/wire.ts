// A raw SMTP client for tests that need exact control of the bytes on the wire (interop byte
// comparisons, smuggling payloads, fuzzing, slow clients). Every wait is bounded.
import net from "node:net";

export interface Reply {
  code: number;
  lines: string[];
  text: string;
}

export class Wire {
  private buf = "";
  private waiters: (() => void)[] = [];
  closed = false;
  readonly received: string[] = [];
  private constructor(readonly socket: net.Socket) {
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => {
      this.buf += d;
      this.received.push(d);
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => undefined);
  }

  static connect(port: number, host = "127.0.0.1", opts: { localAddress?: string; timeoutMs?: number } = {}): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ port, host, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
      const t = setTimeout(() => (s.destroy(), reject(new Error(`connect ${host}:${port} timed out`))), opts.timeoutMs ?? 5000);
      s.once("connect", () => (clearTimeout(t), resolve(new Wire(s))));
      s.once("error", (e) => (clearTimeout(t), reject(e)));
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private async waitChange(deadline: number): Promise<boolean> {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    return new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), left);
      this.waiters.push(() => (clearTimeout(t), resolve(true)));
    });
  }

  /** Next complete reply (multi-line aware). Rejects on timeout or close. */
  async reply(ms = 10_000): Promise<Reply> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = this.takeReply();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed while waiting for a reply (pending: ${JSON.stringify(this.buf)})`);
      if (!(await this.waitChange(deadline))) throw new Error(`no reply within ${ms} ms (pending: ${JSON.stringify(this.buf.slice(0, 200))})`);
    }
  }

  private takeReply(): Reply | undefined {
    const lines: string[] = [];
    let pos = 0;
    for (;;) {
      const nl = this.buf.indexOf("\n", pos);
      if (nl < 0) return undefined;
      const line = this.buf.slice(pos, nl).replace(/\r$/, "");
      lines.push(line);
      pos = nl + 1;
      if (!/^\d{3}-/.test(line)) {
        this.buf = this.buf.slice(pos);
        return { code: Number(line.slice(0, 3)) || 0, lines, text: lines.join("\n") };
      }
    }
  }

  /** Read `n` replies. */
  async replies(n: number, ms = 10_000): Promise<Reply[]> {
    const out: Reply[] = [];
    for (let i = 0; i < n; i++) out.push(await this.reply(ms));
    return out;
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed || !this.socket.writable) return resolve();
      this.socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data, () => resolve());
    });
  }

  async cmd(line: string, ms = 10_000): Promise<Reply> {
    await this.write(line + "\r\n");
    return this.reply(ms);
  }

  /** Resolves true when the server closed the connection within `ms`. */
  async waitClosed(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed) if (!(await this.waitChange(deadline))) return this.closed;
    return true;
  }

  end(): void {
    this.socket.end();
  }
  destroy(): void {
    this.socket.destroy();
  }
}

/** Dot-stuff message bytes (CRLF lines) and append the end-of-data marker. */
export function dotStuff(msg: Buffer | string): Buffer {
  const s = typeof msg === "string" ? msg : msg.toString("latin1");
  const body = s.replace(/(^|\r\n)\./g, "$1..");
  return Buffer.from(body + (body.endsWith("\r\n") || body === "" ? "" : "\r\n") + ".\r\n", "latin1");
}

/** One complete transaction over a fresh connection; returns the final reply and queue id. */
export async function sendMessage(port: number, host: string, env: { from: string; to: string[]; ehlo?: string; mailParams?: string }, message: Buffer | string): Promise<{ reply: Reply; id?: string }> {
  const w = await Wire.connect(port, host);
  try {
    await w.reply();
    const ehlo = await w.cmd(`EHLO ${env.ehlo ?? "client.test"}`);
    if (ehlo.code !== 250) throw new Error(`EHLO: ${ehlo.text}`);
    const mail = await w.cmd(`MAIL FROM:<${env.from}>${env.mailParams ? " " + env.mailParams : ""}`);
    if (mail.code !== 250) return { reply: mail };
    let ok = 0;
    let last: Reply = mail;
    for (const r of env.to) {
      last = await w.cmd(`RCPT TO:<${r}>`);
      if (last.code === 250) ok++;
    }
    if (!ok) return { reply: last };
    const data = await w.cmd("DATA");
    if (data.code !== 354) return { reply: data };
    await w.write(dotStuff(message));
    const fin = await w.reply(30_000);
    await w.write("QUIT\r\n");
    const id = /queued as ([0-9A-Z]+)/.exec(fin.text)?.[1];
    return { reply: fin, ...(id ? { id } : {}) };
  } finally {
    w.destroy();
  }
}

/** Split a message into its first header field (with continuation lines) and the rest. */
export function splitFirstHeader(raw: Buffer): { first: string; rest: Buffer } {
  const s = raw.toString("latin1");
  let i = s.indexOf("\r\n");
  while (i >= 0 && (s[i + 2] === " " || s[i + 2] === "\t")) i = s.indexOf("\r\n", i + 2);
  if (i < 0) return { first: s, rest: Buffer.alloc(0) };
  return { first: s.slice(0, i + 2), rest: Buffer.from(s.slice(i + 2), "latin1") };
}
