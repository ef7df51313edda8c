// Local drop domains (config `localDomains`): mail for them is not sent anywhere but written
// to `dropDir/<domain>/<mailbox>/` as a maildir (like IIS's Drop folder). Each copy is written
// to the mailbox's tmp/, fsynced, then renamed into new/ and the directory fsynced, so a reader
// never sees a partial file and a crash never loses an acknowledged delivery
// (https://cr.yp.to/proto/maildir.html).
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Config } from "../config.js";
import { localMailbox } from "../core/local-domains.js";
import { syncDir } from "../io/durable-file.js";
import type { Courier, DeliveryRequest, RecipientResult } from "./courier.js";
import { LOCAL_STATUS, localReply } from "../core/errors.js";

export interface LocalDropOptions {
  config: Config;
  /** Unique-name ingredients (injected by tests). */
  now?: () => number;
}

/** Maildir names must not contain "/" or ":". */
function maildirHost(hostname: string): string {
  return hostname.replace(/[/:]/g, "_");
}

export class LocalDropCourier implements Courier {
  private seq = 0;
  private host: string;
  private config: Config;
  constructor(private readonly opts: LocalDropOptions) {
    this.config = opts.config;
    this.host = maildirHost(opts.config.hostname);
  }

  reconfigure(config: Config): void {
    this.config = config;
    this.host = maildirHost(config.hostname);
  }

  async deliver(req: DeliveryRequest): Promise<RecipientResult[]> {
    const out: RecipientResult[] = [];
    for (const r of req.recipients) {
      const mailbox = localMailbox(this.config.localDomains, r.address);
      if (mailbox === undefined) {
        // Queued before the recipient was removed from the config.
        out.push({ recipient: r.address, outcome: "permanent", status: "5.1.1", reply: `550 5.1.1 <${r.address}>: no such local mailbox`, remote: false });
        continue;
      }
      const dir = join(this.config.dropDir, req.domain, mailbox);
      try {
        const file = await this.write(dir, req, r.address);
        out.push({ recipient: r.address, outcome: "delivered", status: "2.0.0", reply: `250 2.0.0 delivered to ${file}`, remote: false });
      } catch (e) {
        out.push({ recipient: r.address, outcome: "transient", status: LOCAL_STATUS.localError, reply: localReply("localError", `local drop to ${dir} failed: ${(e as Error).message}`), remote: false });
      }
    }
    return out;
  }

  private async write(dir: string, req: DeliveryRequest, rcpt: string): Promise<string> {
    for (const sub of ["tmp", "new", "cur"]) await fsp.mkdir(join(dir, sub), { recursive: true, mode: 0o750 });
    const now = (this.opts.now ?? Date.now)();
    const name = `${Math.floor(now / 1000)}.M${(now % 1000) * 1000}P${process.pid}Q${++this.seq}_${req.id}.${this.host}`;
    const tmp = join(dir, "tmp", name);
    const fh = await fsp.open(tmp, "wx", 0o640);
    try {
      // Envelope information a reader would otherwise lose (RFC 5321 §4.4: Return-Path is
      // added at final delivery).
      await fh.write(Buffer.from(`Return-Path: <${req.sender}>\r\nDelivered-To: ${rcpt}\r\n`));
      await copyStream(req.openBody(), fh);
      await fh.sync();
    } catch (e) {
      await fh.close().catch(() => undefined);
      await fsp.rm(tmp, { force: true });
      throw e;
    }
    await fh.close();
    const final = join(dir, "new", name);
    await fsp.rename(tmp, final);
    await syncDir(join(dir, "new"));
    return final;
  }

  async close(): Promise<void> {}
}

async function copyStream(src: Readable, fh: fsp.FileHandle): Promise<void> {
  try {
    for await (const chunk of src) {
      const buf = chunk as Buffer;
      for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
    }
  } finally {
    src.destroy();
  }
}
