// How config problems and the effective config are told to an operator: every error names the
// key and the bad value, a typo'd key gets the nearest valid one ("did you mean …?"), and
// `mxd check-config` shows durations and sizes as written ("5m", not 300000). Pure: works on
// the zod schema and the parsed JSON; no I/O.
import { z } from "zod";

/** Levenshtein distance, for "did you mean" (keys are short: O(n·m) is nothing). */
export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length]!;
}

/** The candidate closest to `word`, when it is close enough to be a typo of it. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word, c);
    if (dist < bestD) [best, bestD] = [c, dist];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(best.length / 3)) ? best : undefined;
}

/** Strip defaults, optionals, nullables and refinements down to the schema that has a shape. */
function unwrap(s: z.ZodTypeAny): z.ZodTypeAny {
  for (;;) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodNullable) s = s._def.innerType as z.ZodTypeAny;
    else if (s instanceof z.ZodEffects) s = s._def.schema as z.ZodTypeAny;
    else return s;
  }
}

/** The schema at a key path (array indexes and record keys step into the element/value schema). */
export function schemaAt(root: z.ZodTypeAny, path: readonly (string | number)[]): z.ZodTypeAny | undefined {
  let s: z.ZodTypeAny | undefined = root;
  for (const k of path) {
    if (!s) return undefined;
    const u = unwrap(s);
    if (u instanceof z.ZodObject) s = (u.shape as Record<string, z.ZodTypeAny>)[String(k)];
    else if (u instanceof z.ZodArray) s = u.element as z.ZodTypeAny;
    else if (u instanceof z.ZodRecord) s = u.valueSchema as z.ZodTypeAny;
    else return undefined;
  }
  return s;
}

function valueAt(input: unknown, path: readonly (string | number)[]): { found: boolean; value?: unknown } {
  let v: unknown = input;
  for (const k of path) {
    if (v === null || typeof v !== "object" || !(k in (v as object))) return { found: false };
    v = (v as Record<string, unknown>)[k as string];
  }
  return { found: true, value: v };
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 80 ? s.slice(0, 77) + "..." : s;
}

/** One line per problem: "key.path: what was expected, got VALUE" (+ "did you mean …?"). */
export function describeIssue(issue: z.ZodIssue, input: unknown, schema: z.ZodTypeAny): string {
  const path = issue.path.join(".");
  const where = path || "(top level)";
  if (issue.code === z.ZodIssueCode.unrecognized_keys) {
    const shape = unwrap(schemaAt(schema, issue.path) ?? schema);
    const valid = shape instanceof z.ZodObject ? Object.keys(shape.shape as object) : [];
    const parts = issue.keys.map((k) => {
      const near = nearest(k, valid);
      const full = path ? `${path}.${k}` : k;
      return `unknown key ${JSON.stringify(full)}${near ? ` (did you mean ${JSON.stringify(path ? `${path}.${near}` : near)}?)` : ""}`;
    });
    return parts.join("; ");
  }
  const got = valueAt(input, issue.path);
  const gotText = got.found ? show(got.value) : "nothing";
  if (issue.code === z.ZodIssueCode.invalid_type) {
    if (issue.received === "undefined") return `${where}: required (expected ${issue.expected})`;
    return `${where}: expected ${issue.expected}, got ${gotText}`;
  }
  if (issue.code === z.ZodIssueCode.invalid_enum_value) {
    return `${where}: expected one of ${issue.options.map((o) => JSON.stringify(o)).join(", ")}, got ${JSON.stringify(issue.received)}`;
  }
  // Messages written in the schema usually quote the value already; the others get it added.
  const quoted = got.found && typeof got.value !== "object" && issue.message.includes(show(got.value));
  return `${where}: ${issue.message}${got.found && !quoted ? `, got ${gotText}` : ""}`;
}

/**
 * The effective config for display: the parsed values, except that durations and sizes are
 * shown as the file wrote them (or as the default is written), not as milliseconds and bytes.
 */
export function displayConfig(schema: z.ZodTypeAny, input: unknown, parsed: unknown, asWritten: ReadonlySet<z.ZodTypeAny>): unknown {
  const walk = (s: z.ZodTypeAny | undefined, inp: unknown, out: unknown): unknown => {
    if (!s) return out;
    // Find the duration/size schema under any default/nullable wrapper, with the default's literal.
    let cur: z.ZodTypeAny = s;
    let dflt: unknown;
    for (;;) {
      if (asWritten.has(cur)) {
        if (typeof out !== "number") return out;
        if (inp !== undefined && inp !== null) return inp;
        return dflt !== undefined ? dflt : out;
      }
      if (cur instanceof z.ZodDefault) {
        dflt ??= (cur._def.defaultValue as () => unknown)();
        cur = cur._def.innerType as z.ZodTypeAny;
      } else if (cur instanceof z.ZodOptional || cur instanceof z.ZodNullable) cur = cur._def.innerType as z.ZodTypeAny;
      else if (cur instanceof z.ZodEffects && !asWritten.has(cur)) cur = cur._def.schema as z.ZodTypeAny;
      else break;
    }
    if (out === null || typeof out !== "object") return out;
    const inObj = inp !== null && typeof inp === "object" ? (inp as Record<string, unknown>) : {};
    if (Array.isArray(out)) return out.map((v, i) => walk(schemaAt(s, [i]), (inObj as unknown as unknown[])[i], v));
    const res: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(out as Record<string, unknown>)) res[k] = walk(schemaAt(s, [k]), inObj[k], v);
    return res;
  };
  return walk(schema, input, parsed);
}
