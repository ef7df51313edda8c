// DKIM signing in the inbound server, without port 25 or root: nodemailer submits to an
// in-process SmtpServer with a signing policy; the message's state in the journal holds the
// signature fields; the bytes a delivery would send (queue/delivered-message.ts) verify with
// Debian's dkimpy against keys in the in-process DNS server — also after the spool is reopened
// (a restart), and with the same signature; a refused message is never signed or queued.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import nodemailer from "nodemailer";
import { parseConfig } from "../../src/config.js";
import { loadDkimPolicy } from "../../src/dkim/policy.js";
import { keyRecord } from "../../src/dkim/keys.js";
import { deliveredMessage } from "../../src/queue/delivered-message.js";
import { JournalSpool } from "../../src/spool/journal-spool.js";
import { deliverySize, type MessageMeta } from "../../src/core/envelope.js";
import { cleanup, closeClients, ehlo, queuedId, sendMessage, session, startInbound } from "../helpers/inbound.js";
import { startDnsServer, type DnsServerHandle } from "../helpers/dns-server.js";
import { dkimVerify } from "../helpers/dkim-verify.js";
import { requirePeers, skipUnless } from "../helpers/peers.js";

const skip = skipUnless("dkimverify");
let dns: DnsServerHandle | undefined;
after(async () => {
  await closeClients();
  await dns?.close();
  await cleanup();
});

const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
const ed = generateKeyPairSync("ed25519").privateKey;
const PEM: Record<string, string> = {
  "/keys/rsa.pem": rsa.export({ type: "pkcs8", format: "pem" }) as string,
  "/keys/ed.pem": ed.export({ type: "pkcs8", format: "pem" }) as string,
};
const config = parseConfig({
  dkim: {
    domains: {
      "example.test": {
        keys: [
          { selector: "r", privateKey: "/keys/rsa.pem" },
          { selector: "e", algorithm: "ed25519-sha256", privateKey: "/keys/ed.pem" },
        ],
      },
    },
  },
});
const policy = loadDkimPolicy(config.dkim, (p) => Buffer.from(PEM[p]!))!;

async function delivered(spool: JournalSpool, meta: MessageMeta): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of deliveredMessage(meta, () => spool.openBody(meta.id))) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

test("nodemailer → server: the state holds two signatures; the delivered bytes verify (dkimpy), also after a restart", { skip }, async () => {
  requirePeers("dkimverify");
  dns = await startDnsServer({ zone: { "r._domainkey.example.test": { txt: [keyRecord(rsa, "rsa-sha256")] }, "e._domainkey.example.test": { txt: [keyRecord(ed, "ed25519-sha256")] } } });
  const inb = await startInbound({}, { dkim: policy });
  const t = nodemailer.createTransport({ host: "127.0.0.1", port: inb.port, secure: false, ignoreTLS: true, name: "nm.test", connectionTimeout: 5000, socketTimeout: 5000 });
  try {
    await t.sendMail({ from: "Ann <ann@Example.test>", to: "bob@elsewhere.test", subject: "signed in process", text: "hello\n.dot line\n\n\n", headers: { "X-Not-Signed": "free" } });
  } finally {
    t.close();
  }
  assert.equal(inb.queued.length, 1);
  const meta = await inb.spool.load(inb.queued[0]!.id);
  assert.equal(meta.dkim?.length, 2);
  assert.match(meta.dkim![0]!, /^DKIM-Signature: v=1; a=rsa-sha256; c=relaxed\/relaxed; d=example\.test;\r\n s=r; t=\d+;\r\n h=from:from:subject:date:to:message-id:mime-version:content-type:\r\n content-transfer-encoding;\r\n bh=/, "X-Not-Signed is not listed; the list folded at a colon");
  const bytes = await delivered(inb.spool, meta);
  assert.equal(bytes.length, deliverySize(meta), "the SIZE mxd announces is what it sends");
  assert.match(bytes.toString("latin1"), /^DKIM-Signature: [^]*\r\nDKIM-Signature: [^]*\r\nReceived: from nm\.test/);
  assert.deepEqual((await dkimVerify(bytes, dns)).map((v) => [v.ok, v.selector]), [[true, "r"], [true, "e"]]);

  // A restart: the journal is replayed by a new spool; the same signature, still valid.
  const reopened = new JournalSpool({ dir: inb.dir, minFree: 0, readOnly: true });
  await reopened.recover();
  const again = await reopened.load(meta.id);
  assert.deepEqual(again.dkim, meta.dkim);
  assert.deepEqual((await dkimVerify(await delivered(reopened, again), dns)).map((v) => v.ok), [true, true]);
  await reopened.close();
  await inb.close();
});

test("refused and unsigned messages: over the size limit nothing is queued; an unknown From domain is queued without dkim", async () => {
  const inb = await startInbound({ limits: { messageSize: 2000 } }, { dkim: policy });
  const c = await session(inb.port);
  await ehlo(c);
  const tooBig = await sendMessage(c, "ann@example.test", ["b@x.test"], "From: ann@example.test\r\n\r\n" + "y".repeat(70).concat("\r\n").repeat(40));
  assert.equal(tooBig.code, 552);
  const other = await sendMessage(c, "ann@other.test", ["b@x.test"], "From: ann@other.test\r\n\r\nhi\r\n");
  assert.equal(other.code, 250);
  const meta = await inb.spool.load(queuedId(other));
  assert.equal(meta.dkim, undefined);
  assert.equal(inb.queued.length, 1);
  await inb.close();
});

test("a client without relay rights (mail for a local domain) is not signed, even with a From of a signing domain", async () => {
  const inb = await startInbound({ relay: { allowedNetworks: ["10.0.0.0/8"] }, localDomains: { "local.test": { recipients: ["me"] } } }, { dkim: policy });
  const c = await session(inb.port);
  await ehlo(c);
  const r = await sendMessage(c, "ann@example.test", ["me@local.test"], "From: ann@example.test\r\n\r\nforged?\r\n");
  assert.equal(r.code, 250);
  assert.equal((await inb.spool.load(queuedId(r))).dkim, undefined);
  await inb.close();
});
