import {
  ALL_TOPICS,
  ContractError,
  EVENT_DEFINITIONS,
  TOPICS,
  assertValidEvent,
  dlqTopic,
  makeEvent,
  topicOf,
  type CloudEvent,
  type ConsentGrantedData,
} from '@cmc/contracts';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const granted: ConsentGrantedData = {
  consentId: '5b0c4a2e-3f8d-4c1a-9e6b-2d7f8a9b0c1d',
  versionId: '1',
  nhsNumber: '9434765919',
  status: 'active',
  dateTime: '2025-03-04T10:11:12Z',
};

const grantedEvent = (): CloudEvent<'cmc.consent.granted.v1'> =>
  makeEvent({ type: 'cmc.consent.granted.v1', source: 'consent', data: { ...granted }, key: granted.nhsNumber });

/** The ContractError `fn` throws; fails the test when it throws nothing or something else. */
function contractError(fn: () => unknown): ContractError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ContractError);
    return e as ContractError;
  }
  throw new Error('expected a ContractError, but nothing was thrown');
}

/** A valid event made into a plain object that a test may damage. */
const raw = (): Record<string, unknown> => JSON.parse(JSON.stringify(grantedEvent())) as Record<string, unknown>;

describe('makeEvent', () => {
  it('when given valid data, then it builds a CloudEvents 1.0 envelope with a fresh uuid id and the current time', () => {
    const before = Date.now();
    const ev = grantedEvent();
    expect(ev).toEqual({
      specversion: '1.0',
      id: expect.stringMatching(UUID) as unknown,
      source: 'consent',
      type: 'cmc.consent.granted.v1',
      time: expect.any(String) as unknown,
      datacontenttype: 'application/json',
      partitionkey: '9434765919',
      data: granted,
    });
    expect(Date.parse(ev.time)).toBeGreaterThanOrEqual(before);
    expect(Date.parse(ev.time)).toBeLessThanOrEqual(Date.now());
    expect(ev).not.toHaveProperty('subject');
    expect(ev).not.toHaveProperty('requestid');
    expect(grantedEvent().id).not.toBe(ev.id);
  });

  it('when id, time, subject and request id are given, then the envelope carries them', () => {
    const ev = makeEvent({
      type: 'cmc.consent.withdrawn.v1',
      source: 'consent',
      key: '9434765919',
      id: '0e7c4d8a-1b2c-4d3e-8f9a-0b1c2d3e4f5a',
      time: new Date('2025-06-07T08:09:10.000Z'),
      subject: 'Consent/5b0c4a2e-3f8d-4c1a-9e6b-2d7f8a9b0c1d',
      requestId: 'req-123',
      data: {
        consentId: granted.consentId,
        versionId: '2',
        nhsNumber: '9434765919',
        status: 'inactive',
        withdrawnAt: '2025-06-07T08:09:10Z',
        reason: 'patient asked',
      },
    });
    expect(ev.id).toBe('0e7c4d8a-1b2c-4d3e-8f9a-0b1c2d3e4f5a');
    expect(ev.time).toBe('2025-06-07T08:09:10.000Z');
    expect(ev.subject).toBe('Consent/5b0c4a2e-3f8d-4c1a-9e6b-2d7f8a9b0c1d');
    expect(ev.requestid).toBe('req-123');
    expect(() => assertValidEvent(JSON.parse(JSON.stringify(ev)))).not.toThrow();
  });

  it('when building an access record, then the full audit shape is accepted', () => {
    const ev = makeEvent({
      type: 'cmc.access.recorded.v1',
      source: 'care-plan',
      key: '9434765919',
      data: {
        agent: { kind: 'user', id: 'user-1', role: 'clinician', organisation: 'A81001' },
        interaction: 'read',
        outcome: 'allowed',
        recordedAt: '2025-03-04T10:11:12.345Z',
        entities: [{ resourceType: 'CarePlan', id: 'cp1', versionId: '3', nhsNumber: '9434765919' }],
        query: 'patient:identifier=*',
        source: { service: 'care-plan', clientAddress: '10.0.0.1', userAgent: 'jest' },
        purposeOfUse: 'TREAT',
      },
    });
    expect(ev.type).toBe('cmc.access.recorded.v1');
  });

  it('when the data breaks its schema, then no event is made', () => {
    const err = contractError(() =>
      makeEvent({ type: 'cmc.consent.granted.v1', source: 'consent', key: 'k', data: { ...granted, nhsNumber: '943476591' } }),
    );
    expect(err.message).toMatch(/^invalid data for cmc\.consent\.granted\.v1: /);
  });

  it('when the source is empty, then no event is made', () => {
    expect(() => makeEvent({ type: 'cmc.consent.granted.v1', source: '', key: 'k', data: granted })).toThrow(ContractError);
  });
});

describe('assertValidEvent', () => {
  it('when the event is valid, then it passes', () => {
    expect(() => assertValidEvent(raw())).not.toThrow();
  });

  it('when the type is unknown, then the envelope is refused', () => {
    const ev = { ...raw(), type: 'cmc.consent.granted.v2' };
    const err = contractError(() => assertValidEvent(ev));
    expect(err.message).toMatch(/^invalid CloudEvent envelope: /);
    expect(err.errors).toEqual(['event/type must be equal to one of the allowed values']);
  });

  it('when the id is missing, then the envelope is refused naming id', () => {
    const ev = raw();
    delete ev.id;
    expect(contractError(() => assertValidEvent(ev)).errors).toEqual(["event must have required property 'id'"]);
  });

  it('when the id is not a uuid, then the envelope is refused', () => {
    const err = contractError(() => assertValidEvent({ ...raw(), id: 'event-1' }));
    expect(err.errors).toEqual(['event/id must match format "uuid"']);
  });

  it('when the envelope has a field CloudEvents and our extensions do not define, then it is refused', () => {
    const err = contractError(() => assertValidEvent({ ...raw(), traceparent: '00-abc' }));
    expect(err.errors).toEqual(['event must NOT have additional properties']);
  });

  it('when the spec version or time is wrong, then each problem is listed', () => {
    const err = contractError(() => assertValidEvent({ ...raw(), specversion: '0.3', time: 'yesterday' }));
    expect(err.errors).toEqual(expect.arrayContaining(['event/specversion must be equal to constant', 'event/time must match format "date-time"']));
    expect(err.errors).toHaveLength(2);
    expect(err.message).toContain('event/specversion must be equal to constant; event/time must match format "date-time"');
  });

  it('when the value is not an object, then it is refused', () => {
    expect(contractError(() => assertValidEvent('{"specversion":"1.0"}')).errors).toEqual(['event must be object']);
    expect(() => assertValidEvent(null)).toThrow(ContractError);
  });

  it('when the NHS number in the data has 9 digits, then the data is refused naming the field', () => {
    const ev = raw();
    ev.data = { ...granted, nhsNumber: '943476591' };
    const err = contractError(() => assertValidEvent(ev));
    expect(err.message).toMatch(/^invalid data for cmc\.consent\.granted\.v1: /);
    expect(err.errors).toEqual(['data/nhsNumber must match pattern "^[0-9]{10}$"']);
  });

  it('when the data has a property its schema does not define, then it is refused', () => {
    const ev = raw();
    ev.data = { ...granted, patientName: 'Smith' };
    expect(contractError(() => assertValidEvent(ev)).errors).toEqual(['data must NOT have additional properties']);
  });

  it('when the data has several problems, then the ContractError lists every one', () => {
    const ev = raw();
    ev.data = { consentId: 'not-a-uuid', versionId: '0', nhsNumber: '9434765919', status: 'inactive' };
    const err = contractError(() => assertValidEvent(ev));
    expect(err.errors).toEqual(
      expect.arrayContaining([
        "data must have required property 'dateTime'",
        'data/consentId must match format "uuid"',
        'data/versionId must match pattern "^[1-9][0-9]*$"',
        'data/status must be equal to constant',
      ]),
    );
    expect(err.errors).toHaveLength(4);
    expect(err.name).toBe('ContractError');
    for (const e of err.errors) expect(err.message).toContain(e);
  });

  it('when the data fits another event type, then it is checked against its own type and refused', () => {
    const ev = raw();
    ev.type = 'cmc.consent.withdrawn.v1';
    const err = contractError(() => assertValidEvent(ev));
    expect(err.message).toMatch(/^invalid data for cmc\.consent\.withdrawn\.v1: /);
  });

  it('when an access record names an unknown interaction or agent kind, then it is refused', () => {
    const ev = makeEvent({
      type: 'cmc.access.recorded.v1',
      source: 'care-plan',
      key: 'k',
      data: { agent: { kind: 'client', id: 'c1' }, interaction: 'search', outcome: 'refused', recordedAt: '2025-03-04T10:11:12Z', entities: [] },
    });
    const bad = JSON.parse(JSON.stringify(ev)) as { data: { agent: { kind: string }; interaction: string } };
    bad.data.agent.kind = 'robot';
    bad.data.interaction = 'peek';
    expect(contractError(() => assertValidEvent(bad)).errors).toEqual(
      expect.arrayContaining(['data/agent/kind must be equal to one of the allowed values', 'data/interaction must be equal to one of the allowed values']),
    );
  });
});

describe('ContractError', () => {
  it('when made, then its message joins the problems and it keeps the list', () => {
    const e = new ContractError('bad event', ['one', 'two']);
    expect(e).toBeInstanceOf(Error);
    expect(e.message).toBe('bad event: one; two');
    expect(e.errors).toEqual(['one', 'two']);
  });
});

describe('topics', () => {
  it('when an event type is given, then topicOf names the topic of its definition', () => {
    expect(topicOf('cmc.consent.granted.v1')).toBe(TOPICS.consent);
    expect(topicOf('cmc.consent.withdrawn.v1')).toBe(TOPICS.consent);
    expect(topicOf('cmc.access.recorded.v1')).toBe(TOPICS.access);
    for (const def of Object.values(EVENT_DEFINITIONS)) expect(Object.values(TOPICS)).toContain(def.topic);
  });

  it('when a topic is given, then its dead-letter topic adds .dlq', () => {
    expect(dlqTopic('cmc.consent.v1')).toBe('cmc.consent.v1.dlq');
  });

  it('when deploy/kafka-topics.txt is read, then its topics equal ALL_TOPICS exactly, in order', () => {
    const file = readFileSync(path.resolve(__dirname, '../../../deploy/kafka-topics.txt'), 'utf8');
    const topics = file
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l.length > 0 && !l.startsWith('#'));
    expect(topics).toEqual([...ALL_TOPICS]);
    expect(ALL_TOPICS).toHaveLength(Object.keys(TOPICS).length * 2);
  });
});
