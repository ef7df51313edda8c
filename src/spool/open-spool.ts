// The spool mxd uses, built from the configuration (the daemon and the CLI alike).
import type { Config } from "../config.js";
import { JournalSpool } from "./journal-spool.js";

export function openSpool(config: Config, opts: { now?: () => number; readOnly?: boolean } = {}): JournalSpool {
  return new JournalSpool({
    dir: config.spoolDir,
    now: opts.now,
    readOnly: opts.readOnly,
    minFree: config.spool.minFree,
    segmentSize: config.spool.segmentSize,
    inlineMax: config.spool.inlineMax,
    compactAfterSegments: config.spool.compactAfterSegments,
  });
}
