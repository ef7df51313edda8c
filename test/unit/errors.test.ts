// core/errors.ts: every local failure class is an MxdError with its stable code, and the three
// tables (enhanced status, inbound reply, CLI exit status) answer for each.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LOCAL_STATUS, MxdError, cliMessage, exitStatusFor, isMxdError, localReply, localStatusOf, smtpReplyFor, type MxdErrorCode } from "../../src/core/errors.js";
import { ConnectError, TlsHandshakeError } from "../../src/io/connector.js";
import { DnsError } from "../../src/io/resolver.js";
import { SessionError } from "../../src/smtp/client.js";
import { ReplyParseError } from "../../src/core/smtp-reply.js";
import { BadStateError } from "../../src/spool/format.js";
import { SpoolError } from "../../src/spool/fs-spool.js";
import { ConfigError } from "../../src/config.js";
import { UsageError } from "../../src/cli/args.js";
import { AdminError } from "../../src/cli/admin-client.js";

const classes: [Error, MxdErrorCode, string][] = [
  [new ConnectError("refused", "ECONNREFUSED", "connect to 192.0.2.1:25: refused"), "MXD_CONNECT", LOCAL_STATUS.noAnswer],
  [new TlsHandshakeError("TLS handshake failed: bad record", "ERR_SSL"), "MXD_TLS_HANDSHAKE", LOCAL_STATUS.tlsFailure],
  [new DnsError("temporary", "example.com", "ESERVFAIL"), "MXD_DNS", LOCAL_STATUS.dnsFailure],
  [new SessionError("timeout", "greeting", "timeout"), "MXD_SMTP_SESSION", LOCAL_STATUS.badConnection],
  [new ReplyParseError("not a reply"), "MXD_REPLY_SYNTAX", LOCAL_STATUS.badConnection],
  [new BadStateError("state is not JSON"), "MXD_SPOOL_INVALID", LOCAL_STATUS.localError],
  [new SpoolError("spool commit failed", new Error("EIO")), "MXD_SPOOL_IO", LOCAL_STATUS.localError],
  [new ConfigError("bad config", ["x"]), "MXD_CONFIG_INVALID", LOCAL_STATUS.localError],
  [new UsageError("unknown option"), "MXD_USAGE", LOCAL_STATUS.localError],
  [new AdminError(403, "forbidden"), "MXD_ADMIN_REFUSED", LOCAL_STATUS.localError],
  [new MxdError("MXD_SPOOL_FULL", "below reserve"), "MXD_SPOOL_FULL", LOCAL_STATUS.storageFull],
];

test("every error class is an MxdError with its stable code and its local status", () => {
  for (const [e, code, status] of classes) {
    assert.ok(isMxdError(e, code), `${e.name}: ${code}`);
    assert.equal(localStatusOf(e), status, e.name);
  }
  assert.equal(new ConnectError("refused", "ECONNREFUSED", "x").sysCode, "ECONNREFUSED");
  assert.equal(localStatusOf(new Error("a bug")), "4.3.0");
  assert.equal(localStatusOf("not even an error"), "4.3.0");
});

test("localReply and smtpReplyFor", () => {
  assert.equal(localReply("noAnswer", "no mail host of example.com could be tried"), "451 4.4.1 no mail host of example.com could be tried");
  assert.equal(localReply("badConnection", "mx Error: timeout exceeded", 421), "421 4.4.2 mx Error: timeout exceeded");
  assert.equal(smtpReplyFor(new MxdError("MXD_SPOOL_FULL", "full")), "452 4.3.1 Error: insufficient system storage, try again later");
  assert.equal(smtpReplyFor(new MxdError("MXD_SPOOL_IO", "EIO")), "451 4.3.0 Error: queue file write error, try again later");
  assert.equal(smtpReplyFor(new Error("anything")), "451 4.3.0 Error: queue file write error, try again later");
});

test("exit statuses: 2 for usage and config problems, 1 otherwise; messages without stacks for known failures", () => {
  assert.equal(exitStatusFor(new ConfigError("bad", [])), 2);
  assert.equal(exitStatusFor(new UsageError("bad")), 2);
  assert.equal(exitStatusFor(Object.assign(new Error("port"), { code: "ERR_SOCKET_BAD_PORT" })), 2);
  assert.equal(exitStatusFor(Object.assign(new Error("args"), { code: "ERR_PARSE_ARGS_UNKNOWN_OPTION" })), 2);
  assert.equal(exitStatusFor(new MxdError("MXD_ALREADY_RUNNING", "another mxd")), 1);
  assert.equal(exitStatusFor(Object.assign(new Error("in use"), { code: "EADDRINUSE" })), 1);
  assert.equal(exitStatusFor(new Error("a bug")), 1);
  assert.equal(cliMessage(new MxdError("MXD_ALREADY_RUNNING", "another mxd is already running")), "mxd: another mxd is already running");
  assert.equal(cliMessage(Object.assign(new Error("listen EADDRINUSE"), { code: "EADDRINUSE" })), "mxd: listen EADDRINUSE");
  assert.match(cliMessage(new Error("a bug")), /^mxd: Error: a bug\n\s+at /);
});
