import { createLogger, redactUrl, safeError, scrubText } from '@cmc/logging';
import { Writable } from 'node:stream';

function capture(): { lines: () => string; stream: Writable } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString('utf8'));
      cb();
    },
  });
  return { lines: () => chunks.join(''), stream };
}

describe('the platform logger', () => {
  it('when patient fields are logged at any depth up to four, then their values never reach the output', () => {
    const out = capture();
    const log = createLogger({ service: 't', stream: out.stream });
    log.info({ nhsNumber: '9434765919', patient: { identifier: { value: '9434765918' } }, a: { b: { c: { name: 'Mrs Smith' } } }, birthDate: '1941-03-02' }, 'm');
    const text = out.lines();
    for (const secret of ['9434765919', '9434765918', 'Mrs Smith', '1941-03-02']) expect(text).not.toContain(secret);
    expect(text).toContain('[redacted]');
  });

  it('when an error is logged, then only its class, code, scrubbed message and frames appear', () => {
    const out = capture();
    const log = createLogger({ service: 't', stream: out.stream });
    const err = Object.assign(new Error('invalid input syntax for type date: "1941-02-31" for 9434765919'), { code: '22007', detail: 'Key (nhs_number)=(9434765919) exists' });
    log.error({ err }, 'failed');
    const text = out.lines();
    expect(text).not.toContain('1941-02-31');
    expect(text).not.toContain('9434765919');
    expect(text).toContain('22007');
    expect(text).toContain('invalid input syntax for type date');
  });

  it('when a request is logged, then its URL keeps its shape without patient data', () => {
    expect(redactUrl('/fhir/R4/CarePlan?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919&name=Smith')).toBe(
      '/fhir/R4/CarePlan?patient:identifier=*&name=*',
    );
    expect(redactUrl('/api/flags/9434765919')).toBe('/api/flags/**********');
  });

  it('when a library logs a URL under its own key (the proxy\'s `source`), then it is redacted the same way', () => {
    const out = capture();
    const log = createLogger({ service: 't', stream: out.stream });
    log.info({ source: 'http://127.0.0.1:1/fhir/R4/CarePlan?patient:identifier=https%3a%2f%2ffhir.nhs.uk%2fId%2fnhs-number%7c9434765919', url: '/api/flags/9434765919' }, 'fetching from remote server');
    const text = out.lines();
    expect(text).not.toContain('9434765919');
    expect(text).toContain('/fhir/R4/CarePlan?patient:identifier=*');
  });
});

describe('scrubText and safeError', () => {
  it('when text quotes values or carries long digit runs, then they are masked', () => {
    expect(scrubText(`Key (nhs_number)=(9434765919) already exists; name 'Smith' "Jones"`)).toBe(`Key (nhs_number)=(…) already exists; name '…' "…"`);
    expect(scrubText('x'.repeat(600))).toHaveLength(500);
  });

  it('when something other than an Error is thrown, then it is described without its content', () => {
    expect(safeError({ nhsNumber: '9434765919' })).toEqual({ type: 'object', message: 'non-error thrown' });
    expect(safeError('boom 9434765919').message).toBe('boom **********');
  });

  it('when an error has a stack, then its frames are kept and its message line is not', () => {
    const e = new Error('secret "Mrs Smith"');
    const s = safeError(e);
    expect(s.stack).toMatch(/^\s*at /);
    expect(s.stack).not.toContain('Mrs Smith');
  });
});
