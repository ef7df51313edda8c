// One zod schema for the whole configuration. Every key has a default, unknown keys are
// refused (typos must not be silently ignored), and errors name the key path and what was
// expected. Durations accept "30s", "5m", "1h", "5d" (or a number of milliseconds); sizes
// accept "10MB", "512KB" (or a number of bytes).
import { z } from "zod";
import { hostname as osHostname } from "node:os";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { parseCidr } from "./core/cidr.js";
import { hostAndPort, hostKind, isHostName, isLoopbackHost, parseHostPort } from "./core/host-port.js";
import { describeIssue, displayConfig as displayAsWritten } from "./config-describe.js";
import { localMailbox } from "./core/local-domains.js";
import { findRoute } from "./core/routes.js";
import { MxdError } from "./core/errors.js";
import { DEFAULT_MAX_LENGTH, MIN_MAX_LENGTH } from "./core/proxy-limits.js";

const DURATION_RE = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

export function parseDuration(v: string | number): number | undefined {
  if (typeof v === "number") return Number.isFinite(v) && v >= 0 ? v : undefined;
  const m = DURATION_RE.exec(v.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2]!]!);
}

const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?$/i;
const UNIT_B: Record<string, number> = { B: 1, KB: 1024, MB: 1024 * 1024, GB: 1024 * 1024 * 1024 };

export function parseSize(v: string | number): number | undefined {
  if (typeof v === "number") return Number.isInteger(v) && v > 0 ? v : undefined;
  const m = SIZE_RE.exec(v.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_B[(m[2] ?? "B").toUpperCase()]!);
}

const duration = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const ms = parseDuration(v);
    if (ms === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a duration like "30s", "5m", "1h", "5d" or milliseconds, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return ms;
  });

const size = z
  .union([z.string(), z.number()])
  .transform((v, ctx) => {
    const b = parseSize(v);
    if (b === undefined) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a size like "10MB", "512KB" or a number of bytes, got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return b;
  });

const port = z.number().int().min(0).max(65535);

/** A PEM file of CA certificates, checked when the config is loaded (a typo must not surface as deferred mail). */
const pemCaFile = z
  .string()
  .min(1)
  .superRefine((path, ctx) => {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      return void ctx.addIssue({ code: z.ZodIssueCode.custom, message: `cannot read ${JSON.stringify(path)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    }
    if (!text.includes("-----BEGIN CERTIFICATE-----")) ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected a PEM file of CA certificates, got ${JSON.stringify(path)} without any "BEGIN CERTIFICATE"` });
  });

/** Outbound TLS security levels (Postfix names; docs/deliverability.md). */
export const TLS_LEVELS = ["may", "encrypt", "verify", "dane", "dane-only"] as const;
const tlsLevel = z.enum(TLS_LEVELS);

/** "host[:port]" checked by core/host-port (port range, IP literals, host names); kept as written. */
function hostPortOf(opts: { defaultPort?: number; minPort?: number; ipOnly?: boolean }) {
  return z.string().superRefine((s, ctx) => {
    const r = parseHostPort(s, opts);
    if (!r.ok) return void ctx.addIssue({ code: z.ZodIssueCode.custom, message: r.error });
    if (opts.ipOnly && r.value.kind === "name") ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected an IP address, got ${JSON.stringify(s)}` });
  });
}
/** A host we connect to: routes, fallback relays (the port defaults to delivery.port). */
const destination = hostPortOf({ defaultPort: 25, minPort: 1 });
const ipAddress = z.string().refine((s) => hostKind(s) === "ipv4" || hostKind(s) === "ipv6", (s) => ({ message: `expected an IP address, got ${JSON.stringify(s)}` }));
const hostName = z.string().refine((s) => isHostName(s), (s) => ({ message: `expected a host name like "mx.example.org", got ${JSON.stringify(s)}` }));
const listenHost = z.string().refine((s) => hostKind(s) !== undefined, (s) => ({ message: `expected an IP address or host name, got ${JSON.stringify(s)}` }));

const cidr = z.string().refine((s) => parseCidr(s) !== undefined, (s) => ({ message: `expected a CIDR such as "127.0.0.0/8", "::1/128" or a single address, got ${JSON.stringify(s)}` }));

const domainName = z
  .string()
  .regex(/^\.?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, "expected a domain name (or \".example.com\" for its subdomains)");

// A mailbox name under a local drop domain: also a directory name, so never "/", "." or "..".
const localPart = z
  .string()
  .regex(/^(?!\.{1,2}$)[A-Za-z0-9!#$%&'*+=?^_`{|}~.-]{1,64}$/, 'expected a local part (letters, digits, ".", "-", "_" …; no "/" or "@")')
  .transform((s) => s.toLowerCase());

const mailboxAddress = z.string().regex(/^[^\s@<>"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'expected an address like "postmaster@example.org"');

const localDomainSchema = z
  .object({
    recipients: z.array(localPart).default([]),
    catchAll: localPart.optional().describe("mailbox that receives mail for unknown local parts; unset = refuse them at RCPT"),
  })
  .strict();

/** "127.0.0.1:8025", "localhost:8025", "[::1]:8025": is the host part a loopback address? */
export { isLoopbackHost };

/** PROXY protocol on a listener (smtp/proxy-protocol.ts): who may send it, how long, how big. */
const proxyProtocolSchema = z
  .object({
    trustedNetworks: z.array(cidr).min(1).describe("load balancers allowed to connect; every connection must come from one and start with a PROXY header"),
    timeout: duration.default("10s").describe("the PROXY header must have arrived this long after the connection opened"),
    maxHeaderSize: size
      .refine((n) => n >= MIN_MAX_LENGTH && n <= 65551, (n) => ({ message: `expected ${MIN_MAX_LENGTH} to 65551 bytes, got ${n}` }))
      .default(DEFAULT_MAX_LENGTH)
      .describe("largest v2 header accepted (addresses and TLVs included); v1 lines are at most 107 octets"),
  })
  .strict();

/**
 * Modern suites only (Mozilla's "intermediate" list): forward secrecy, AEAD. The TLS_* names are
 * TLS 1.3's; Node takes both from one string, and a list without any TLS_* name would switch TLS
 * 1.3 off.
 */
export const DEFAULT_CIPHERS = [
  "TLS_AES_128_GCM_SHA256",
  "TLS_AES_256_GCM_SHA384",
  "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256",
  "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305",
  "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256",
  "DHE-RSA-AES256-GCM-SHA384",
].join(":");

/** A cipher list OpenSSL accepts (asked by building a context with it, no certificate needed). */
const tlsCiphers = z.string().min(1).superRefine((s, ctx) => {
  try {
    createSecureContext({ ciphers: s });
  } catch (e) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected an OpenSSL cipher list, got ${JSON.stringify(s)} (${(e as Error).message})` });
  }
});

/** "mail.example.org" or "*.example.org" (one label). */
const sniName = z
  .string()
  .regex(/^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'expected a host name like "mail.example.org" or "*.example.org"')
  .transform((s) => s.toLowerCase());

const sniEntry = z
  .object({ servername: sniName, cert: z.string().min(1), key: z.string().min(1) })
  .strict();

const listenSchema = z
  .object({
    host: listenHost.default("127.0.0.1"),
    port: port.default(2525),
    tls: z.boolean().default(false).describe("implicit TLS (SMTPS) on this listener; needs tls.cert and tls.key"),
    mode: z
      .enum(["relay", "submission"])
      .default("relay")
      .describe('"relay": relay.allowedNetworks may relay, no AUTH (port 25); "submission": AUTH (under TLS) required before MAIL (ports 587, 465); needs auth.usersFile'),
    proxyProtocol: proxyProtocolSchema.optional().describe("expect a PROXY protocol v1/v2 header from a trusted load balancer on every connection"),
  })
  .strict();

/** One rate: `limit` events per `per` (smtp/rate-limit.ts); limit 0 switches it off. */
const rate = (limit: number, per: string) =>
  z
    .object({
      limit: z.number().int().min(0).default(limit),
      per: duration.refine((ms) => ms >= 1000, { message: "expected a window of at least 1s" }).default(per),
    })
    .strict()
    .default({});

const rateLimitsSchema = z
  .object({
    exemptNetworks: z.array(cidr).nullable().default(null).describe("clients never rate limited; null = relay.allowedNetworks plus loopback"),
    maxTrackedKeys: z.number().int().min(100).default(100_000).describe("clients and users tracked at most (least recently seen forgotten first)"),
    perClient: z
      .object({ connections: rate(60, "1m"), messages: rate(100, "1m"), recipients: rate(1000, "1h") })
      .strict()
      .default({}),
    perUser: z
      .object({ messages: rate(100, "1m"), recipients: rate(1000, "1h") })
      .strict()
      .default({}),
  })
  .strict()
  .default({});

// DKIM (docs/deliverability.md). Header names: RFC 5322 §3.6.8 field names.
const headerName = z.string().regex(/^[!-9;-~]+$/, "expected a header field name such as \"Subject\"");
const dkimCanon = z.enum(["relaxed/relaxed", "relaxed/simple", "simple/relaxed", "simple/simple"]);
const dkimSelector = z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/, "expected a selector (letters, digits and \"-\", labels separated by dots)");
const dkimKeySchema = z
  .object({
    selector: dkimSelector,
    algorithm: z.enum(["rsa-sha256", "ed25519-sha256"]).default("rsa-sha256"),
    privateKey: z.string().min(1).describe("PEM file of the private key (mxd dkim keygen writes one, mode 0600)"),
  })
  .strict();
/** Signed by default: the fields a reader sees and MIME depends on (RFC 6376 §5.4.1), plus the unsubscribe fields bulk senders must sign. */
export const DKIM_DEFAULT_HEADERS = ["From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID", "In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post"];
const dkimDomainSchema = z
  .object({
    keys: z.array(dkimKeySchema).min(1).max(4),
    signingDomain: z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, "expected a domain name").transform((s) => s.toLowerCase()).optional().describe("d= of the signatures (default: this domain); this domain or a parent of it"),
    canonicalization: dkimCanon.optional(),
    headers: z.array(headerName).min(1).optional(),
    expire: duration.optional(),
  })
  .strict();

const configBase = z
  .object({
    hostname: hostName.default(() => (isHostName(osHostname()) ? osHostname() : "localhost")),
    listen: z.array(listenSchema).min(1).default([{ host: "127.0.0.1", port: 2525, tls: false, mode: "relay" as const }]),
    spoolDir: z.string().min(1).default("./spool"),
    spool: z
      .object({
        // Postfix queue_minfree: below this much free space new mail gets 452 4.3.1, so that
        // state changes, bounces and a restart still have room.
        minFree: z.union([z.literal(0), size]).default("100MB"),
        segmentSize: size.default("64MB"),
        inlineMax: size.default("256KB"),
        compactAfterSegments: z.number().int().min(1).default(4),
      })
      .strict()
      .default({}),
    tls: z
      .object({
        cert: z.string().min(1).optional().describe("PEM certificate (chain) file for STARTTLS and implicit TLS listeners; re-read on SIGHUP"),
        key: z.string().min(1).optional().describe("PEM private key file matching tls.cert"),
        minVersion: z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2").describe("oldest TLS version accepted inbound; SSL 3, TLS 1.0 and 1.1 are never offered"),
        ciphers: tlsCiphers.default(DEFAULT_CIPHERS).describe("OpenSSL cipher list for TLS 1.2 plus TLS_* suite names for TLS 1.3"),
        sni: z.array(sniEntry).default([]).describe("further certificates, chosen by the name the client asks for (SNI)"),
      })
      .strict()
      .default({}),
    auth: z
      .object({
        usersFile: z.string().min(1).nullable().default(null).describe("the submission users file (mxd user add|passwd|delete|list); re-read at AUTH when it changed"),
        // Failed AUTH per client IP (smtp/auth-limiter.ts): `max` failures within `window`
        // block the IP for `backoff`, doubling with each further failure up to `maxBackoff`.
        failures: z
          .object({
            max: z.number().int().min(1).default(5),
            window: duration.default("15m"),
            backoff: duration.default("1m"),
            maxBackoff: duration.default("1h"),
            perConnection: z.number().int().min(1).default(3).describe("failed AUTH in one connection before it is closed"),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    relay: z
      .object({ allowedNetworks: z.array(cidr).default(["127.0.0.0/8", "::1/128"]) })
      .strict()
      .default({}),
    limits: z
      .object({
        messageSize: size.default("25MB"),
        // Postfix smtpd_recipient_limit: RFC 5321 §4.5.3.1.8 asks for at least 100; clients such as
        // smtplib and nodemailer report recipients past the limit as refused instead of sending a
        // second transaction, so the limit is set well above what applications send.
        recipientsPerMessage: z.number().int().min(1).default(1000),
        connections: z.number().int().min(1).default(100),
        connectionsPerClient: z.number().int().min(1).default(20),
        // Slots kept for clients inside relay.allowedNetworks (default: a tenth of connections).
        reservedConnections: z.number().int().min(0).optional(),
        commandTimeout: duration.default("5m"),
        dataTimeout: duration.default("10m"),
        // Idle timeouts while 80% of the connection slots are in use (Postfix stress mode).
        stressTimeout: duration.default("10s"),
        maxErrors: z.number().int().min(1).default(10),
      })
      .strict()
      .transform((l) => ({ ...l, reservedConnections: l.reservedConnections ?? Math.floor(l.connections / 10) }))
      .default({}),
    rateLimits: rateLimitsSchema,
    dns: z
      .object({
        servers: z.array(hostPortOf({ defaultPort: 53, minPort: 1, ipOnly: true })).default([]),
        timeout: duration.default("5s"),
        tries: z.number().int().min(1).default(2),
        // The in-process cache of delivery lookups (io/dns-cache.ts; docs/delivery.md).
        cache: z
          .object({
            enabled: z.boolean().default(true).describe("cache MX, A, AAAA and TXT answers for delivery (never the DANE resolver's)"),
            maxTtl: duration.default("5m").describe("no answer is kept longer, whatever its TTL; 0 = no cache"),
            unknownTtl: duration.default("60s").describe("how long MX and TXT answers are kept: node:dns does not report their TTL (capped by maxTtl)"),
            negativeTtl: duration.default("30s").describe("how long NXDOMAIN and NODATA answers are kept (capped by maxTtl); 0 = not cached"),
            maxEntries: z.number().int().min(2).default(10_000).describe("answers kept at most (the least recently used are dropped)"),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    delivery: z
      .object({
        enabled: z.boolean().default(true),
        thread: z.boolean().default(true).describe("deliver from a worker thread of its own (the second core), beside the SMTP listeners and the spool on the main thread; false: all on one thread"),
        port: port.default(25),
        concurrency: z.number().int().min(1).default(100),
        perDomainConcurrency: z.number().int().min(1).default(20),
        perHostConcurrency: z.number().int().min(1).default(20).describe("deliveries in progress at once per destination address (IP and port), over all domains"),
        deadHostTime: duration.default("5m").describe("how long a host that was refused, timed out or did not greet is skipped, for every domain; 0 = never"),
        maxAddressesPerAttempt: z.number().int().min(1).default(5),
        addressPreference: z.enum(["any", "ipv4", "ipv6"]).default("any"),
        maxMessagesPerConnection: z.number().int().min(1).default(100),
        sourceAddress: ipAddress.optional(),
        retry: z
          .object({ minDelay: duration.default("5m"), maxDelay: duration.default("1h"), jitter: z.number().min(0).max(1).default(0.1) })
          .strict()
          .default({}),
        maxQueueTime: duration.default("5d"),
        delayWarningAfter: duration.nullable().default(null),
        fallbackRelays: z.array(destination).default([]),
        // Outbound TLS (docs/deliverability.md): the security level per destination domain, the
        // CAs that "verify" and MTA-STS trust, and MTA-STS (RFC 8461) itself.
        tls: z
          .object({
            policy: z
              .object({
                default: tlsLevel.default("may").describe('the level for every domain not listed in domains: "may", "encrypt", "verify", "dane" or "dane-only"'),
                domains: z
                  .record(domainName, tlsLevel)
                  .default({})
                  .describe('per destination domain (exact, or ".example.com" for its subdomains): the level for that domain'),
              })
              .strict()
              .default({}),
            caFile: pemCaFile.optional().describe("PEM file of CA certificates trusted in addition to the system CAs (verify level, MTA-STS hosts and policy servers)"),
            mtaSts: z
              .object({
                enabled: z.boolean().default(true).describe("look up and apply MTA-STS policies (RFC 8461) of destination domains"),
                fetchTimeout: duration.default("20s").describe("time limit for fetching one policy over HTTPS"),
                maxAge: duration.default("31557600s").describe("longest a policy is cached, whatever its max_age says (RFC 8461 §3.2 allows up to a year)"),
                refreshAfter: duration.default("1d").describe("a cached policy older than this (or past half its max_age) is fetched again before use; the cached one stays in force when that fails"),
              })
              .strict()
              .default({}),
          })
          .strict()
          .default({}),
        // RFC 7672: TLSA and MX lookups whose DNSSEC status comes from this resolver's AD bit.
        dane: z
          .object({
            resolver: hostPortOf({ defaultPort: 53, minPort: 1, ipOnly: true }).nullable().default(null).describe('validating DNS resolver ("127.0.0.1:53") whose AD bit mxd trusts for DANE; null = no DANE'),
            allowRemoteResolver: z.boolean().default(false).describe("trust the AD bit of a resolver that is not on loopback (only over a path secured otherwise)"),
            timeout: duration.default("5s"),
            tries: z.number().int().min(1).default(2),
          })
          .strict()
          .default({}),
        timeouts: z
          .object({
            connect: duration.default("30s"),
            greeting: duration.default("5m"),
            ehlo: duration.default("5m"),
            mail: duration.default("5m"),
            rcpt: duration.default("5m"),
            data: duration.default("2m"),
            dataBlock: duration.default("3m"),
            dataEnd: duration.default("10m"),
            tls: duration.default("30s"),
          })
          .strict()
          .default({}),
      })
      .strict()
      .default({}),
    routes: z.record(domainName, z.array(destination).min(1)).default({}),
    log: z
      .object({
        level: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
        format: z.enum(["json", "text"]).default("json").describe('"json": one JSON object per line; "text": the same fields as key=value'),
        file: z.string().min(1).nullable().default(null).describe("log to this file instead of stdout; reopened on SIGUSR1 (logrotate)"),
      })
      .strict()
      .default({}),
    shutdownTimeout: duration.default("30s"),
    admin: z
      .object({
        listen: hostPortOf({ defaultPort: 8025, minPort: 0 }).nullable().default("127.0.0.1:8025").describe('TCP address of the admin HTTP API (loopback by default); null = only the spoolDir/admin.sock socket'),
        token: z.string().min(16, "expected a token of at least 16 characters").optional(),
        hosts: z.array(hostName).default([]).describe("more host names the TCP admin API answers to in the Host header (besides IP addresses, localhost, hostname and admin.listen's host), e.g. the name Prometheus scrapes"),
      })
      .strict()
      .default({}),
    localDomains: z
      .record(z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, "expected a domain name"), localDomainSchema)
      .default({})
      .transform((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v]))),
    dropDir: z.string().min(1).default("./drop"),
    // RFC 5321 §4.5.1: mail to <Postmaster> (no domain) must be accepted from anyone; it goes
    // here. Unset: the local drop mailbox postmaster@<hostname> (see postmasterDefaults below).
    postmaster: mailboxAddress.optional(),
    bounce: z
      .object({ copyTo: mailboxAddress.optional() })
      .strict()
      .default({}),
    dkim: z
      .object({
        domains: z
          .record(z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/, "expected a domain name"), dkimDomainSchema)
          .default({})
          .transform((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k.toLowerCase(), v]))),
        canonicalization: dkimCanon.default("relaxed/relaxed"),
        headers: z.array(headerName).min(1).default(DKIM_DEFAULT_HEADERS),
        oversign: z.array(headerName).default(["From"]).describe("fields signed once more than they occur, so none can be added"),
        expire: duration.nullable().default(null).describe("signature lifetime (x= tag); null = none"),
        maxSize: size.default("25MB").describe("larger messages pass unsigned"),
        signBounces: z.boolean().default(true).describe("sign mxd's own bounces when dkim.domains has the hostname's domain"),
      })
      .strict()
      .default({}),
  })
  .strict();

export const configSchema = configBase
  .superRefine((c, ctx) => {
    const needTls = c.listen.some((l) => l.tls);
    if (needTls && !(c.tls.cert && c.tls.key)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["tls"], message: "a listener has tls: true, so tls.cert and tls.key are required" });
    } else if (!c.tls.cert !== !c.tls.key) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["tls", c.tls.cert ? "key" : "cert"], message: "tls.cert and tls.key go together: set both or neither" });
    }
    c.listen.forEach((l, i) => {
      if (l.mode !== "submission") return;
      if (!c.auth.usersFile) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["auth", "usersFile"], message: `listen[${i}] has mode "submission", so auth.usersFile is required` });
      }
      // RFC 4954 §4 and our policy: AUTH only under TLS, so a submission listener without
      // any TLS could never accept mail.
      if (!(c.tls.cert && c.tls.key)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["listen", i, "mode"], message: `"submission" needs TLS (AUTH is offered only under TLS): set tls.cert and tls.key` });
      }
    });
    if (c.auth.failures.backoff > c.auth.failures.maxBackoff) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["auth", "failures", "backoff"], message: "expected backoff <= maxBackoff" });
    }
    if (c.tls.sni.length > 0 && !c.tls.cert) {
      // A client that sends no server name (or an unknown one) needs a certificate too.
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["tls", "sni"], message: "tls.sni needs a default certificate: set tls.cert and tls.key" });
    }
    const seen = new Set<string>();
    c.tls.sni.forEach((e, i) => {
      if (seen.has(e.servername)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["tls", "sni", i, "servername"], message: `${JSON.stringify(e.servername)} is listed twice` });
      seen.add(e.servername);
    });
    // The admin API can delete and bounce mail: never reachable from the network without a token.
    if (c.admin.listen && !isLoopbackHost(c.admin.listen) && !c.admin.token) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["admin", "token"], message: `admin.listen ${c.admin.listen} is not a loopback address, so admin.token is required` });
    }
    if (c.limits.reservedConnections >= c.limits.connections) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["limits", "reservedConnections"], message: `expected fewer than limits.connections (${c.limits.connections}), got ${c.limits.reservedConnections}` });
    }
    if (c.delivery.retry.minDelay > c.delivery.retry.maxDelay) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["delivery", "retry", "minDelay"], message: "expected minDelay <= maxDelay" });
    }
    // The AD bit can be forged by anyone on the path: only a loopback resolver is trusted by default.
    const dane = c.delivery.dane;
    if (dane.resolver && !dane.allowRemoteResolver && !isLoopbackHost(dane.resolver)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["delivery", "dane", "resolver"], message: `${JSON.stringify(dane.resolver)} is not a loopback address; mxd trusts its DNSSEC answers (AD bit) only with delivery.dane.allowRemoteResolver: true` });
    }
    for (const [domain, d] of Object.entries(c.dkim.domains)) {
      const path = ["dkim", "domains", domain];
      const sd = d.signingDomain;
      if (sd && sd !== domain && !domain.endsWith("." + sd)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: [...path, "signingDomain"], message: `expected ${domain} or a parent domain of it (DMARC alignment), got ${JSON.stringify(sd)}` });
      }
      const headers = d.headers ?? c.dkim.headers;
      if (!headers.some((h) => h.toLowerCase() === "from")) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: [...path, ...(d.headers ? ["headers"] : [])], message: "the signed headers must include From (RFC 6376 §5.4)" });
      }
      const sels = d.keys.map((k) => k.selector.toLowerCase());
      const dup = sels.find((s, i) => sels.indexOf(s) !== i);
      if (dup) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [...path, "keys"], message: `selector ${JSON.stringify(dup)} is used twice` });
    }
    if (!c.dkim.headers.some((h) => h.toLowerCase() === "from")) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["dkim", "headers"], message: "the signed headers must include From (RFC 6376 §5.4)" });
    }
    const pmProblem = postmasterProblem(c);
    if (pmProblem) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ["postmaster"], message: pmProblem });
  })
  .transform(postmasterDefaults);

/** Clients the rate limits skip: rateLimits.exemptNetworks, or relay.allowedNetworks plus loopback. */
export function rateLimitExempt(c: Pick<Config, "rateLimits" | "relay">): string[] {
  return c.rateLimits.exemptNetworks ?? [...new Set([...c.relay.allowedNetworks, "127.0.0.0/8", "::1/128"])];
}

type ParsedConfig = Omit<z.output<typeof configBase>, "postmaster"> & { postmaster?: string };

/**
 * Mail for <Postmaster> is accepted from clients without relay rights, so it must never be
 * relayed by MX on their behalf (mxd would be an open relay for that one address, and its
 * bounces a backscatter source): the address has to be a local drop mailbox or have a route.
 */
export function postmasterProblem(c: ParsedConfig): string | undefined {
  if (c.postmaster === undefined) {
    // A hostname that is not a host name at all is reported under `hostname` already.
    return hostDomain.test(c.hostname) || !isHostName(c.hostname) ? undefined : `hostname ${JSON.stringify(c.hostname)} is not a domain name, so postmaster@<hostname> cannot be the default; set postmaster`;
  }
  const domain = c.postmaster.slice(c.postmaster.lastIndexOf("@") + 1).toLowerCase();
  if (Object.hasOwn(c.localDomains, domain)) {
    return localMailbox(c.localDomains, c.postmaster) === undefined
      ? `${JSON.stringify(c.postmaster)} is not a mailbox of localDomains.${domain} (add it to its recipients or set a catchAll)`
      : undefined;
  }
  if (findRoute(c.routes, domain)) return undefined;
  return `${JSON.stringify(c.postmaster)} is neither a local drop mailbox (localDomains) nor routed (routes); mail to <Postmaster> comes from anyone and must not be relayed by MX`;
}

const hostDomain = /^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/**
 * Unset postmaster: postmaster@<hostname>, delivered to the local drop mailbox
 * dropDir/<hostname>/postmaster (the hostname becomes a local domain with that mailbox, the way
 * Postfix's mydestination includes $myhostname).
 */
function postmasterDefaults<T extends ParsedConfig>(c: T): T & { postmaster: string } {
  if (c.postmaster !== undefined) return c as T & { postmaster: string };
  const host = c.hostname.toLowerCase();
  const postmaster = `postmaster@${host}`;
  const existing = c.localDomains[host];
  const local = existing
    ? localMailbox(c.localDomains, postmaster) === undefined
      ? { ...existing, recipients: [...existing.recipients, "postmaster"] }
      : existing
    : { recipients: ["postmaster"] };
  return { ...c, postmaster, localDomains: { ...c.localDomains, [host]: local } };
}

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

export class ConfigError extends MxdError {
  constructor(message: string, readonly problems: string[]) {
    super("MXD_CONFIG_INVALID", message);
    this.name = "ConfigError";
  }
}

/** Validate a parsed JSON value; throws ConfigError naming every bad key. */
export function parseConfig(input: unknown): Config {
  const r = configSchema.safeParse(input ?? {});
  if (!r.success) {
    const problems = r.error.issues.map((i) => describeIssue(i, input ?? {}, configSchema));
    throw new ConfigError(`invalid configuration:\n  ${problems.join("\n  ")}`, problems);
  }
  return deepFreeze(r.data);
}

/** The effective config as `mxd check-config` prints it: durations and sizes as written. */
export function displayConfig(input: unknown, config: Config): unknown {
  return displayAsWritten(configSchema, input ?? {}, config, new Set<z.ZodTypeAny>([duration, size]));
}

export function loadConfigFile(file: string): Config {
  return readConfigFile(file).config;
}

/** The parsed file (for display) and the validated config. */
export function readConfigFile(file: string): { input: unknown; config: Config } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`, [(e as Error).message]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${file} is not valid JSON: ${(e as Error).message}`, [(e as Error).message]);
  }
  return { input: json, config: parseConfig(json) };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
