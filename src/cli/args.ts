// Command-line options for every `mxd` command: node:util parseArgs, with its errors turned
// into one line an operator can act on ("unknown option --sendr (did you mean --sender?)")
// instead of Node's parser message. Exit status 2, like every usage error.
import { parseArgs, type ParseArgsConfig } from "node:util";
import { nearest } from "../config-describe.js";
import { MxdError } from "../core/errors.js";

export class UsageError extends MxdError {
  constructor(message: string) {
    super("MXD_USAGE", message);
    this.name = "UsageError";
  }
}

type Options = NonNullable<ParseArgsConfig["options"]>;

export function parseOptions<O extends Options>(command: string, args: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    if (!code.startsWith("ERR_PARSE_ARGS")) throw e;
    throw new UsageError(`${command}: ${describeParseError(code, (e as Error).message, Object.keys(options))}`);
  }
}

/** Pure: Node's parser error → our words. */
export function describeParseError(code: string, message: string, known: readonly string[]): string {
  // "Unknown option '--sendr'", "Option '-c, --config <value>' argument missing": the long form.
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? "";
  const opt = /--[^\s,<]+/.exec(quoted)?.[0] ?? /-[^\s,<]+/.exec(quoted)?.[0];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && opt) {
    const near = nearest(opt.replace(/^-+/, ""), known);
    return `unknown option ${opt}${near ? ` (did you mean --${near}?)` : ""}; see --help`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && opt) {
    return /argument missing/.test(message) ? `option ${opt} needs a value` : `option ${opt} takes no value`;
  }
  if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") {
    const arg = /'([^']+)'/.exec(message)?.[1];
    return `unexpected argument${arg ? ` ${JSON.stringify(arg)}` : ""}; see --help`;
  }
  return message.split(". ")[0]!;
}
