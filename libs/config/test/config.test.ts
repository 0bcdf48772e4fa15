import {
  ConfigError,
  bool,
  describeConfig,
  int,
  list,
  loadConfig,
  oneOf,
  optionalStr,
  optionalUrl,
  port,
  str,
  url,
  type Spec,
} from '@cmc/config';

/** The ConfigError `fn` throws; fails the test when it throws nothing or something else. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError, but nothing was thrown');
}

const spec = {
  PORT: port({ doc: 'HTTP port.', default: 8080 }),
  LOG_LEVEL: oneOf(['debug', 'info', 'warn'] as const, { doc: 'Log level.', default: 'info' }),
  DATABASE_URL: url({ doc: 'PostgreSQL URL.', protocols: ['postgres', 'postgresql'], secret: true }),
  KAFKA_BROKERS: list({ doc: 'Kafka brokers.', default: ['127.0.0.1:9092'], item: /^[\w.-]+:\d+$/ }),
  OUTBOX_ENABLED: bool({ doc: 'Run the outbox relay.', default: true }),
  SERVICE_NAME: str({ doc: 'Name in logs.', default: 'consent', pattern: /^[a-z-]+$/ }),
  CALLBACK_URL: optionalUrl({ doc: 'Where to call back.', protocols: ['https'] }),
  NOTE: optionalStr({ doc: 'A note.' }),
} satisfies Spec;

describe('loadConfig', () => {
  it('when only the required settings are given, then every other setting takes its default', () => {
    const config = loadConfig(spec, { DATABASE_URL: 'postgres://u:p@db:5432/cmc' });
    expect(config).toEqual({
      PORT: 8080,
      LOG_LEVEL: 'info',
      DATABASE_URL: 'postgres://u:p@db:5432/cmc',
      KAFKA_BROKERS: ['127.0.0.1:9092'],
      OUTBOX_ENABLED: true,
      SERVICE_NAME: 'consent',
      CALLBACK_URL: undefined,
      NOTE: undefined,
    });
  });

  it('when every setting is given, then each is parsed to its type', () => {
    const config = loadConfig(spec, {
      PORT: '0',
      LOG_LEVEL: 'debug',
      DATABASE_URL: 'postgresql://db/cmc',
      KAFKA_BROKERS: ' k1:9092, k2.example:9093 ,,',
      OUTBOX_ENABLED: 'no',
      SERVICE_NAME: 'care-plan',
      CALLBACK_URL: 'https://hooks.example/cb',
      NOTE: 'hello',
    });
    expect(config).toEqual({
      PORT: 0,
      LOG_LEVEL: 'debug',
      DATABASE_URL: 'postgresql://db/cmc',
      KAFKA_BROKERS: ['k1:9092', 'k2.example:9093'],
      OUTBOX_ENABLED: false,
      SERVICE_NAME: 'care-plan',
      CALLBACK_URL: 'https://hooks.example/cb',
      NOTE: 'hello',
    });
  });

  it('when a variable is set but empty, then it counts as unset', () => {
    const config = loadConfig(spec, { DATABASE_URL: 'postgres://db/cmc', PORT: '', NOTE: '' });
    expect(config.PORT).toBe(8080);
    expect(config.NOTE).toBeUndefined();
  });

  it('when a required setting is missing, then the error names it and says what it is for', () => {
    const e = configError(() => loadConfig(spec, {}));
    expect(e.problems).toEqual(['DATABASE_URL is required: PostgreSQL URL.']);
    expect(e.name).toBe('ConfigError');
    expect(e.message).toBe('invalid configuration:\n  DATABASE_URL is required: PostgreSQL URL.');
  });

  it('when several values are bad, then one ConfigError reports every one of them, in spec order', () => {
    const e = configError(() =>
      loadConfig(spec, {
        PORT: '70000',
        LOG_LEVEL: 'loud',
        KAFKA_BROKERS: 'k1:9092,nope',
        OUTBOX_ENABLED: 'maybe',
        SERVICE_NAME: 'Consent!',
        CALLBACK_URL: 'http://hooks.example/cb',
      }),
    );
    expect(e.problems).toEqual([
      'PORT="70000" must be at most 65535',
      'LOG_LEVEL="loud" must be one of debug, info, warn',
      'DATABASE_URL is required: PostgreSQL URL.',
      'KAFKA_BROKERS="k1:9092,nope" item "nope" must match /^[\\w.-]+:\\d+$/',
      'OUTBOX_ENABLED="maybe" must be true or false',
      'SERVICE_NAME="Consent!" must match /^[a-z-]+$/',
      'CALLBACK_URL="http://hooks.example/cb" must be a URL with scheme https',
    ]);
    for (const p of e.problems) expect(e.message).toContain(p);
  });

  it('when a secret setting has a bad value, then the error does not echo the value', () => {
    const secretValue = 'mysql://admin:hunter2@db/cmc';
    const e = configError(() =>
      loadConfig(
        { ...spec, API_KEY: str({ doc: 'Key.', secret: true, pattern: /^k_[a-z0-9]{8}$/ }) },
        { DATABASE_URL: secretValue, API_KEY: 'sk_live_supersecret' },
      ),
    );
    expect(e.problems).toEqual([
      'DATABASE_URL=(secret) must be a URL with scheme postgres or postgresql',
      'API_KEY=(secret) must match /^k_[a-z0-9]{8}$/',
    ]);
    expect(e.message).not.toContain('hunter2');
    expect(e.message).not.toContain('supersecret');
  });

  it('when a non-secret setting has a bad value, then the error quotes the value', () => {
    const e = configError(() => loadConfig({ N: int({ doc: 'n' }) }, { N: 'twelve' }));
    expect(e.problems).toEqual(['N="twelve" must be a whole number']);
  });

  it('when a secret setting has a default, then loading still gives the value', () => {
    const config = loadConfig({ TOKEN: str({ doc: 'Token.', secret: true, default: 'dev-token' }) }, {});
    expect(config.TOKEN).toBe('dev-token');
  });

  it('when no environment is passed, then process.env is read', () => {
    const key = `CMC_CONFIG_TEST_${process.pid}`;
    process.env[key] = '17';
    try {
      expect(loadConfig({ [key]: int({ doc: 'n' }) })[key]).toBe(17);
    } finally {
      delete process.env[key];
    }
  });
});

describe('int', () => {
  const n = int({ doc: 'n', min: -5, max: 10 });

  it.each([
    ['-5', -5],
    ['0', 0],
    ['10', 10],
    ['007', 7],
  ])('when given %j within its bounds, then it parses to %i', (raw, value) => {
    expect(n.parse(raw)).toBe(value);
  });

  it.each([
    ['-6', 'must be at least -5'],
    ['11', 'must be at most 10'],
    ['1.5', 'must be a whole number'],
    ['1e3', 'must be a whole number'],
    [' 5', 'must be a whole number'],
    ['0x10', 'must be a whole number'],
    ['five', 'must be a whole number'],
  ])('when given %j, then it refuses it: %s', (raw, message) => {
    expect(() => n.parse(raw)).toThrow(message);
  });

  it('when it has no bounds, then any whole number parses', () => {
    expect(int({ doc: 'n' }).parse('-123456')).toBe(-123456);
  });

  it('when port, then 0 and 65535 are the bounds', () => {
    const p = port({ doc: 'p' });
    expect(p.parse('65535')).toBe(65535);
    expect(() => p.parse('65536')).toThrow('must be at most 65535');
    expect(() => p.parse('-1')).toThrow('must be at least 0');
  });
});

describe('bool', () => {
  const b = bool({ doc: 'b' });

  it.each(['true', 'TRUE', '1', 'yes', 'Yes'])('when given %j, then it is true', (raw) => {
    expect(b.parse(raw)).toBe(true);
  });

  it.each(['false', 'False', '0', 'no', 'NO'])('when given %j, then it is false', (raw) => {
    expect(b.parse(raw)).toBe(false);
  });

  it.each(['on', 'off', 'y', '2', 'truthy'])('when given %j, then it is refused', (raw) => {
    expect(() => b.parse(raw)).toThrow('must be true or false');
  });
});

describe('oneOf', () => {
  const level = oneOf(['debug', 'info'] as const, { doc: 'l' });

  it('when given one of the values, then it is accepted', () => {
    expect(level.parse('debug')).toBe('debug');
  });

  it('when given another value or another case, then it is refused listing the allowed values', () => {
    expect(() => level.parse('DEBUG')).toThrow('must be one of debug, info');
    expect(() => level.parse('trace')).toThrow('must be one of debug, info');
  });
});

describe('url', () => {
  it('when it has no protocol list, then any URL is accepted and kept as given', () => {
    expect(url({ doc: 'u' }).parse('ftp://files.example/x')).toBe('ftp://files.example/x');
  });

  it('when the value is not a URL, then it is refused', () => {
    expect(() => url({ doc: 'u' }).parse('not a url')).toThrow('must be a URL');
    expect(() => url({ doc: 'u' }).parse('/relative/path')).toThrow('must be a URL');
  });

  it('when a protocol list is given, then only those schemes are accepted', () => {
    const u = url({ doc: 'u', protocols: ['http', 'https'] });
    expect(u.parse('http://127.0.0.1:8080/.well-known/jwks.json')).toBe('http://127.0.0.1:8080/.well-known/jwks.json');
    expect(u.parse('HTTPS://Identity.Example/jwks')).toBe('HTTPS://Identity.Example/jwks');
    expect(() => u.parse('file:///etc/passwd')).toThrow('must be a URL with scheme http or https');
    expect(() => u.parse('javascript:alert(1)')).toThrow('must be a URL with scheme http or https');
  });

  it('when optional and unset, then it is undefined; when set, then it is checked like url', () => {
    const spec2 = { CB: optionalUrl({ doc: 'cb', protocols: ['https'] }) };
    expect(loadConfig(spec2, {}).CB).toBeUndefined();
    expect(loadConfig(spec2, { CB: 'https://x.example' }).CB).toBe('https://x.example');
    expect(configError(() => loadConfig(spec2, { CB: 'http://x.example' })).problems).toEqual([
      'CB="http://x.example" must be a URL with scheme https',
    ]);
  });

  it('when an optional URL is secret, then a bad value is not echoed', () => {
    const e = configError(() => loadConfig({ HOOK: optionalUrl({ doc: 'h', secret: true }) }, { HOOK: 'token=abc123' }));
    expect(e.problems).toEqual(['HOOK=(secret) must be a URL']);
  });
});

describe('list', () => {
  it('when items are separated by commas with spaces and blanks, then the items are trimmed and blanks dropped', () => {
    expect(list({ doc: 'l' }).parse(' a , b,,c ,')).toEqual(['a', 'b', 'c']);
  });

  it('when nothing but commas and spaces is given, then it is refused', () => {
    expect(() => list({ doc: 'l' }).parse(' , ,')).toThrow('must list at least one value');
  });

  it('when an item does not match the item pattern, then the error names that item', () => {
    const brokers = list({ doc: 'l', item: /^[a-z0-9.-]+:\d+$/ });
    expect(brokers.parse('k1:9092,k2:9093')).toEqual(['k1:9092', 'k2:9093']);
    expect(() => brokers.parse('k1:9092,k2')).toThrow('item "k2" must match /^[a-z0-9.-]+:\\d+$/');
  });
});

describe('str', () => {
  it('when a pattern is given, then values must match it', () => {
    const s = str({ doc: 's', pattern: /^[A-Z]\d{5}$/ });
    expect(s.parse('A12345')).toBe('A12345');
    expect(() => s.parse('a12345')).toThrow('must match /^[A-Z]\\d{5}$/');
  });

  it('when no pattern is given, then any value is kept as given', () => {
    expect(str({ doc: 's' }).parse('  spaced  ')).toBe('  spaced  ');
  });
});

describe('describeConfig', () => {
  it('when given a spec, then it writes a markdown table row per setting with its default or **required**', () => {
    const table = describeConfig({
      PORT: port({ doc: 'HTTP port.', default: 8080 }),
      DATABASE_URL: url({ doc: 'PostgreSQL URL.', secret: true }),
      TOKEN: str({ doc: 'Dev token.', default: 'dev-token', secret: true }),
      KAFKA_BROKERS: list({ doc: 'Brokers.', default: ['a:1', 'b:2'] }),
      CALLBACK_URL: optionalUrl({ doc: 'Callback.' }),
      TIMEOUT_MS: int({ doc: 'Timeout.', default: 30_000, defaultDoc: '30 s' }),
      LOG_LEVEL: oneOf(['info', 'debug'] as const, { doc: 'Log level.', default: 'info' }),
    });
    expect(table.split('\n')).toEqual([
      '| variable | default | what it does |',
      '|---|---|---|',
      '| `PORT` | 8080 | HTTP port. |',
      '| `DATABASE_URL` | **required** | PostgreSQL URL. |',
      '| `TOKEN` | (secret) | Dev token. |',
      '| `KAFKA_BROKERS` | ["a:1","b:2"] | Brokers. |',
      '| `CALLBACK_URL` | (unset) | Callback. |',
      '| `TIMEOUT_MS` | 30 s | Timeout. |',
      '| `LOG_LEVEL` | "info" | Log level. |',
    ]);
    expect(table).not.toContain('dev-token');
  });
});
