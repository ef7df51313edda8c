// pino logger: one JSON line per event. Messages about a queued message carry `qid`.
// On a terminal the same events are printed as readable lines instead (JSON stays the format
// for files, pipes and log shippers).
import pino from "pino";
import { BatchedDestination } from "./batched-destination.js";

export type Logger = pino.Logger;

export function createLogger(level: string = "info", destination?: pino.DestinationStream): Logger {
  const opts: pino.LoggerOptions = {
    level,
    base: { pid: process.pid, name: "mxd" },
    timestamp: isoTimeField,
    formatters: { level: (label) => ({ level: label }) },
  };
  if (!destination && process.stdout.isTTY) destination = prettyStream(process.stdout);
  // Not a terminal: asynchronous writes to stdout (lines that arrive while one write is in
  // flight go out together). A synchronous write per line cost an eighth of the CPU time of a
  // delivery run (profiled, docs/performance.md); pino flushes what is pending at exit.
  // Bounded: when stdout cannot keep up, lines beyond 16 MB of backlog are dropped, never memory.
  // Lines reach it in batches, one per turn of the event loop (io/batched-destination.ts).
  destination ??= new BatchedDestination(pino.destination({ dest: 1, sync: false, maxLength: 16 * 1024 * 1024 }));
  return pino(opts, destination);
}

let lastMs = NaN;
let lastField = "";
/** pino's isoTime, with the string made once per millisecond (lines come in bursts). */
export function isoTimeField(now = Date.now()): string {
  if (now !== lastMs) {
    lastMs = now;
    lastField = `,"time":"${new Date(now).toISOString()}"`;
  }
  return lastField;
}

const HIDDEN = new Set(["level", "time", "msg", "pid", "name"]);
const COLOURS: Record<string, string> = { fatal: "35", error: "31", warn: "33", info: "32", debug: "36", trace: "90" };

/** "15:04:18.016 INFO  message queued qid=01M8... from=a@b nrcpt=1" */
export function prettyLine(json: string, colour = false): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.replace(/\n$/, "");
  }
  const time = typeof o.time === "string" ? o.time.slice(11, 23) : "";
  const level = String(o.level ?? "").toUpperCase().padEnd(5);
  const lvl = colour ? `\x1b[${COLOURS[String(o.level)] ?? "0"}m${level}\x1b[0m` : level;
  const fields = Object.entries(o)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" && !/\s/.test(v) ? v : JSON.stringify(v)}`);
  return [time, lvl, String(o.msg ?? ""), ...fields].filter(Boolean).join(" ");
}

/**
 * `log.format: "text"`: the same event as one `key=value` line, every field included, in the
 * JSON's order ("time=… level=info msg=delivered qid=… to=…"); values with spaces or quotes are
 * JSON strings, objects are JSON.
 */
export function textLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.replace(/\n$/, "");
  }
  return Object.entries(o)
    .map(([k, v]) => `${k}=${typeof v === "string" ? (/^[^\s"=]+$/.test(v) ? v : JSON.stringify(v)) : JSON.stringify(v)}`)
    .join(" ");
}

export interface LogOutput {
  logger: Logger;
  /** Reopen log.file (after logrotate moved it; SIGUSR1). No-op on stdout. */
  reopen(): void;
  /** Flush what is buffered (before exit). */
  flush(): void;
}

/** The daemon's logger from `log` in the config: JSON (default) or text, on stdout or log.file. */
export function createLogOutput(o: { level: string; format?: "json" | "text"; file?: string | null }): LogOutput {
  if (!o.file) {
    if (o.format === "text") {
      const logger = createLogger(o.level, { write: (line: string) => void process.stdout.write(textLine(line) + "\n") });
      return { logger, reopen: () => undefined, flush: () => undefined };
    }
    const logger = createLogger(o.level);
    return { logger, reopen: () => undefined, flush: () => undefined };
  }
  // Asynchronous (buffered) writes to the file; reopen() opens the path again, so logrotate can
  // rename the file and signal mxd (no copytruncate needed).
  const file = pino.destination({ dest: o.file, sync: false, mkdir: true, maxLength: 16 * 1024 * 1024 });
  const batched = new BatchedDestination(file);
  const dest: pino.DestinationStream = o.format === "text" ? { write: (line: string) => batched.write(textLine(line) + "\n") } : batched;
  const logger = createLogger(o.level, dest);
  return {
    logger,
    // Lines logged before the signal go to the old file, later ones to the new one.
    reopen: () => {
      batched.drain();
      file.reopen();
    },
    flush: () => batched.flushSync(),
  };
}

function prettyStream(out: NodeJS.WriteStream): pino.DestinationStream {
  return { write: (line: string) => void out.write(prettyLine(line, true) + "\n") };
}

/**
 * Writes lines another logger made (the delivery thread's, as JSON) to this logger's
 * destination, so that one writer owns the log file and its format (text, pretty).
 */
export function lineWriter(logger: Logger): (line: string) => void {
  const dest = (logger as unknown as Record<symbol, pino.DestinationStream | undefined>)[pino.symbols.streamSym];
  return (line) => {
    // This logger's level rules (a silent test logger writes nothing, whatever the thread made).
    const level = /^\{"level":"(\w+)"/.exec(line)?.[1];
    if (level && logger.isLevelEnabled(level)) dest?.write(line);
  };
}

/** A logger that discards everything (tests). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
