import { readFile } from 'node:fs/promises';
import { parse as parseYaml, parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError, InputNotFoundError } from '../errors.js';
import { pipelineSchema, type PipelineConfig } from './pipeline-schema.js';

/**
 * `${VAR}` and `${VAR:-default}` in string values are filled from the environment (secrets,
 * URLs); a variable that is unset and has no default is an error naming it. A value that is one
 * placeholder alone takes the type its text reads as (`port: ${PORT}` -> 8080); such values are
 * recorded in `typed` (path -> text) so that a string field can get the text back
 * (`token: ${TOKEN}` with TOKEN=1234 stays "1234").
 */
export function substituteEnv(
  value: unknown,
  env: NodeJS.ProcessEnv,
  path: string,
  problems: string[],
  typed?: Map<string, string>,
): unknown {
  if (typeof value === 'string') {
    const whole = /^\$\{[^}]+\}$/.test(value);
    const text = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, def: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      problems.push(`${path || '(top level)'}: environment variable ${name} is not set (use \${${name}:-default} for a default)`);
      return '';
    });
    if (!whole) return text;
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch {
      return text;
    }
    if (typeof parsed !== 'number' && typeof parsed !== 'boolean') return text;
    typed?.set(path, text);
    return parsed;
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, `${path}[${i}]`, problems, typed));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, path ? `${path}.${k}` : k, problems, typed)]),
    );
  }
  return value;
}

function formatPath(path: readonly PropertyKey[]): string {
  return (
    path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '') || '(top level)'
  );
}

/** What was expected, for the issues whose schema gave no message of its own. */
function expected(issue: z.core.$ZodRawIssue): string | undefined {
  switch (issue.code) {
    case 'invalid_type':
      return issue.expected === 'int'
        ? 'expected integer'
        : `expected ${issue.expected === 'object' ? 'a mapping' : issue.expected === 'array' ? 'a list' : issue.expected}`;
    case 'invalid_value':
      return `expected ${issue.values.length === 1 ? '' : 'one of '}${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'invalid_union':
      return 'options' in issue && Array.isArray(issue['options'])
        ? `expected one of ${issue['options'].map((v: unknown) => JSON.stringify(v)).join(', ')}`
        : undefined;
    case 'too_small':
      return `expected ${issue.origin === 'array' ? 'a list of' : issue.origin} ${issue.inclusive === false ? '>' : '>='} ${String(issue.minimum)}${issue.origin === 'array' ? ' items' : issue.origin === 'string' ? ' characters' : ''}`;
    case 'too_big':
      return `expected ${issue.origin === 'array' ? 'a list of' : issue.origin} ${issue.inclusive === false ? '<' : '<='} ${String(issue.maximum)}${issue.origin === 'array' ? ' items' : issue.origin === 'string' ? ' characters' : ''}`;
    default:
      return undefined;
  }
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v = input;
  for (const p of path) v = v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const where = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys')
    return `${where}: unknown key${issue.keys.length === 1 ? '' : 's'} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  const received = valueAt(input, issue.path);
  return `${where}: ${issue.message}, received ${received === undefined ? 'nothing' : JSON.stringify(received)}`;
}

/** Parses and validates pipeline YAML text; the result is deeply frozen. */
export function parsePipeline(text: string, where: string, env: NodeJS.ProcessEnv = process.env): Readonly<PipelineConfig> {
  const doc = parseDocument(text, { prettyErrors: true });
  // Later YAML errors mostly follow from the first: report that one.
  const yamlError = doc.errors[0];
  if (yamlError !== undefined)
    throw new ConfigError(where, [`YAML: ${(yamlError.message.split('\n')[0] ?? yamlError.message).replace(/:$/, '')}`]);
  const raw: unknown = doc.toJS();
  const problems: string[] = [];
  const typed = new Map<string, string>();
  const filled = substituteEnv(raw, env, '', problems, typed);
  if (problems.length > 0) throw new ConfigError(where, problems);
  const options = { error: (issue: z.core.$ZodRawIssue) => expected(issue) };
  let parsed = pipelineSchema.safeParse(filled, options);
  // A placeholder read as a number or boolean where the schema wants a string: give it its text back.
  const retype = parsed.success
    ? []
    : parsed.error.issues.filter((i) => i.code === 'invalid_type' && i.expected === 'string' && typed.has(formatPath(i.path)));
  for (const issue of retype) setAt(filled, issue.path, typed.get(formatPath(issue.path)));
  if (retype.length > 0) parsed = pipelineSchema.safeParse(filled, options);
  if (!parsed.success)
    throw new ConfigError(
      where,
      parsed.error.issues.map((i) => describeIssue(i, filled)),
    );
  return deepFreeze(parsed.data);
}

export async function loadPipeline(path: string, env: NodeJS.ProcessEnv = process.env): Promise<Readonly<PipelineConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new InputNotFoundError(path, 'pipeline file', 'it is a folder, not a YAML file');
    throw new InputNotFoundError(
      path,
      'pipeline file',
      code === 'ENOENT' || code === undefined ? undefined : `the file cannot be read (${code})`,
    );
  }
  return parsePipeline(text, `file "${path}"`, env);
}

function setAt(root: unknown, path: readonly PropertyKey[], value: unknown): void {
  const parent = valueAt(root, path.slice(0, -1));
  const key = path[path.length - 1];
  if (parent && typeof parent === 'object' && key !== undefined) (parent as Record<PropertyKey, unknown>)[key] = value;
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
