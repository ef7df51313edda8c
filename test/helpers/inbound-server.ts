// An in-process SmtpServer on 127.0.0.1 (port 0) with a temporary spool, for inbound tests.
// Every server started is tracked; closeServers() (or inbound.ts's cleanup()) closes them.
import { tlsCredentialsFromPem } from "../../src/io/tls-credentials.js";
import type { DkimPolicy } from "../../src/dkim/message-signer.js";
import os from "node:os";
import { join } from "node:path";
import { promises as fsp } from "node:fs";
import { parseConfig, type Config } from "../../src/config.js";
import type { MessageMeta } from "../../src/core/envelope.js";
import { silentLogger } from "../../src/io/log.js";
import { systemClock } from "../../src/io/clock.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { SmtpServer } from "../../src/smtp/server.js";

export const HOSTNAME = "mx.test";

export async function tempDir(prefix = "mxd-test-"): Promise<string> {
  return fsp.mkdtemp(join(os.tmpdir(), prefix));
}


export interface Overrides {
  limits?: Record<string, unknown>;
  relay?: { allowedNetworks?: string[] };
  listen?: { host?: string; port?: number; tls?: boolean; mode?: "relay" | "submission"; proxyProtocol?: Record<string, unknown> }[];
  [k: string]: unknown;
}

export interface Inbound {
  server: SmtpServer;
  spool: JournalSpool;
  config: Config;
  dir: string;
  port: number;
  queued: MessageMeta[];
  close(): Promise<void>;
}

const liveServers = new Set<Inbound>();

export async function startInbound(overrides: Overrides = {}, opts: { tlsCredentials?: { cert: Buffer; key: Buffer }; dkim?: DkimPolicy } = {}): Promise<Inbound> {
  const dir = await tempDir("mxd-spool-");
  const { limits, relay, ...rest } = overrides;
  const config = parseConfig({
    hostname: HOSTNAME,
    listen: [{ host: "127.0.0.1", port: 0 }],
    spoolDir: dir,
    delivery: { enabled: false },
    ...rest,
    limits: { ...(limits ?? {}) },
    relay: { allowedNetworks: ["127.0.0.0/8"], ...(relay ?? {}) },
  });
  const spool = new JournalSpool({ dir, minFree: 0 });
  await spool.init();
  await spool.recover();
  const queued: MessageMeta[] = [];
  const server = new SmtpServer({
    config,
    spool,
    logger: silentLogger(),
    clock: systemClock,
    ...(opts.tlsCredentials ? { tls: tlsCredentialsFromPem(config.tls, opts.tlsCredentials) } : {}),
    dkim: opts.dkim,
    onQueued: (m) => queued.push(m),
  });
  await server.listen();
  const inbound: Inbound = {
    server,
    spool,
    config,
    dir,
    port: server.addresses[0]!.port,
    queued,
    async close() {
      liveServers.delete(inbound);
      await server.close(200);
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
  liveServers.add(inbound);
  return inbound;
}

export async function closeServers(): Promise<void> {
  await Promise.all([...liveServers].map((s) => s.close()));
}
