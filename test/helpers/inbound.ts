// The inbound-side test helpers, by purpose: inbound-server.ts (an in-process SmtpServer with a
// temporary spool), raw-client.ts (a byte-exact SMTP client), spool-inspect.ts (reading the
// spool), tls-cert.ts (a throw-away certificate), wait.ts (bounded waits); the daemon as a
// child process is daemon-process.ts. This file is their index, for the tests that import it,
// and cleanup() ends all of them at once.
import { closeClients } from "./raw-client.js";
import { closeServers } from "./inbound-server.js";
import { killDaemons } from "./daemon-process.js";

export * from "./inbound-server.js";
export * from "./raw-client.js";
export * from "./spool-inspect.js";
export * from "./tls-cert.js";
export * from "./wait.js";

/** Destroy clients, kill daemons, close servers (use in after). */
export async function cleanup(): Promise<void> {
  closeClients();
  killDaemons();
  await closeServers();
}
