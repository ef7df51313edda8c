import { test } from "node:test";
import assert from "node:assert/strict";
import { bodyTypeProblem, checkAccess, hostAllowed, type AccessRequest } from "../../src/admin/access.js";

const req = (o: Partial<AccessRequest>): AccessRequest => ({
  local: false,
  method: "GET",
  path: "/status",
  host: "127.0.0.1:8025",
  origin: undefined,
  tokenOk: undefined,
  port: 8025,
  hostnames: ["mx.example.org"],
  ...o,
});

test("hostAllowed: IP literals, localhost and our hostname, on our port only", () => {
  const rows: [string | undefined, boolean][] = [
    ["127.0.0.1:8025", true],
    ["[::1]:8025", true],
    ["192.0.2.7:8025", true],
    ["localhost:8025", true],
    ["LOCALHOST:8025", true],
    ["mx.example.org:8025", true],
    ["mx.example.org.:8025", true],
    ["attacker.example:8025", false], // DNS rebinding: the page's own name
    ["127.0.0.1", false], // port 80
    ["127.0.0.1:8026", false],
    ["localhost.attacker.example:8025", false],
    ["", false],
    [undefined, false],
    ["[zz]:8025", false],
  ];
  for (const [h, want] of rows) assert.equal(hostAllowed(h, 8025, ["mx.example.org"]), want, String(h));
});

test("checkAccess: table", () => {
  const rows: [string, Partial<AccessRequest>, number | "ok"][] = [
    ["socket: anything", { local: true, method: "POST", path: "/queue/delete", host: undefined }, "ok"],
    ["no token: GET /status", {}, "ok"],
    ["no token: GET /metrics", { path: "/metrics" }, "ok"],
    ["no token: the status page", { path: "/" }, "ok"],
    ["no token: /events", { path: "/events" }, "ok"],
    ["no token: GET /queue is not for TCP", { path: "/queue" }, 403],
    ["no token: POST /pause", { method: "POST", path: "/pause" }, 403],
    ["no token: DELETE a message", { method: "DELETE", path: "/queue/ABC" }, 403],
    ["no token: POST /reload", { method: "POST", path: "/reload" }, 403],
    ["token set, none sent", { tokenOk: false }, 401],
    ["token set, none sent, mutation", { tokenOk: false, method: "POST", path: "/queue/flush" }, 401],
    ["token set and sent: mutation", { tokenOk: true, method: "POST", path: "/queue/flush" }, "ok"],
    ["wrong Host beats a right token", { tokenOk: true, host: "evil.example:8025" }, 403],
    ["cross-origin page", { tokenOk: true, method: "POST", path: "/pause", origin: "http://evil.example" }, 403],
    ["same origin (the status page)", { tokenOk: true, origin: "http://127.0.0.1:8025" }, "ok"],
  ];
  for (const [what, o, want] of rows) {
    const v = checkAccess(req(o));
    assert.equal(v.ok ? "ok" : v.status, want, what);
  }
  const v = checkAccess(req({ tokenOk: false, path: "/" }));
  assert.ok(!v.ok && v.wwwAuthenticate === 'Basic realm="mxd", Bearer realm="mxd"', "the status page may ask a browser for Basic");
  const w = checkAccess(req({ tokenOk: false, path: "/queue" }));
  assert.ok(!w.ok && w.wwwAuthenticate === 'Bearer realm="mxd"');
  const ro = checkAccess(req({ method: "POST", path: "/pause" }));
  assert.ok(!ro.ok && /read-only.*spool socket/.test(ro.message));
});

test("bodyTypeProblem: JSON only; an HTML form's types are refused; the socket may omit an empty body's type", () => {
  const rows: [boolean, string | undefined, boolean, boolean][] = [
    [false, "application/json", true, true],
    [false, "application/json; charset=utf-8", true, true],
    [false, "Application/JSON", false, true],
    [false, "application/x-www-form-urlencoded", true, false],
    [false, "multipart/form-data; boundary=x", true, false],
    [false, "text/plain", true, false],
    [false, undefined, false, false], // TCP: an empty POST must still say JSON
    [false, "application/jsonp", true, false],
    [true, undefined, false, true],
    [true, undefined, true, false],
    [true, "text/plain", true, false],
  ];
  for (const [local, contentType, hasBody, ok] of rows) assert.equal(bodyTypeProblem({ local, contentType, hasBody }) === undefined, ok, `${local} ${contentType} ${hasBody}`);
});
