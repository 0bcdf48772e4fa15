/**
 * Configuration read from the environment, one documented key at a time, validated at start-up.
 * A service declares its settings as a spec; `loadConfig` returns typed values or throws one error that
 * names every bad or missing key, so the service refuses to start.
 */

export interface Setting<T> {
  /** One line saying what the setting does, shown in the configuration reference. */
  doc: string;
  /** Turns the raw string into a value, or throws an Error whose message says what is expected. */
  parse: (raw: string) => T;
  /** Used when the variable is unset or empty. Without it the setting is required. */
  default?: T;
  /** Shown as the default in the reference instead of the value. */
  defaultDoc?: string;
  /** Secrets are never echoed back in errors. */
  secret?: boolean;
}

export type Spec = Record<string, Setting<unknown>>;
export type ConfigOf<S extends Spec> = { readonly [K in keyof S]: S[K] extends Setting<infer T> ? T : never };

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Opts<T> = { doc: string; default?: T; defaultDoc?: string; secret?: boolean };

function make<T>(opts: Opts<T>, parse: (raw: string) => T): Setting<T> {
  const s: Setting<T> = { doc: opts.doc, parse };
  if ('default' in opts) s.default = opts.default;
  if (opts.defaultDoc !== undefined) s.defaultDoc = opts.defaultDoc;
  if (opts.secret) s.secret = true;
  return s;
}

export const str = (opts: Opts<string> & { pattern?: RegExp }): Setting<string> =>
  make(opts, (raw) => {
    if (opts.pattern && !opts.pattern.test(raw)) throw new Error(`must match ${String(opts.pattern)}`);
    return raw;
  });

export const optionalStr = (opts: { doc: string; secret?: boolean }): Setting<string | undefined> =>
  make<string | undefined>({ ...opts, default: undefined, defaultDoc: '(unset)' }, (raw) => raw);

export const int = (opts: Opts<number> & { min?: number; max?: number }): Setting<number> =>
  make(opts, (raw) => {
    if (!/^-?\d+$/.test(raw)) throw new Error('must be a whole number');
    const n = Number(raw);
    if (opts.min !== undefined && n < opts.min) throw new Error(`must be at least ${opts.min}`);
    if (opts.max !== undefined && n > opts.max) throw new Error(`must be at most ${opts.max}`);
    return n;
  });

export const port = (opts: Opts<number>): Setting<number> => int({ ...opts, min: 0, max: 65535 });

export const bool = (opts: Opts<boolean>): Setting<boolean> =>
  make(opts, (raw) => {
    const v = raw.toLowerCase();
    if (['true', '1', 'yes'].includes(v)) return true;
    if (['false', '0', 'no'].includes(v)) return false;
    throw new Error('must be true or false');
  });

export const oneOf = <T extends string>(values: readonly T[], opts: Opts<T>): Setting<T> =>
  make(opts, (raw) => {
    if (!(values as readonly string[]).includes(raw)) throw new Error(`must be one of ${values.join(', ')}`);
    return raw as T;
  });

export const url = (opts: Opts<string> & { protocols?: string[] }): Setting<string> =>
  make(opts, (raw) => {
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      throw new Error('must be a URL');
    }
    if (opts.protocols && !opts.protocols.includes(u.protocol.replace(/:$/, ''))) {
      throw new Error(`must be a URL with scheme ${opts.protocols.join(' or ')}`);
    }
    return raw;
  });

export const optionalUrl = (opts: { doc: string; protocols?: string[]; secret?: boolean }): Setting<string | undefined> => {
  const inner = url({ doc: opts.doc, ...(opts.protocols ? { protocols: opts.protocols } : {}) });
  return make<string | undefined>({ ...opts, default: undefined, defaultDoc: '(unset)' }, inner.parse);
};

/** Comma-separated list, e.g. `host1:9092,host2:9092`. */
export const list = (opts: Opts<string[]> & { item?: RegExp }): Setting<string[]> =>
  make(opts, (raw) => {
    const items = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (items.length === 0) throw new Error('must list at least one value');
    for (const i of items) if (opts.item && !opts.item.test(i)) throw new Error(`item "${i}" must match ${String(opts.item)}`);
    return items;
  });

/** Reads and validates every setting of `spec`; throws one ConfigError naming every problem. */
export function loadConfig<S extends Spec>(spec: S, env: Record<string, string | undefined> = process.env): ConfigOf<S> {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, setting] of Object.entries(spec)) {
    const raw = env[key];
    if (raw === undefined || raw === '') {
      if ('default' in setting) out[key] = setting.default;
      else problems.push(`${key} is required: ${setting.doc}`);
      continue;
    }
    try {
      out[key] = setting.parse(raw);
    } catch (e) {
      const shown = setting.secret ? '(secret)' : JSON.stringify(raw);
      problems.push(`${key}=${shown} ${(e as Error).message}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<S>;
}

/** Markdown table rows for the configuration reference. */
export function describeConfig(spec: Spec): string {
  const rows = Object.entries(spec).map(([key, s]) => {
    const def = s.defaultDoc ?? ('default' in s ? (s.secret ? '(secret)' : JSON.stringify(s.default)) : '**required**');
    return `| \`${key}\` | ${def} | ${s.doc} |`;
  });
  return ['| variable | default | what it does |', '|---|---|---|', ...rows].join('\n');
}
