#!/usr/bin/env node
// mxd command line: `mxd serve`, `mxd check-config`, `mxd queue ...`.
import { parseArgs } from "node:util";
import { ConfigError } from "./config.js";
import { resolveConfig } from "./cli/resolve-config.js";
import { startDaemon } from "./main.js";
import { queueCommand } from "./cli/queue.js";
import { statusCommand } from "./cli/status.js";
import { spoolCommand } from "./cli/spool.js";

const USAGE = `usage: mxd <command> [options]

commands:
  serve [--config FILE] [--log-level LEVEL]   run the MTA (SMTP in, delivery out)
  check-config [FILE]                          validate a config file and print it with defaults
  queue list|show|flush|delete|bounce|hold|release|pause|resume [...]
                                               inspect and manage the queue (mxd queue --help)
  status [--json]                              is mxd running, listeners, queue counts, pauses, last errors
  spool check [--json]                         verify the spool journal: checksums, damage, unreadable states

--config FILE defaults to ./mxd.json when it exists, else the embedded default config.
exit codes: 0 success, 1 operation failed, 2 usage or configuration error`;

async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { config: { type: "string", short: "c" }, "log-level": { type: "string" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    console.log("usage: mxd serve [--config FILE] [--log-level fatal|error|warn|info|debug|trace|silent]");
    return 0;
  }
  const config = resolveConfig(values.config, { logLevel: values["log-level"] });
  // Handlers first: a SIGTERM that arrives while mxd starts (or just after "ready") must stop
  // it cleanly, never kill it with the pid lock and the admin socket left behind.
  let signalled: string | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (sig: string) => {
    signalled ??= sig;
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    wake?.();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  const daemon = await startDaemon(config);
  if (!signalled) await new Promise<void>((resolve) => (wake = resolve));
  daemon.logger.info({ signal: signalled }, "signal received");
  await daemon.stop();
  // Deliveries still in flight after shutdownTimeout are cut here: their recipients stay
  // pending in the spool and are attempted again at the next start (the lock is already
  // released, so the process must not linger and write the spool behind a new daemon).
  process.exit(0);
}

function checkConfig(argv: string[]): number {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: "string", short: "c" }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    console.log("usage: mxd check-config [FILE]   (exit 0 valid, 2 invalid)");
    return 0;
  }
  const cfg = resolveConfig(positionals[0] ?? values.config);
  console.log(JSON.stringify(cfg, null, 2));
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
      case "spool":
        return await spoolCommand(rest);
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
    if (e instanceof ConfigError) {
      console.error(`mxd: ${e.message}`);
      return 2;
    }
    if (e instanceof TypeError && (e as NodeJS.ErrnoException).code?.startsWith("ERR_PARSE_ARGS")) {
      console.error(`mxd: ${e.message}`);
      return 2;
    }
    // System errors (EADDRINUSE, EACCES, ENOSPC...) are operator problems: say what, not where.
    const err = e as NodeJS.ErrnoException;
    console.error(`mxd: ${err.code ? err.message : (err.stack ?? String(e))}`);
    return 1;
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
