import { isUuid, parseFhirDateTime } from '@cmc/fhir';

describe('parseFhirDateTime', () => {
  it.each([
    ['2026', '2026-01-01T00:00:00.000Z'],
    ['2026-03', '2026-03-01T00:00:00.000Z'],
    ['2024-02-29', '2024-02-29T00:00:00.000Z'],
    ['2026-11-24T10:15:30Z', '2026-11-24T10:15:30.000Z'],
    ['2026-11-24T10:15:30.25+01:00', '2026-11-24T09:15:30.250Z'],
    ['2026-11-24T00:30:00-05:30', '2026-11-24T06:00:00.000Z'],
  ])('when given %s, then it means %s', (input, instant) => {
    expect(parseFhirDateTime(input)?.toISOString()).toBe(instant);
  });

  it.each(['2026-02-31', '2025-02-29', '2026-13-01', '2026-00-10', '2026-11-24T24:00:00Z', '2026-11-24T10:60:00Z', '2026-11-24T10:15:30', '26-11-24', '2026-11-24T10:15Z', 'yesterday', ''])(
    'when given %p, then it is not a dateTime',
    (input) => {
      expect(parseFhirDateTime(input)).toBeUndefined();
    },
  );
});

describe('isUuid', () => {
  it('when the id is a v4 UUID, then yes; otherwise no', () => {
    expect(isUuid('0b6a1d1e-5c5a-4c0e-9a55-0e8f2f2b7a11')).toBe(true);
    expect(isUuid('not-a-uuid')).toBe(false);
    expect(isUuid('0b6a1d1e5c5a4c0e9a550e8f2f2b7a11')).toBe(false);
  });
});
