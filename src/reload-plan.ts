// What a reload (SIGHUP, `mxd reload`) would change: the pure diff between the running
// configuration and a validated new one. Settings read once at start are refused with a
// message naming them (the daemon keeps the old configuration); the SMTP listeners are diffed
// entry by entry, so only those that changed are opened or closed.
import type { Config } from "./config.js";

type Listen = Config["listen"][number];

/**
 * Settings a running daemon cannot take: the spool (its journal is open), the log destination,
 * the DNS resolver, the admin TCP address, the host-health limits built at start, and what is
 * loaded once at start: the users file's path and failed-AUTH limits (the file's content is
 * re-read at AUTH whenever it changes), the DKIM keys, the MTA-STS cache settings and CA file,
 * the DANE resolver.
 */
export const RESTART_ONLY: readonly string[] = [
  "spoolDir",
  "spool",
  "log.file",
  "log.format",
  "dns",
  "admin.listen",
  "delivery.enabled",
  "delivery.thread",
  "delivery.perHostConcurrency",
  "delivery.deadHostTime",
  "auth",
  "dkim",
  "delivery.tls.caFile",
  "delivery.tls.mtaSts",
  "delivery.dane",
];

export type ReloadPlan =
  | {
      ok: true;
      /** Changed settings, as key paths at most two deep ("limits.connections", "routes.example.org"). */
      changed: string[];
      /** Listener entries to open and to close (a changed entry is one of each). */
      listen: { open: Listen[]; close: Listen[] };
    }
  | { ok: false; errors: string[] };

export function planReload(running: Config, next: Config): ReloadPlan {
  const changed = changedPaths(running, next, "", 2);
  // Settings deeper than the diff's two levels (delivery.tls.caFile beside the reloadable
  // delivery.tls.policy) are compared one by one.
  const shallow = RESTART_ONLY.filter((r) => r.split(".").length <= 2);
  const deep = RESTART_ONLY.filter((r) => r.split(".").length > 2);
  const refused = (p: string, from: unknown, to: unknown) => `${p} cannot change while mxd runs (${show(from)} → ${show(to)}); restart mxd to apply it`;
  const errors = [
    ...changed.filter((p) => shallow.some((r) => p === r || p.startsWith(r + ".") || r.startsWith(p + "."))).map((p) => refused(p, valueAt(running, p), valueAt(next, p))),
    ...deep.filter((r) => canonical(pathValue(running, r)) !== canonical(pathValue(next, r))).map((r) => refused(r, pathValue(running, r), pathValue(next, r))),
  ];
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    changed,
    listen: {
      open: next.listen.filter((l) => !running.listen.some((o) => sameListener(o, l))),
      close: running.listen.filter((o) => !next.listen.some((l) => sameListener(o, l))),
    },
  };
}

/** The same listener entry, every field (host, port, implicit TLS, and whatever else a listener has). */
export function sameListener(a: Listen, b: Listen): boolean {
  return canonical(a) === canonical(b);
}

/** Does a listener entry to open take the address of one to close (then it must be closed first)? */
export function sameAddress(a: Listen, b: Listen): boolean {
  return a.host === b.host && a.port === b.port && a.port !== 0;
}

function changedPaths(a: unknown, b: unknown, path: string, depth: number): string[] {
  if (canonical(a) === canonical(b)) return [];
  if (depth === 0 || !isRecord(a) || !isRecord(b)) return [path];
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return keys.flatMap((k) => changedPaths(a[k], b[k], path ? `${path}.${k}` : k, depth - 1));
}

function valueAt(c: unknown, path: string): unknown {
  // Keys of records (domains) contain dots themselves: walk the known depth only.
  const [top, ...rest] = path.split(".");
  const v = (c as Record<string, unknown>)[top!];
  return rest.length === 0 ? v : isRecord(v) ? v[rest.join(".")] : undefined;
}

/** The value at a dotted path whose keys contain no dots. */
function pathValue(c: unknown, path: string): unknown {
  let v: unknown = c;
  for (const k of path.split(".")) v = isRecord(v) ? v[k] : undefined;
  return v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** JSON with sorted keys: equality that does not depend on key order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (isRecord(x) ? Object.fromEntries(Object.keys(x).sort().map((k) => [k, x[k]])) : x)) ?? "undefined";
}

function show(v: unknown): string {
  const s = v === undefined ? "unset" : JSON.stringify(v);
  return s.length > 80 ? s.slice(0, 77) + "…" : s;
}

/** What a reload answers (`mxd reload`, POST /reload) and logs. */
export type ReloadResult = { applied: true; changed: string[] } | { applied: false; errors: string[] };
