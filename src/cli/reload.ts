// `mxd reload`: ask the running daemon to re-read its config file, as SIGHUP does, and say
// what happened — the settings that changed, or why the new file was refused (the daemon then
// keeps running on its previous configuration).
import { parseOptions } from "./args.js";
import { connectDaemon } from "./admin-client.js";
import { resolveConfig } from "./resolve-config.js";
import type { ReloadResult } from "../reload-plan.js";

const USAGE = `usage: mxd reload [--config FILE] [--json]
  The running daemon re-reads its config file (as on SIGHUP) and applies what changed:
  certificates, relay networks, routes, fallback relays, limits, localDomains, listeners.
  exit codes: 0 applied, 1 mxd is not running or did not answer, 2 the new config was refused`;

export async function reloadCommand(argv: string[]): Promise<number> {
  const { values } = parseOptions("mxd reload", argv, { config: { type: "string", short: "c" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const config = resolveConfig(values.config);
  const daemon = await connectDaemon(config);
  if (!daemon) {
    console.error(`mxd reload: mxd is not running on spool ${config.spoolDir}`);
    return 1;
  }
  const r = await daemon.post<ReloadResult>("/reload", {});
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else if (r.applied) console.log(r.changed.length ? `applied; changed: ${r.changed.join(", ")}` : "applied; nothing changed");
  else console.error(`mxd reload: refused, mxd keeps running on its previous configuration:\n${r.errors.join("\n")}`);
  return r.applied ? 0 : 2;
}
