// Which config a CLI command uses (design.md, "CLI and process conventions"):
// --config FILE; else ./mxd.json when present; else $MXD_CONFIG; else /etc/mxd/mxd.json when
// present; else the embedded defaults. Every command resolves it the same way, so `mxd serve`
// and `mxd queue …` find the same spool without repeating --config.
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseConfig, readConfigFile, type Config } from "../config.js";

export const SYSTEM_CONFIG = "/etc/mxd/mxd.json";

/** The file to read, or undefined for the embedded defaults (pure apart from `exists`). */
export function configPath(file: string | undefined, env: Record<string, string | undefined>, exists: (p: string) => boolean): string | undefined {
  if (file !== undefined) return file;
  if (exists("mxd.json")) return "mxd.json";
  if (env.MXD_CONFIG) return env.MXD_CONFIG;
  if (exists(SYSTEM_CONFIG)) return SYSTEM_CONFIG;
  return undefined;
}

export interface ResolvedConfig {
  config: Config;
  /** Absolute path of the file read, or undefined (embedded defaults). */
  source: string | undefined;
  /** The file's JSON as written (for display). */
  input: unknown;
}

export function loadResolvedConfig(file: string | undefined, overrides: { logLevel?: string } = {}): ResolvedConfig {
  const path = configPath(file, process.env, existsSync);
  let { config, input } = path ? readConfigFile(path) : { config: parseConfig({}), input: {} as unknown };
  if (overrides.logLevel) {
    const log = { ...((input as { log?: object }).log ?? {}), level: overrides.logLevel };
    config = parseConfig({ ...(input as object), log });
  }
  return { config, input, source: path ? resolve(path) : undefined };
}

export function resolveConfig(file: string | undefined, overrides: { logLevel?: string } = {}): Config {
  return loadResolvedConfig(file, overrides).config;
}
