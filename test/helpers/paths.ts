// Where things are, for every test: the repository, the built CLI, the sources, the fixtures.
// Tests run from dist/test/…, so paths are resolved from this compiled file's location.
import { join } from "node:path";

/** Repository root (this file runs as dist/test/helpers/paths.js). */
export const REPO_ROOT = new URL("../../../", import.meta.url).pathname;
/** The built `mxd` command: `node MXD_CLI serve --config FILE`. */
export const MXD_CLI = join(REPO_ROOT, "dist/src/cli.js");
/** TypeScript sources (the architecture test reads them). */
export const SRC_DIR = join(REPO_ROOT, "src");
/** Golden files (DSNs). */
export const FIXTURES_DIR = join(REPO_ROOT, "test/fixtures");
/** Inbound session dialogues (test/transcripts/README.md). */
export const TRANSCRIPTS_DIR = join(REPO_ROOT, "test/transcripts");
