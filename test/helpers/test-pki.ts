// Throwaway certificates made by openssl for the DANE tests: a CA, server certificates issued
// by it (with subjectAltName), and self-signed ones. Each comes back as PEM files, PEM text and
// node:crypto X509Certificate; TLSA association data can be computed from them.
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface TestCert {
  certPath: string;
  keyPath: string;
  certPem: string;
  keyPem: string;
  x509: X509Certificate;
}

function openssl(args: string[], what: string): void {
  const r = spawnSync("openssl", args, { encoding: "utf8", timeout: 30_000 });
  if (r.status !== 0) throw new Error(`openssl could not make ${what}: ${r.stderr}`);
}

function load(certPath: string, keyPath: string): TestCert {
  const certPem = readFileSync(certPath, "utf8");
  return { certPath, keyPath, certPem, keyPem: readFileSync(keyPath, "utf8"), x509: new X509Certificate(certPem) };
}

/** A self-signed certificate (CA:TRUE when `ca`), EC P-256 keys (fast to make). */
export function selfSigned(dir: string, name: string, opts: { cn: string; dns?: string[]; ca?: boolean; days?: number }): TestCert {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${opts.cn}`, "-days", String(opts.days ?? 2), "-keyout", keyPath, "-out", certPath];
  if (opts.dns?.length) args.push("-addext", `subjectAltName=${opts.dns.map((d) => `DNS:${d}`).join(",")}`);
  if (opts.ca) args.push("-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  openssl(args, `certificate ${name}`);
  return load(certPath, keyPath);
}

/** A certificate for `dns` names issued by `issuer` (CA:TRUE when `ca`, for an intermediate). */
export function issued(dir: string, name: string, issuer: TestCert, opts: { cn: string; dns?: string[]; ca?: boolean; days?: number }): TestCert {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", `/CN=${opts.cn}`, "-keyout", keyPath, "-out", csr], `request ${name}`);
  const lines = [opts.ca ? "basicConstraints=critical,CA:TRUE" : "basicConstraints=CA:FALSE"];
  if (opts.dns?.length) lines.push(`subjectAltName=${opts.dns.map((d) => `DNS:${d}`).join(",")}`);
  writeFileSync(ext, lines.join("\n") + "\n");
  openssl(["x509", "-req", "-in", csr, "-CA", issuer.certPath, "-CAkey", issuer.keyPath, "-CAcreateserial", "-days", String(opts.days ?? 2), "-extfile", ext, "-out", certPath], `certificate ${name}`);
  return load(certPath, keyPath);
}

/**
 * TLSA association data for a certificate file, computed by openssl (not by the code under
 * test): selector 0 (DER certificate) / 1 (DER SubjectPublicKeyInfo), matching 0 / 1 / 2.
 */
export function tlsaData(cert: TestCert, selector: number, matchingType: number): Buffer {
  const run = (args: string[], input?: Buffer): Buffer => {
    const r = spawnSync("openssl", args, { input, timeout: 30_000 });
    if (r.status !== 0) throw new Error(`openssl ${args[0]} failed: ${r.stderr.toString()}`);
    return r.stdout;
  };
  const bytes = selector === 0
    ? run(["x509", "-in", cert.certPath, "-outform", "DER"])
    : run(["pkey", "-pubin", "-outform", "DER"], run(["x509", "-in", cert.certPath, "-pubkey", "-noout"]));
  if (matchingType === 0) return bytes;
  return run(["dgst", matchingType === 1 ? "-sha256" : "-sha512", "-binary"], bytes);
}
