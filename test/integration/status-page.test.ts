// The live status page in a real browser: Debian's chromium (never a downloaded browser),
// driven by playwright-core, against `mxd serve` as a child process. The page loads with the
// admin token (Basic, as a browser sends it), shows a message submitted during the test,
// its numbers change while mail flows, it loads nothing from elsewhere, and a screenshot is
// written under the test's temp dir. Owns 127.0.0.176-178.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import nodemailer from "nodemailer";
import { startDaemonProcess, writeConfig } from "../helpers/daemon-process.js";
import { startMxSink } from "../helpers/mx-sink.js";

const CHROMIUM = "/usr/bin/chromium";
const TOKEN = "status-page-token-0123456789";
const dir = mkdtempSync(join(tmpdir(), "mxd-status-"));
after(() => (process.env.MXD_KEEP_TEST_DIR ? undefined : rmSync(dir, { recursive: true, force: true })));

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.176", port, path, headers, timeout: 5000 }, (res) => {
      let t = "";
      res.on("data", (c: Buffer) => {
        t += c.toString();
        if (path === "/events" && t.includes("\n\n{") === false && /data: /.test(t)) res.destroy();
      });
      res.on("close", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: t }));
    });
    req.on("error", reject);
  });
}

const skip = !existsSync(CHROMIUM) && process.env.CI !== "true" ? "needs Debian's chromium (apt-get install chromium)" : false;

test("status page: loads with the token, shows a message submitted now, numbers move while mail flows; screenshot", { skip, timeout: 120_000 }, async (t) => {
  const { chromium } = await import("playwright-core");
  const ok = await startMxSink({ host: "127.0.0.177" });
  const grey = await startMxSink({ host: "127.0.0.178", rcpt: () => ({ code: 451, message: "4.7.1 Greylisted, come back later" }) });
  t.after(() => ok.close());
  t.after(() => grey.close());
  const cfg = writeConfig(dir, {
    hostname: "mxd.test",
    spoolDir: join(dir, "spool"),
    listen: [{ host: "127.0.0.176", port: 0 }],
    admin: { listen: "127.0.0.176:0", token: TOKEN },
    routes: { "ok.test": ["127.0.0.177:25"], "grey.test": ["127.0.0.178:25"] },
    delivery: { retry: { minDelay: "1h", maxDelay: "1h", jitter: 0 } },
    log: { level: "info" },
  });
  const d = await startDaemonProcess(cfg);
  t.after(() => d.stop());
  const adminAddr = (d.ready.admin as string[]).find((a) => a.startsWith("127.0.0.176:"))!;
  const port = Number(adminAddr.split(":")[1]);

  // The token rules of the admin API: nothing without it; the browser is asked for Basic.
  const noAuth = await get(port, "/");
  assert.equal(noAuth.status, 401);
  assert.match(String(noAuth.headers["www-authenticate"]), /Basic realm="mxd"/);
  assert.equal((await get(port, "/live")).status, 401);
  const basic = { Authorization: "Basic " + Buffer.from(`mxd:${TOKEN}`).toString("base64") };
  const page0 = await get(port, "/", basic);
  assert.equal(page0.status, 200);
  assert.doesNotMatch(page0.text, /(src|href)=["']?(https?:)?\/\//, "no external assets");
  assert.equal((await get(port, "/", { Authorization: "Basic " + Buffer.from("mxd:wrong-token-000000000").toString("base64") })).status, 401);

  const smtp = nodemailer.createTransport({ host: "127.0.0.176", port: d.smtpPort, secure: false, ignoreTLS: true });
  const submit = async (to: string) => /queued as ([0-9A-Z]{16})/.exec((await smtp.sendMail({ envelope: { from: "app@shop.test", to: [to] }, from: "app@shop.test", to, subject: "status page", text: "hello\n" })).response)![1]!;

  const profile = mkdtempSync(join(dir, "chromium-profile-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    httpCredentials: { username: "mxd", password: TOKEN },
    viewport: { width: 1280, height: 1100 },
  });
  t.after(() => browser.close());
  const page = browser.pages()[0] ?? (await browser.newPage());
  const origin = `http://127.0.0.176:${port}`;
  const foreign: string[] = [];
  page.on("request", (r) => {
    if (!r.url().startsWith(origin)) foreign.push(r.url());
  });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(e.message));

  await page.goto(origin + "/", { waitUntil: "load" });
  await page.waitForFunction(() => document.getElementById("conn")?.textContent === "live", undefined, { timeout: 15_000 });
  const text = async (id: string) => (await page.textContent(`#${id}`))?.trim() ?? "";
  assert.equal(await text("accepted-total"), "0");

  // A message submitted now: it is greylisted, stays queued, and the page shows it.
  const qid = await submit("someone@grey.test");
  await page.waitForFunction((id) => document.getElementById("recent")?.textContent?.includes(id) ?? false, qid, { timeout: 15_000 });
  await page.waitForFunction(() => document.getElementById("destinations")?.textContent?.includes("grey.test") ?? false, undefined, { timeout: 15_000 });
  assert.match((await page.textContent("#destinations")) ?? "", /451 4\.7\.1 Greylisted/);
  assert.match((await page.textContent("#reasons")) ?? "", /Greylisted/);
  assert.equal(await text("depth-deferred"), "1");

  // Mail flows: the counters and rates move.
  const before = { accepted: Number(await text("accepted-total")), delivered: Number(await text("delivered-total")) };
  for (let i = 0; i < 10; i++) await submit(`user${i}@ok.test`);
  await ok.waitForMessages(10, 15_000);
  await page.waitForFunction((n) => Number(document.getElementById("delivered-total")?.textContent) >= n, before.delivered + 10, { timeout: 15_000 });
  assert.equal(Number(await text("accepted-total")), before.accepted + 10);
  assert.ok(Number(await text("accepted-rate")) > 0, "accepted per second > 0");
  assert.ok(Number(await text("delivered-rate")) > 0, "delivered per second > 0");
  assert.match((await page.textContent("#tls")) ?? "", /ok\.test/);

  const shot = join(dir, "status-page.png");
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000, "a real screenshot");
  console.log(`# status page screenshot: ${shot} (${statSync(shot).size} bytes)`);
  assert.deepEqual(foreign, [], "the page loads nothing from elsewhere");
  assert.deepEqual(errors, [], "no script errors");
});
