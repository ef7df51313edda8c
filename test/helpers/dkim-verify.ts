// An independent DKIM verifier for the tests: Debian's python3-dkim (dkimpy, the library behind
// /usr/bin/dkimverify) checks every DKIM-Signature of a message. Its key lookups go to a given
// DNS server (our loopback one) through dnspython, not the system resolver: dkimverify itself
// reads /etc/resolv.conf, which a test must not change, so the script calls dkim.DKIM.verify
// with a dnsfunc — the documented hook dkimverify uses too.
import { writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SYSTEM_PYTHON, runTool } from "./peers.js";

const SCRIPT = String.raw`
import json, sys, logging
import dkim, dns.resolver, dns.exception
path, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
r = dns.resolver.Resolver(configure=False)
r.nameservers = [host]
r.port = port
r.lifetime = 5
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes): name = name.decode()
    try:
        a = r.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return None
    return b"".join(list(a)[0].strings)
msg = open(path, "rb").read()
d = dkim.DKIM(msg, logger=logging.getLogger("dkim"))
n = sum(1 for h in d.headers if h[0].lower() == b"dkim-signature")
out = []
for i in range(n):
    try:
        ok = bool(d.verify(idx=i, dnsfunc=dnsfunc))
        out.append({"ok": ok, "domain": (d.domain or b"").decode(), "selector": (d.selector or b"").decode(), "error": None})
    except Exception as e:
        out.append({"ok": False, "domain": "", "selector": "", "error": "%s: %s" % (type(e).__name__, e)})
print(json.dumps(out))
`;

export interface DkimVerdict {
  ok: boolean;
  domain: string;
  selector: string;
  error: string | null;
}

/** Verify every DKIM-Signature of `message`; keys are looked up at dns (host, port). */
export async function dkimVerify(message: Buffer, dns: { host: string; port: number }): Promise<DkimVerdict[]> {
  const dir = mkdtempSync(join(tmpdir(), "mxd-dkimverify-"));
  try {
    writeFileSync(join(dir, "verify.py"), SCRIPT);
    writeFileSync(join(dir, "message.eml"), message);
    const r = await runTool(SYSTEM_PYTHON, [join(dir, "verify.py"), join(dir, "message.eml"), dns.host, String(dns.port)], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`dkimpy verifier failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split("\n").pop()!) as DkimVerdict[];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
