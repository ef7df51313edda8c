// One log line for every refused command of a mail transaction at the SMTP front end, like
// Postfix's "NOQUEUE: reject: RCPT from host[ip]: 554 5.7.1 …; from=<a> to=<b> helo=<h>": who
// (client IP, HELO), what (sender, recipient), and the reply sent. Pure: builds the fields;
// server.ts logs them.

/** Longest client-supplied text kept in a log field (bounded by construction). */
const MAX = 256;

const clean = (s: string) => s.replace(/[^\x20-\x7e]/g, "?").slice(0, MAX);

export interface RejectFields {
  event: "reject";
  cmd: string;
  helo?: string;
  from?: string;
  to?: string;
  reply: string;
  status: number;
}

/** The fields of a reject line, or undefined when the command was not refused (or is not logged). */
export function rejectFields(line: string, replies: readonly string[], state: { helo?: string; sender?: string }): RejectFields | undefined {
  const first = replies[0];
  if (!first || !/^[45]\d\d/.test(first)) return undefined;
  const cmd = /^\s*([A-Za-z]+)/.exec(line)?.[1]?.toUpperCase() ?? "";
  // The commands of a mail transaction; a refused NOOP or garbage line is not a reject.
  if (!["MAIL", "RCPT", "DATA", "BDAT", "HELO", "EHLO", "STARTTLS", "VRFY", "EXPN"].includes(cmd)) return undefined;
  const out: RejectFields = { event: "reject", cmd, reply: clean(first), status: Number(first.slice(0, 3)) };
  if (state.helo !== undefined) out.helo = clean(state.helo);
  const arg = /<([^>]*)>/.exec(line)?.[1];
  if (cmd === "MAIL") out.from = clean(arg ?? line.slice(4).trim());
  else if (state.sender !== undefined) out.from = clean(state.sender);
  if (cmd === "RCPT") out.to = clean(arg ?? line.slice(4).trim());
  if (cmd === "HELO" || cmd === "EHLO") out.helo = clean(line.slice(5).trim());
  return out;
}
