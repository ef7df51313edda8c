// The inbound TLS material: the default certificate and the SNI ones (config `tls`), read from
// their files and turned into secure contexts. Loaded at start and again on every reload; a
// file that cannot be read or a key that does not match its certificate is an MxdError naming
// the file and why, so a reload can keep the contexts it has and say what is wrong.
import { readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { createSecureContext, type SecureContext, type SecureContextOptions } from "node:tls";
import type { Config } from "../config.js";
import { MxdError } from "../core/errors.js";
import { selectCertificate } from "../smtp/sni.js";

export interface TlsCredentials {
  /** For tls.Server#setSecureContext and the default of every handshake. */
  readonly options: SecureContextOptions;
  readonly context: SecureContext;
  /** SNI entries in config order. */
  readonly sni: readonly { servername: string; context: SecureContext }[];
  /** sha256 over every certificate and key as read: a reload with a different value swapped certificates. */
  readonly fingerprint: string;
}

type TlsConfig = Config["tls"];

/** The credentials of `tls`, or undefined when no certificate is configured. Throws MXD_TLS_CREDENTIALS. */
export function loadTlsCredentials(tls: TlsConfig, read: (path: string) => Buffer = readFileSync): TlsCredentials | undefined {
  if (!tls.cert || !tls.key) return undefined;
  const problems: string[] = [];
  const digest = createHash("sha256");
  const build = (what: string, certFile: string, keyFile: string): { options: SecureContextOptions; context: SecureContext } | undefined => {
    let cert: Buffer, key: Buffer;
    try {
      cert = read(certFile);
      key = read(keyFile);
    } catch (e) {
      problems.push(`${what}: cannot read ${(e as NodeJS.ErrnoException).path ?? certFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return undefined;
    }
    digest.update(cert).update(key);
    const options: SecureContextOptions = { cert, key, minVersion: tls.minVersion, ciphers: tls.ciphers };
    try {
      return { options, context: createSecureContext(options) };
    } catch (e) {
      // OpenSSL's words: "key values mismatch", "no start line" (not PEM), "bad decrypt"…
      problems.push(`${what}: ${certFile} and ${keyFile} are not a usable certificate and key (${(e as Error).message.replace(/^error:[0-9A-F]+:/i, "")})`);
      return undefined;
    }
  };
  const main = build("tls.cert/tls.key", tls.cert, tls.key);
  const sni = tls.sni.map((e, i) => ({ servername: e.servername, built: build(`tls.sni[${i}] (${e.servername})`, e.cert, e.key) }));
  if (problems.length > 0 || !main) throw new MxdError("MXD_TLS_CREDENTIALS", `TLS certificates not loaded: ${problems.join("; ")}`);
  return {
    options: main.options,
    context: main.context,
    sni: sni.map((e) => ({ servername: e.servername, context: e.built!.context })),
    fingerprint: digest.update(JSON.stringify([tls.minVersion, tls.ciphers, tls.sni.map((e) => e.servername)])).digest("hex"),
  };
}

/** The context for a client's server name (SNI): an SNI entry's, else the default. */
export function contextFor(creds: TlsCredentials, servername: string): SecureContext {
  const i = selectCertificate(servername, creds.sni.map((e) => e.servername));
  return i === undefined ? creds.context : creds.sni[i]!.context;
}

/** Credentials from PEM bytes already in memory (tests, and callers that read the files themselves). */
export function tlsCredentialsFromPem(tls: TlsConfig, pem: { cert: Buffer; key: Buffer }): TlsCredentials {
  return loadTlsCredentials({ ...tls, cert: "<cert>", key: "<key>", sni: [] }, (p) => (p === "<cert>" ? pem.cert : pem.key))!;
}
