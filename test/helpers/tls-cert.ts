// A throw-away self-signed certificate for mx.test (openssl), for STARTTLS and SMTPS tests.
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";

export function makeCert(dir: string): { cert: Buffer; key: Buffer; certPath: string; keyPath: string } {
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", keyPath, "-out", certPath, "-subj", "/CN=mx.test", "-days", "1"], {
    stdio: "ignore",
    timeout: 20_000,
  });
  return { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath, keyPath };
}
