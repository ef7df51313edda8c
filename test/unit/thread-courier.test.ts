// ThreadCourier (delivery/thread-courier.ts) against a fake thread: what it posts, how results,
// failures, log lines and a dying thread come back, restart spacing, close.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { Readable } from "node:stream";
import { parseConfig } from "../../src/config.js";
import { createLogger } from "../../src/io/log.js";
import { ThreadCourier, type ThreadHandle } from "../../src/delivery/thread-courier.js";
import type { DeliveryRequest, RecipientResult } from "../../src/delivery/courier.js";
import type { FromThread, ThreadStart, ToThread } from "../../src/delivery/thread-protocol.js";

class FakeThread extends EventEmitter implements ThreadHandle {
  posted: { message: ToThread; transfer: ArrayBuffer[] | undefined }[] = [];
  terminated = 0;
  unrefed = false;
  constructor(readonly start: ThreadStart) {
    super();
  }
  postMessage(message: ToThread, transfer?: ArrayBuffer[]): void {
    this.posted.push({ message, transfer });
  }
  reply(m: FromThread): void {
    this.emit("message", m);
  }
  terminate(): Promise<number> {
    this.terminated++;
    return Promise.resolve(1);
  }
  unref(): void {
    this.unrefed = true;
  }
}

function setup(opts: { level?: string } = {}) {
  const threads: FakeThread[] = [];
  const lines: string[] = [];
  let now = 1_000_000;
  const config = parseConfig({ hostname: "mxd.test", spoolDir: "/nonexistent" });
  const logger = createLogger(opts.level ?? "silent", { write: () => undefined });
  const courier = new ThreadCourier({
    config,
    logger,
    writeLog: (l) => lines.push(l),
    spawn: (start) => {
      const t = new FakeThread(start);
      threads.push(t);
      return t;
    },
    now: () => now,
  });
  return { courier, threads, lines, advance: (ms: number) => (now += ms), config };
}

const released: string[] = [];
function request(over: Partial<DeliveryRequest> = {}): DeliveryRequest {
  return {
    id: "01M8TJN00SRAQJES",
    sender: "a@origin.test",
    domain: "remote.test",
    recipients: [{ address: "b@remote.test" }],
    openBody: () => Readable.from([Buffer.from("unused")]),
    locate: async () => ({ head: "DKIM-Signature: x\r\n", body: { kind: "bytes", bytes: Buffer.from("Subject: s\r\n\r\nbody\r\n"), release: () => released.push("bytes") } }),
    size: 21,
    eightBit: false,
    smtputf8: false,
    ...over,
  };
}

const delivered = (rcpt: string): RecipientResult => ({ recipient: rcpt, outcome: "delivered", reply: "250 2.0.0 ok", status: "2.0.0", remote: true });

/** Waits (a few turns of the event loop) until thread `i` exists and got `n` messages. */
async function posted(threads: FakeThread[], i: number, n: number): Promise<FakeThread> {
  for (let k = 0; k < 100 && (threads[i]?.posted.length ?? 0) < n; k++) await new Promise((r) => setImmediate(r));
  const t = threads[i];
  assert.ok(t && t.posted.length >= n, `thread ${i} got ${t?.posted.length ?? "no"} messages, want ${n}`);
  return t;
}

/** One delivery through thread `i` (a new one: its first message), answered "delivered". */
async function deliveredBy(courier: ThreadCourier, threads: FakeThread[], i: number): Promise<void> {
  const q = courier.deliver(request());
  await posted(threads, i, 1);
  const m = threads[i]!.posted[0]!.message;
  assert.ok(m.t === "deliver");
  threads[i]!.reply({ t: "result", n: m.n, results: [delivered("b@remote.test")] });
  assert.equal((await q)[0]!.outcome, "delivered");
}

test("a delivery is posted as plain data with the body transferred, and its results come back", async () => {
  const { courier, threads } = setup();
  released.length = 0;
  const p = courier.deliver(request({ envid: "E1", ret: "HDRS" }));
  await posted(threads, 0, 1);
  const t = threads[0]!;
  assert.equal(t.unrefed, true, "the thread does not keep the process alive");
  assert.equal(t.start.level, "silent", "the daemon logger's level, not config.log.level");
  const { message, transfer } = t.posted[0]!;
  assert.equal(message.t, "deliver");
  if (message.t !== "deliver") return;
  assert.equal(message.req.head, "DKIM-Signature: x\r\n");
  assert.equal(message.req.envid, "E1");
  assert.equal(message.req.ret, "HDRS");
  assert.equal(message.req.body.kind, "bytes");
  if (message.req.body.kind === "bytes") assert.equal(Buffer.from(message.req.body.bytes).toString(), "Subject: s\r\n\r\nbody\r\n");
  assert.equal(transfer?.length, 1, "the body's own ArrayBuffer is transferred");
  assert.equal("openBody" in message.req, false, "no functions cross");
  t.reply({ t: "result", n: message.n, results: [delivered("b@remote.test")], dns: { hits: 3, shared: 0, queries: 4, entries: 2 } });
  assert.deepEqual(await p, [delivered("b@remote.test")]);
  assert.deepEqual(courier.dnsStats, { hits: 3, shared: 0, queries: 4, entries: 2 });
  assert.deepEqual(released, ["bytes"], "the located body is released after the delivery");
});

test("a file range crosses as path and offsets; deliveries in flight are matched by number", async () => {
  const { courier, threads } = setup();
  let releasedFile = 0;
  const locate = async () => ({ body: { kind: "file" as const, path: "/spool/journal/00000001.seg", start: 100, end: 199_999, release: () => releasedFile++ } });
  const a = courier.deliver(request({ locate, domain: "a.test" }));
  const b = courier.deliver(request({ domain: "b.test" }));
  await posted(threads, 0, 2);
  const t = threads[0]!;
  const [ma, mb] = t.posted.map((p) => p.message);
  assert.ok(ma?.t === "deliver" && mb?.t === "deliver");
  const byDomain = new Map([ma, mb].map((m) => [m.req.domain, m]));
  const fileReq = byDomain.get("a.test")!;
  assert.deepEqual(fileReq.req.body, { kind: "file", path: "/spool/journal/00000001.seg", start: 100, end: 199_999 });
  t.reply({ t: "result", n: byDomain.get("b.test")!.n, results: [delivered("b")] });
  t.reply({ t: "result", n: fileReq.n, results: [delivered("a")] });
  assert.deepEqual(await a, [delivered("a")]);
  assert.deepEqual(await b, [delivered("b")]);
  assert.equal(releasedFile, 1);
  assert.equal(threads.length, 1, "one thread for all deliveries");
});

test("a failure inside the thread rejects that delivery with MXD_DELIVERY_THREAD and the original code", async () => {
  const { courier, threads } = setup();
  const p = courier.deliver(request());
  await posted(threads, 0, 1);
  const m = threads[0]!.posted[0]!.message;
  assert.ok(m.t === "deliver");
  threads[0]!.reply({ t: "fail", n: m.n, message: "options.port should be >= 0", code: "ERR_SOCKET_BAD_PORT" });
  await assert.rejects(p, (e: Error & { code?: string }) => e.code === "MXD_DELIVERY_THREAD" && /ERR_SOCKET_BAD_PORT: options\.port/.test(e.message));
});

test("a thread that dies fails its deliveries in flight; a new one starts no sooner than a second later", async () => {
  const { courier, threads, advance } = setup();
  const p = courier.deliver(request());
  await posted(threads, 0, 1);
  threads[0]!.emit("error", new Error("boom"));
  await assert.rejects(p, (e: Error & { code?: string }) => e.code === "MXD_DELIVERY_THREAD" && /failed: boom/.test(e.message));
  assert.equal(threads[0]!.terminated, 1);
  await assert.rejects(courier.deliver(request()), /restarted in a moment/, "no restart loop");
  advance(1_000);
  await deliveredBy(courier, threads, 1);
  // An exit (out of memory, process.exit in the thread) is the same.
  const r = courier.deliver(request());
  await posted(threads, 1, 2);
  threads[1]!.emit("exit", 1);
  await assert.rejects(r, /exited \(code 1\)/);
});

test("log lines of the thread go to writeLog; reconfigure posts the config with the logger's level", async () => {
  const { courier, threads, lines, config } = setup();
  courier.reconfigure(config); // no thread yet: nothing to tell
  courier.start();
  const t = threads[0]!;
  assert.equal(t.posted.length, 0);
  t.reply({ t: "log", lines: ['{"level":"info","msg":"a"}\n', '{"level":"info","msg":"b"}\n'] });
  assert.deepEqual(lines, ['{"level":"info","msg":"a"}\n', '{"level":"info","msg":"b"}\n']);
  courier.reconfigure(config);
  assert.deepEqual(t.posted.map((p) => p.message.t), ["config"]);
  const c = t.posted[0]!.message;
  assert.ok(c.t === "config" && c.level === "silent");
});

test("close asks the thread to close, waits for it, ends it; deliveries after close are refused", async () => {
  const { courier, threads } = setup();
  courier.start();
  const t = threads[0]!;
  const closing = courier.close();
  await posted(threads, 0, 1);
  assert.equal(t.posted[0]!.message.t, "close");
  assert.equal(t.terminated, 0, "waits for the thread's answer");
  t.reply({ t: "closed" });
  await closing;
  assert.equal(t.terminated, 1);
  await assert.rejects(courier.deliver(request()), /closed/);
  assert.equal(threads.length, 1, "no new thread after close");
});

test("a thread that stops saying it is alive for 30 s is ended; its deliveries are retried, the next starts a new one", async () => {
  const { courier, threads, advance } = setup();
  const p = courier.deliver(request());
  await posted(threads, 0, 1);
  // The watchdog looks every 5 s.
  const tick = (ms: number) => {
    for (let k = 0; k < ms; k += 5_000) {
      advance(Math.min(5_000, ms - k));
      courier.checkAlive();
    }
  };
  tick(20_000);
  threads[0]!.reply({ t: "alive" });
  tick(29_000);
  assert.equal(threads[0]!.terminated, 0, "alive 29 s ago: left alone");
  tick(1_000);
  assert.equal(threads[0]!.terminated, 1);
  await assert.rejects(p, (e: Error & { code?: string }) => e.code === "MXD_DELIVERY_THREAD" && /stopped responding/.test(e.message));
  await deliveredBy(courier, threads, 1);
});

test("a thread that dies while it closes: close() ends at once (not after the 5 s grace), its delivery is failed", async () => {
  const { courier, threads } = setup();
  const p = courier.deliver(request());
  const failed = assert.rejects(p, (e: Error & { code?: string }) => e.code === "MXD_DELIVERY_THREAD");
  const t = await posted(threads, 0, 1);
  const t0 = Date.now();
  const closing = courier.close();
  await posted(threads, 0, 2);
  assert.equal(t.posted[1]!.message.t, "close");
  t.emit("exit", 1);
  await closing;
  assert.ok(Date.now() - t0 < 2_000, `close took ${Date.now() - t0} ms`);
  await failed;
});

test("a request the thread cannot take (postMessage throws) is refused at once, nothing left waiting", async () => {
  const { courier, threads } = setup();
  courier.start();
  threads[0]!.postMessage = () => {
    throw new Error("could not be cloned");
  };
  await assert.rejects(courier.deliver(request()), (e: Error & { code?: string }) => e.code === "MXD_DELIVERY_THREAD" && /could not be passed.*could not be cloned/.test(e.message));
});

test("a pause of the whole process (SIGSTOP, a frozen VM or container) is not taken for a stuck thread", async () => {
  // Both threads stop; on resuming, the clock has jumped and the thread has not had a turn to
  // say it is alive. Ending it then would fail every delivery in flight, some after their dot.
  const { courier, threads, advance } = setup();
  const p = courier.deliver(request());
  await posted(threads, 0, 1);
  advance(5_000);
  courier.checkAlive();
  threads[0]!.reply({ t: "alive" });
  advance(120_000); // stopped for two minutes: no look, no heartbeat
  courier.checkAlive();
  assert.equal(threads[0]!.terminated, 0, "not ended on resuming");
  const m = threads[0]!.posted[0]!.message;
  assert.ok(m.t === "deliver");
  threads[0]!.reply({ t: "result", n: m.n, results: [delivered("b@remote.test")] });
  assert.equal((await p)[0]!.outcome, "delivered");
  // Silent for 30 s after the resume, with the watchdog looking every 5 s: ended.
  for (let k = 0; k < 5; k++) {
    advance(5_000);
    courier.checkAlive();
  }
  assert.equal(threads[0]!.terminated, 0, "25 s after the reply");
  advance(5_000);
  courier.checkAlive();
  assert.equal(threads[0]!.terminated, 1);
});
