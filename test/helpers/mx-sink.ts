// A programmable remote MX for integration tests: smtp-server bound to one loopback address
// (127.0.0.x, port 25 by default). Per phase it can accept, answer 4xx/5xx, or be slow; the
// greeting can be refused (421/554); STARTTLS can be offered with a self-signed certificate
// made by openssl, or offered with a TLS setup no client can negotiate (handshake failure).
// "Down" is simply: no sink on that address (connection refused).
// Every received message is recorded: envelope, parameters, TLS, size, sha256 and (up to a
// bound, so a 20 MB test does not inflate the heap) the raw bytes.
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SMTPServer, type SMTPServerOptions, type SMTPServerSession } from "smtp-server";

export interface SinkReply {
  code: number;
  /** Text after the code, enhanced status included if wanted: "5.1.1 no such user". */
  message: string;
}

export interface SinkOptions {
  host: string;
  port?: number;
  /** Refuse at connection time with this reply instead of the 220 greeting. */
  greeting?: SinkReply;
  /** Delay before the greeting (slow server). */
  greetingDelayMs?: number;
  /** Reply to MAIL FROM (default: accept). */
  mail?: SinkReply;
  /** Reply to RCPT TO per recipient address (lower-case); absent = accept. */
  rcpt?: Record<string, SinkReply> | ((address: string) => SinkReply | undefined);
  /** Reply after the message data (default: accept). */
  data?: SinkReply;
  /** Delay before answering after the data. */
  dataDelayMs?: number;
  /** "none" (default): no STARTTLS; "ok": working STARTTLS; "broken": offered, handshake fails. */
  tls?: "none" | "ok" | "broken";
  /** The certificate for "ok" (PEM text); default: a self-signed one for CN=mx.test. */
  cert?: { key: string; cert: string };
  /** Advertise SIZE with this limit. */
  size?: number;
  pipelining?: boolean;
  dsn?: boolean;
  eightBitMime?: boolean;
  smtputf8?: boolean;
  /** Keep raw bytes of messages up to this size (default 1 MB). */
  keepRawUpTo?: number;
}

export interface ReceivedMessage {
  from: string;
  to: string[];
  mailParams: Record<string, string | true>;
  rcptParams: Record<string, string | true>[];
  size: number;
  sha256: string;
  raw?: Buffer;
  secure: boolean;
  tlsProtocol?: string;
  connectionId: string;
  remoteAddress: string;
}

export interface MxSink {
  host: string;
  port: number;
  messages: ReceivedMessage[];
  /** Connections accepted (TCP), in order; their ids. */
  connections: string[];
  /** RCPT commands seen, whatever the reply. */
  rcptSeen: string[];
  options: SinkOptions;
  /** Resolves when `n` messages have been received, or rejects after `ms`. */
  waitForMessages(n: number, ms?: number): Promise<void>;
  close(): Promise<void>;
}

let certCache: { key: string; cert: string } | undefined;

/** A throwaway self-signed certificate for CN=mx.test (openssl, one per test process). */
export function selfSignedCert(): { key: string; cert: string } {
  if (certCache) return certCache;
  const dir = mkdtempSync(join(tmpdir(), "mxd-cert-"));
  try {
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mx.test", "-days", "1", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")], { stdio: "ignore", timeout: 20_000 });
    certCache = { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
    return certCache;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function err(r: SinkReply): Error & { responseCode: number } {
  return Object.assign(new Error(r.message), { responseCode: r.code });
}

export async function startMxSink(options: SinkOptions): Promise<MxSink> {
  const port = options.port ?? 25;
  const keepRaw = options.keepRawUpTo ?? 1024 * 1024;
  const messages: ReceivedMessage[] = [];
  const connections: string[] = [];
  const rcptSeen: string[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const tlsMode = options.tls ?? "none";

  const tlsOptions: Partial<SMTPServerOptions> =
    tlsMode === "none"
      ? { hideSTARTTLS: true }
      : tlsMode === "ok"
        ? { ...(options.cert ?? selfSignedCert()), hideSTARTTLS: false }
        : // Only PSK cipher suites, TLS ≤ 1.2, and no PSK callback: every handshake fails with
          // "no shared cipher" right after the ClientHello.
          { ...selfSignedCert(), hideSTARTTLS: false, maxVersion: "TLSv1.2", ciphers: "PSK-AES128-CBC-SHA256" };

  const rcptReply = (addr: string): SinkReply | undefined => {
    const r = options.rcpt;
    if (!r) return undefined;
    return typeof r === "function" ? r(addr) : r[addr.toLowerCase()];
  };

  const server = new SMTPServer({
    name: `sink-${options.host}`,
    authOptional: true,
    disableReverseLookup: true,
    logger: false,
    banner: "mx-sink",
    hidePIPELINING: options.pipelining === false,
    hide8BITMIME: options.eightBitMime === false,
    hideSMTPUTF8: options.smtputf8 === false,
    hideDSN: options.dsn === false,
    ...(options.size !== undefined ? { size: options.size } : {}),
    socketTimeout: 30_000,
    closeTimeout: 250,
    ...tlsOptions,
    onConnect(session: SMTPServerSession, cb: (e?: Error | null) => void) {
      connections.push(session.id);
      const go = () => (options.greeting ? cb(err(options.greeting)) : cb());
      if (options.greetingDelayMs) setTimeout(go, options.greetingDelayMs).unref();
      else go();
    },
    onMailFrom(_addr, _session, cb) {
      if (options.mail) return cb(err(options.mail));
      cb();
    },
    onRcptTo(addr, _session, cb) {
      rcptSeen.push(addr.address);
      const r = rcptReply(addr.address);
      if (r && r.code >= 400) return cb(err(r));
      cb();
    },
    onData(stream, session, cb) {
      const hash = createHash("sha256");
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on("data", (c: Buffer) => {
        hash.update(c);
        size += c.length;
        if (size <= keepRaw) chunks.push(c);
      });
      stream.on("end", () => {
        const finish = () => {
          if (options.data && options.data.code >= 400) return cb(err(options.data));
          const tlsSocket = session.secure ? (session as unknown as { tlsOptions?: { version?: string } }).tlsOptions : undefined;
          messages.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
            to: session.envelope.rcptTo.map((r) => r.address),
            mailParams: (session.envelope.mailFrom ? session.envelope.mailFrom.args || {} : {}) as Record<string, string | true>,
            rcptParams: session.envelope.rcptTo.map((r) => (r.args || {}) as Record<string, string | true>),
            size,
            sha256: hash.digest("hex"),
            ...(size <= keepRaw ? { raw: Buffer.concat(chunks) } : {}),
            secure: session.secure,
            ...(tlsSocket?.version ? { tlsProtocol: tlsSocket.version } : {}),
            connectionId: session.id,
            remoteAddress: session.remoteAddress,
          });
          for (const w of [...waiters]) if (messages.length >= w.n) w.resolve();
          cb(null, options.data ? options.data.message : "2.0.0 queued");
        };
        if (options.dataDelayMs) setTimeout(finish, options.dataDelayMs).unref();
        else finish();
      });
    },
  });
  server.on("error", () => {});

  await new Promise<void>((resolve, reject) => {
    const onErr = (e: Error) => reject(e);
    server.server.once("error", onErr);
    server.listen(port, options.host, () => {
      server.server.off("error", onErr);
      resolve();
    });
  });

  return {
    host: options.host,
    port,
    messages,
    connections,
    rcptSeen,
    options,
    waitForMessages(n, ms = 5000) {
      if (messages.length >= n) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`sink ${options.host}: ${messages.length} of ${n} messages after ${ms} ms`)), ms);
        waiters.push({ n, resolve: () => (clearTimeout(t), resolve()) });
      });
    },
    close() {
      return new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 3000);
        // Active sessions are cut after closeTimeout; don't wait longer than that.
        server.close(() => {
          clearTimeout(t);
          resolve();
        });
      });
    },
  };
}
