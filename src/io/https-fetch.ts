// One HTTPS GET with hard limits, for MTA-STS policies (RFC 8461 §3.3): the certificate must be
// valid for the host (system CAs + delivery.tls.caFile), redirects are never followed (the
// status is returned as it is), the body is cut off past maxBytes, the whole exchange has one
// deadline. Names are resolved through our own resolver (dns.servers), not the system's.
import * as https from "node:https";
import type { LookupFunction } from "node:net";
import { caBundle } from "./ca-bundle.js";
import type { Resolver } from "./resolver.js";

export type FetchResult =
  | { ok: true; status: number; contentType: string | undefined; body: string }
  | { ok: false; reason: string };

export interface FetchOptions {
  timeoutMs: number;
  maxBytes: number;
  caFile?: string;
}

/** A `lookup` for node:https that asks our Resolver (A first, then AAAA). */
export function resolverLookup(resolver: Resolver): LookupFunction {
  return (hostname, options, callback) => {
    const all = (options as { all?: boolean }).all === true;
    void (async () => {
      let v4: string[] = [];
      let v6: string[] = [];
      try {
        v4 = await resolver.a(hostname);
      } catch {
        v4 = [];
      }
      if (v4.length === 0) v6 = await resolver.aaaa(hostname).catch(() => []);
      const list = [...v4.map((address) => ({ address, family: 4 })), ...v6.map((address) => ({ address, family: 6 }))];
      if (list.length === 0) {
        const e = Object.assign(new Error(`no address for ${hostname}`), { code: "ENOTFOUND" });
        return (callback as (e: Error) => void)(e);
      }
      if (all) (callback as unknown as (e: null, l: { address: string; family: number }[]) => void)(null, list);
      else callback(null, list[0]!.address, list[0]!.family);
    })();
  };
}

export function httpsGet(url: string, opts: FetchOptions & { lookup?: LookupFunction }): Promise<FetchResult> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (r: FetchResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    let ca: string[] | undefined;
    try {
      ca = opts.caFile ? caBundle(opts.caFile) : undefined;
    } catch (e) {
      return finish({ ok: false, reason: (e as Error).message });
    }
    const req = https.get(url, { agent: false, rejectUnauthorized: true, minVersion: "TLSv1.2", ...(ca ? { ca } : {}), ...(opts.lookup ? { lookup: opts.lookup } : {}), headers: { "user-agent": "mxd" } }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (c: Buffer) => {
        size += c.length;
        if (size > opts.maxBytes) {
          req.destroy();
          return finish({ ok: false, reason: `the policy is larger than ${opts.maxBytes} octets` });
        }
        chunks.push(c);
      });
      res.on("end", () => {
        const ct = res.headers["content-type"];
        finish({ ok: true, status: res.statusCode ?? 0, contentType: typeof ct === "string" ? ct : undefined, body: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", (e) => finish({ ok: false, reason: e.message }));
      res.on("aborted", () => finish({ ok: false, reason: "the response was cut off" }));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ ok: false, reason: `no complete answer within ${opts.timeoutMs} ms` });
    }, opts.timeoutMs);
    req.on("error", (e) => finish({ ok: false, reason: e.message }));
  });
}
