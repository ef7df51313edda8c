// Which config a CLI command uses: --config FILE, else ./mxd.json when present, else the
// embedded default (design.md, "CLI and process conventions").
import { existsSync } from "node:fs";
import { loadConfigFile, parseConfig, type Config } from "../config.js";

export function resolveConfig(file: string | undefined, overrides: { logLevel?: string } = {}): Config {
  const path = file ?? (existsSync("mxd.json") ? "mxd.json" : undefined);
  let cfg = path ? loadConfigFile(path) : parseConfig({});
  if (overrides.logLevel) cfg = parseConfig({ ...structuredClone(cfg as object), log: { level: overrides.logLevel } });
  return cfg;
}
