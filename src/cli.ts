#!/usr/bin/env node
// mxd command line: `mxd serve`, `mxd check-config`, `mxd queue ...`.
import { readFileSync } from "node:fs";
import { displayConfig } from "./config.js";
import { loadResolvedConfig } from "./cli/resolve-config.js";
import { parseOptions, UsageError } from "./cli/args.js";
import { startDaemon } from "./main.js";
import { queueCommand } from "./cli/queue.js";
import { statusCommand } from "./cli/status.js";
import { spoolCommand } from "./cli/spool.js";
import { cliMessage, exitStatusFor } from "./core/errors.js";
import { userCommand } from "./cli/user.js";
import { dkimCommand } from "./cli/dkim.js";
import { loadDkimPolicy } from "./dkim/policy.js";
import { reloadCommand } from "./cli/reload.js";
import { loadTlsCredentials } from "./io/tls-credentials.js";

const USAGE = `usage: mxd <command> [options]

commands:
  serve [--config FILE] [--log-level LEVEL]   run the MTA (SMTP in, delivery out)
  check-config [FILE]                          validate a config file and print it with defaults
  queue list|show|flush|delete|bounce|hold|release|pause|resume [...]
                                               inspect and manage the queue (mxd queue --help)
  status [--json]                              is mxd running, listeners, queue counts, pauses, last errors
  reload                                       make the running daemon re-read its config file (as SIGHUP)
  --version                                    print the version
  spool check [--json]                         verify the spool journal: checksums, damage, unreadable states
  user add|passwd|delete|list [NAME]           submission users (auth.usersFile; mxd user --help)
  dkim keygen DOMAIN [--selector S] [--algorithm rsa|ed25519]
                                               new DKIM key (mode 0600) and the DNS TXT record to publish
  dkim check DOMAIN                            does the published DKIM record match the configured key?

--config FILE defaults to ./mxd.json when it exists, else $MXD_CONFIG, else /etc/mxd/mxd.json
when it exists, else the embedded default config.
exit codes: 0 success, 1 operation failed, 2 usage or configuration error`;

async function serve(argv: string[]): Promise<number> {
  const { values } = parseOptions("mxd serve", argv, { config: { type: "string", short: "c" }, "log-level": { type: "string" }, help: { type: "boolean", short: "h" } }, false);
  if (values.help) {
    console.log("usage: mxd serve [--config FILE] [--log-level fatal|error|warn|info|debug|trace|silent]");
    return 0;
  }
  const { config } = loadResolvedConfig(values.config, { logLevel: values["log-level"] });
  // Handlers first: a SIGTERM that arrives while mxd starts (right after "ready", say) must
  // stop it gracefully, not kill it with Node's default action.
  let reopen: (() => void) | undefined;
  const stopSignal = new Promise<string>((resolve) => {
    const onSignal = (sig: string) => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      resolve(sig);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  // logrotate: the file was renamed; write to a new one at the configured path.
  process.on("SIGUSR1", () => reopen?.());
  // SIGHUP re-reads the config file (Node's default action would kill the daemon and leave
  // admin.sock and mxd.pid behind). One that arrives while mxd starts is applied after "ready".
  let reload: (() => void) | undefined;
  let hupWhileStarting = false;
  process.on("SIGHUP", () => (reload ? reload() : (hupWhileStarting = true)));
  const loadConfig = () => loadResolvedConfig(values.config, { logLevel: values["log-level"] }).config;
  const daemon = await startDaemon(config, { loadConfig }).catch((e: unknown) => {
    // Nothing may keep a half-started daemon alive (a listener bound before the failure):
    // report, and exit with the status the error deserves.
    process.exitCode = exitStatusFor(e);
    console.error(cliMessage(e));
    process.exit();
  });
  reopen = () => {
    daemon.reopenLog();
    daemon.logger.info({ file: config.log.file }, "log reopened");
  };
  reload = () => {
    daemon.logger.info({ signal: "SIGHUP" }, "signal received: reloading the configuration");
    void daemon.reload();
  };
  if (hupWhileStarting) reload();
  daemon.logger.info({ signal: await stopSignal }, "signal received");
  await daemon.stop();
  // Deliveries still in flight after shutdownTimeout are cut here: their recipients stay
  // pending in the spool and are attempted again at the next start (the lock is already
  // released, so the process must not linger and write the spool behind a new daemon).
  process.exit(0);
}

function checkConfig(argv: string[]): number {
  const { values, positionals } = parseOptions("mxd check-config", argv, { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } });
  if (values.help) {
    console.log("usage: mxd check-config [FILE]   (exit 0 valid, 2 invalid, 1 certificates not loadable)\n  Prints the effective config (durations and sizes as written) on stdout, the file it read and OK on stderr;\n  also loads tls.cert/tls.key/tls.sni as mxd serve would (unreadable file, key not matching its certificate).");
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`mxd check-config: one file expected, got ${positionals.length}`);
  const { config, input, source } = loadResolvedConfig(positionals[0] ?? values.config);
  // DKIM keys are files the schema cannot see into: load them, as `mxd serve` will.
  loadDkimPolicy(config.dkim, (p) => readFileSync(p));
  console.log(JSON.stringify(displayConfig(input, config), null, 2));
  const where = source ?? "no config file found (./mxd.json, $MXD_CONFIG, /etc/mxd/mxd.json): embedded defaults";
  // The certificates as `mxd serve` and a reload would load them: a renewal can be checked first.
  try {
    loadTlsCredentials(config.tls);
  } catch (e) {
    console.error(`mxd check-config: ${where}: ${(e as Error).message}`);
    return 1;
  }
  console.error(`mxd check-config: ${where}: OK`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "serve":
        return await serve(rest);
      case "check-config":
        return checkConfig(rest);
      case "queue":
        return await queueCommand(rest);
      case "status":
        return await statusCommand(rest);
      case "reload":
        return await reloadCommand(rest);
      case "--version":
      case "-V":
      case "version":
        console.log(`mxd ${version()}`);
        return 0;
      case "spool":
        return await spoolCommand(rest);
      case "user":
        return await userCommand(rest);
      case "dkim":
        return await dkimCommand(rest);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        console.error(`mxd: unknown command ${JSON.stringify(cmd)}\n\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    // core/errors.ts: one table of exit statuses and messages.
    console.error(cliMessage(e));
    return exitStatusFor(e);
  }
}


function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version;
  } catch {
    return "unknown";
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    console.error(e);
    process.exitCode = 1;
  },
);
