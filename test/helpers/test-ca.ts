// A throwaway certificate authority made with openssl, and server certificates it signs (one
// DNS name each, or a few): for TLS verification tests (verify level, MTA-STS policy servers).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestCa {
  /** Path of the CA certificate (PEM), for delivery.tls.caFile. */
  caFile: string;
  caPem: string;
  /** A certificate for these DNS names, signed by the CA (PEM text). */
  issue(names: string[]): { key: string; cert: string };
  remove(): void;
}

const EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"], timeout: 20_000 });
}

export function makeTestCa(cn = "mxd test CA"): TestCa {
  const dir = mkdtempSync(join(tmpdir(), "mxd-ca-"));
  openssl(["req", "-x509", ...EC, "-subj", `/CN=${cn}`, "-days", "2", "-keyout", "ca.key", "-out", "ca.pem", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"], dir);
  let n = 0;
  return {
    caFile: join(dir, "ca.pem"),
    caPem: readFileSync(join(dir, "ca.pem"), "utf8"),
    issue(names) {
      const base = `leaf${++n}`;
      writeFileSync(join(dir, `${base}.ext`), `subjectAltName=${names.map((x) => `DNS:${x}`).join(",")}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n`);
      openssl(["req", ...EC, "-subj", `/CN=${names[0]}`, "-keyout", `${base}.key`, "-out", `${base}.csr`], dir);
      openssl(["x509", "-req", "-in", `${base}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-out", `${base}.pem`, "-extfile", `${base}.ext`], dir);
      return { key: readFileSync(join(dir, `${base}.key`), "utf8"), cert: readFileSync(join(dir, `${base}.pem`), "utf8") };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
