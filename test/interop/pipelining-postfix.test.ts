// Interop: the pipelined MAIL/RCPT/DATA group (smtp/client.ts send()) against a real Postfix
// whose error limit ends the session. With smtpd_hard_error_limit reached by the refused RCPT,
// Postfix answers the DATA behind it "421 4.7.0 Error: too many errors" and disconnects; the
// refusal (550) is the recipient's outcome — permanent, bounced, not retried — as it is when
// DATA is not in the group. Postfix on 127.0.0.227 (its own instance), reached through routes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { parseConfig } from "../../src/config.js";
import type { Resolver } from "../../src/io/resolver.js";
import { nodeConnector } from "../../src/io/connector.js";
import { silentLogger } from "../../src/io/log.js";
import { SmtpCourier } from "../../src/delivery/smtp-courier.js";
import type { DeliveryRequest } from "../../src/delivery/courier.js";
import { skipUnless, startPostfix } from "../helpers/peers.js";

const HOST = "127.0.0.227";
const skip = skipUnless("postfix") || (process.getuid?.() !== 0 ? "needs root (Postfix)" : false);

const noDns: Resolver = {
  mx: () => Promise.reject(new Error("no DNS in this test")),
  a: () => Promise.reject(new Error("no DNS in this test")),
  aaaa: () => Promise.reject(new Error("no DNS in this test")),
};

const MSG = "Subject: t\r\n\r\nhello\r\n";
function req(rcpts: string[]): DeliveryRequest {
  return {
    id: "01M8TJN00SRAQJES",
    sender: "s@origin.test",
    domain: "pfe.test",
    recipients: rcpts.map((address) => ({ address })),
    openBody: () => Readable.from([Buffer.from(MSG)]),
    size: MSG.length,
    eightBit: false,
    smtputf8: false,
  };
}

/** A Postfix whose first error ends the session (550 for nobody@pfe.test, then 421), and our courier to it. */
async function postfixAtErrorLimit(t: { after: (fn: () => unknown) => void }) {
  const pf = await startPostfix({
    host: HOST,
    domains: ["pfe.test"],
    extraMainCf: [
      "smtpd_hard_error_limit = 1",
      "smtpd_recipient_restrictions = check_recipient_access inline:{ { nobody@pfe.test = 550 5.1.1 <nobody@pfe.test>: no such user } }, permit_mynetworks, reject_unauth_destination",
    ].join("\n"),
  });
  t.after(() => pf.stop());
  const config = parseConfig({ hostname: "mxd.test", routes: { "pfe.test": [`${HOST}:25`] } });
  const courier = new SmtpCourier({ config, resolver: noDns, connector: nodeConnector, logger: silentLogger() });
  t.after(() => courier.close());
  return { pf, courier };
}

test("Postfix at its error limit: the refused RCPT's 550 is the outcome, not the 421 that answers DATA", { skip }, async (t) => {
  const { pf, courier } = await postfixAtErrorLimit(t);
  const r = await courier.deliver(req(["nobody@pfe.test"]));
  assert.equal(r.length, 1);
  assert.equal(r[0]!.outcome, "permanent", r[0]!.reply);
  assert.match(r[0]!.reply, /^550 5\.1\.1 .*no such user/);
  assert.equal(pf.messages().length, 0);
});

test("Postfix at its error limit in the middle of the group: the 550 stays the refused one's outcome, the next one is retried", { skip }, async (t) => {
  const { pf, courier } = await postfixAtErrorLimit(t);
  const r = await courier.deliver(req(["nobody@pfe.test", "u1@pfe.test"]));
  assert.equal(r[0]!.outcome, "permanent", r[0]!.reply);
  assert.match(r[0]!.reply, /^550 5\.1\.1 .*no such user/);
  // The 421 that answered the next RCPT: transient for u1 (the only host; retried later).
  assert.equal(r[1]!.outcome, "transient", r[1]!.reply);
  assert.match(r[1]!.reply, /421 4\.7\.0/);
  assert.equal(pf.messages().length, 0);
});
