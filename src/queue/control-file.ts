// `spoolDir/control.json`: the persisted pause state (queue/state.ts). Written like spool state
// files: new file in tmp/, fsync, rename over the old one, fsync the directory — so a crash
// leaves either the old or the new state, never a torn file.
import { promises as fsp } from "node:fs";
import { join } from "node:path";
import { syncDir, writeFileSynced } from "../io/durable-file.js";
import { INITIAL_CONTROL, decodeControl, type ControlState, type ControlStore } from "./state.js";

export function controlFilePath(spoolDir: string): string {
  return join(spoolDir, "control.json");
}

export class ControlFile implements ControlStore {
  readonly path: string;
  constructor(private readonly spoolDir: string) {
    this.path = controlFilePath(spoolDir);
  }

  async load(): Promise<ControlState> {
    let text: string;
    try {
      text = await fsp.readFile(this.path, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return { ...INITIAL_CONTROL, pausedDomains: [] };
      throw e;
    }
    try {
      return decodeControl(JSON.parse(text));
    } catch (e) {
      throw new Error(`${this.path}: ${(e as Error).message}`);
    }
  }

  async save(state: ControlState): Promise<void> {
    const tmpDir = join(this.spoolDir, "tmp");
    await fsp.mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, `control.json.${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
    try {
      await writeFileSynced(tmp, JSON.stringify({ ...state, updatedAt: new Date().toISOString() }, null, 2) + "\n");
      await fsp.rename(tmp, this.path);
      await syncDir(this.spoolDir);
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      throw e;
    }
  }
}
