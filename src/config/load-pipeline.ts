import { readFile } from 'node:fs/promises';
import { parse as parseYaml, parseDocument } from 'yaml';
import { z } from 'zod';
import { ConfigError, InputNotFoundError } from '../errors.js';
import { pipelineSchema, type PipelineConfig } from './pipeline-schema.js';

/**
 * `${VAR}` and `${VAR:-default}` in string values are filled from the environment (secrets,
 * URLs); a variable that is unset and has no default is an error naming it.
 */
export function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    // A value that is one placeholder alone takes the type the text reads as (port: ${PORT} -> number).
    const whole = /^\$\{[^}]+\}$/.test(value);
    const text = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_, name: string, def: string | undefined) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      problems.push(`${path}: environment variable ${name} is not set (use \${${name}:-default} for a default)`);
      return '';
    });
    if (!whole) return text;
    const typed: unknown = parseYaml(text);
    return typeof typed === 'number' || typeof typed === 'boolean' ? typed : text;
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteEnv(v, env, `${path}[${i}]`, problems));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substituteEnv(v, env, path ? `${path}.${k}` : k, problems)]));
  }
  return value;
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '') || '(top level)';
}

function describeIssue(issue: z.core.$ZodIssue, input: unknown): string {
  const where = formatPath(issue.path);
  let received: unknown = input;
  for (const p of issue.path) received = received && typeof received === 'object' ? (received as Record<PropertyKey, unknown>)[p] : undefined;
  if (issue.code === 'unrecognized_keys') return `${where}: unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  const got = received === undefined ? 'nothing' : JSON.stringify(received);
  return `${where}: ${issue.message}, received ${got}`;
}

/** Parses and validates pipeline YAML text; the result is deeply frozen. */
export function parsePipeline(text: string, where: string, env: NodeJS.ProcessEnv = process.env): Readonly<PipelineConfig> {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) throw new ConfigError(where, doc.errors.map((e) => `YAML: ${e.message.split('\n')[0] ?? e.message}`));
  const raw: unknown = doc.toJS();
  const problems: string[] = [];
  const filled = substituteEnv(raw, env, '', problems);
  if (problems.length > 0) throw new ConfigError(where, problems);
  const parsed = pipelineSchema.safeParse(filled);
  if (!parsed.success) throw new ConfigError(where, parsed.error.issues.map((i) => describeIssue(i, filled)));
  const names = parsed.data.sources.map((s) => s.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new ConfigError(where, [`sources: two sources are named "${dup}"; names must be unique`]);
  return deepFreeze(parsed.data);
}

export async function loadPipeline(path: string, env: NodeJS.ProcessEnv = process.env): Promise<Readonly<PipelineConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new InputNotFoundError(path, 'pipeline file');
  }
  return parsePipeline(text, `file "${path}"`, env);
}

function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) deepFreeze(x);
    Object.freeze(v);
  }
  return v;
}
