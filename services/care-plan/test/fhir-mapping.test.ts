import { OperationOutcomeError, isUuid } from '@cmc/fhir';
import { aCarePlan, randomNhsNumber } from '@cmc/test-support';
import { evalFhirPath } from '@medplum/core';
import { randomUUID } from 'node:crypto';
import { EXTENSION_URLS, allergyIdOf, allergyIntolerances, expressionFor, fromCarePlan, toCarePlan } from '../src/domain/fhir-mapping';
import { validate } from './fhir-validator';
import { PLAN_STATES, type PlanContent, type PlanMeta, type PlanState, type StoredPlan } from '../src/domain/plan';

// Resources are checked by an independent validator (./fhir-validator): Medplum's, not a schema of our own.


const now = new Date();
const parse = (body: unknown) => fromCarePlan(body, { now });
const day = (offset: number) => new Date(now.getTime() + offset * 86_400_000).toISOString().slice(0, 10);

function stored(content: Omit<PlanContent, 'consent'>, state: PlanState = 'draft'): StoredPlan {
  const meta: PlanMeta = {
    id: randomUUID(),
    versionId: 4,
    state,
    organisation: 'Y12345',
    createdBy: 'user-1',
    createdAt: new Date(now.getTime() - 20 * 86_400_000).toISOString(),
    lastUpdated: now.toISOString(),
    lastUpdatedBy: 'user-2',
    lastUpdatedByOrg: 'Acacia Medical Centre (Y12345)',
  };
  if (state === 'published' || state === 'withdrawn' || state === 'deceased') {
    meta.publishedAt = new Date(now.getTime() - 86_400_000).toISOString();
    meta.publishedBy = 'user-2';
  }
  if (state === 'withdrawn') meta.withdrawal = { at: now.toISOString(), reason: 'consent withdrawn', byConsentWithdrawal: true };
  return { meta, content: { ...content, consent: { consentId: randomUUID(), basisCode: '882921000000109' } } };
}

const ALL_SECTIONS = ['background', 'preferences', 'resuscitation', 'recommendations', 'medication', 'allergies', 'emergencyPlan', 'alerts', 'homeAccess', 'contacts', 'socialSupport', 'approval'];

/** The full builder plan with "no known allergy" instead of penicillin. */
function withNka(body: Record<string, unknown>, source = 'none-known-by-patient'): Record<string, unknown> {
  const contained = (body.contained as Record<string, unknown>[]).filter((r) => r.resourceType !== 'AllergyIntolerance');
  const supportingInfo = (body.supportingInfo as { reference: string }[]).filter((r) => r.reference !== '#allergy-1');
  contained.push({
    resourceType: 'AllergyIntolerance',
    id: 'nka',
    extension: [{ url: EXTENSION_URLS.noKnownAllergySource, valueCode: source }],
    code: { coding: [{ system: 'http://snomed.info/sct', code: '716186003' }] },
    patient: { reference: '#patient' },
  });
  supportingInfo.push({ reference: '#nka' });
  return { ...body, contained, supportingInfo };
}

/** Allergies coded and uncoded, one with a severity but no described reaction. */
function withOddAllergies(body: Record<string, unknown>): Record<string, unknown> {
  const contained = [...(body.contained as Record<string, unknown>[])];
  contained.push(
    { resourceType: 'AllergyIntolerance', id: 'latex', code: { text: 'Latex' }, patient: { reference: '#patient' }, criticality: 'low' },
    {
      resourceType: 'AllergyIntolerance',
      id: 'plasters',
      clinicalStatus: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical', code: 'active' }] },
      code: { text: 'Sticking plasters' },
      patient: { reference: '#patient' },
      reaction: [{ manifestation: [{ extension: [{ url: 'http://hl7.org/fhir/StructureDefinition/data-absent-reason', valueCode: 'unknown' }] }], severity: 'mild' }],
    },
  );
  return { ...body, contained, supportingInfo: [...(body.supportingInfo as unknown[]), { reference: '#latex' }, { reference: '#plasters' }] };
}

const variants = (nhs: string): Record<string, Record<string, unknown>> => ({
  full: aCarePlan(nhs),
  'for-cpr': aCarePlan(nhs, { cpr: 'for-cpr' }),
  nka: withNka(aCarePlan(nhs)),
  'nka not known': withNka(aCarePlan(nhs), 'not-known'),
  'odd allergies': withOddAllergies(aCarePlan(nhs)),
  minimal: aCarePlan(nhs, { omit: ALL_SECTIONS }),
});

function outcomeOf(fn: () => unknown): OperationOutcomeError {
  try {
    fn();
  } catch (e) {
    if (e instanceof OperationOutcomeError) return e;
    throw e;
  }
  throw new Error('expected an OperationOutcomeError');
}
const issuesOf = (fn: () => unknown) => {
  const e = outcomeOf(fn);
  expect(e.status).toBe(400);
  return e.outcome.issue.map((i) => ({ code: i.code, expression: i.expression?.[0] }));
};

describe('the FHIR view of a care plan', () => {
  const nhs = randomNhsNumber();

  describe('round trip: read, store, render, read again', () => {
    it.each(Object.keys(variants(nhs)))('gives back the same content (%s)', (name) => {
      const plan = stored(parse(variants(nhs)[name]).content, 'published');
      const rendered = toCarePlan(plan);
      const again = parse(rendered).content;
      const { consent: _consent, ...clientContent } = plan.content;
      expect(again).toStrictEqual(clientContent);
      // and rendering what was read gives the same resource
      expect(toCarePlan({ meta: plan.meta, content: { ...again, consent: plan.content.consent } })).toStrictEqual(rendered);
    });

    it('reads every section of the full builder plan', () => {
      const { content, asserted } = parse(aCarePlan(nhs));
      expect(asserted).toEqual({ status: 'draft' });
      expect(Object.keys(content).sort()).toEqual([...ALL_SECTIONS, 'patient'].sort());
      expect(content.patient).toEqual({
        nhsNumber: nhs,
        name: { family: 'Smith', given: ['Margaret', 'Ann'], prefix: ['Mrs'] },
        gender: 'female',
        birthDate: '1938-04-12',
        address: { line: ['12 Acacia Avenue'], city: 'London', postalCode: 'SE1 7EH' },
        telecom: [{ system: 'phone', value: '020 7946 0000' }],
        gpPractice: { odsCode: 'Y12345', name: 'Acacia Medical Centre' },
        gp: { name: 'Dr Priya Patel', registration: 'GMC 1234567' },
      });
      expect(content.background).toEqual({
        mainDiagnosis: { system: 'http://snomed.info/sct', code: '254637007', display: 'Non-small cell lung cancer', text: 'Non-small cell lung cancer, stage IV' },
        otherDiagnoses: [{ text: 'Chronic obstructive pulmonary disease' }],
        performanceStatus: { grade: 3, date: day(-7) },
        prognosis: 'last-weeks',
        prognosisNote: 'Deteriorating over the last month',
      });
      expect(content.resuscitation?.decision).toBe('not-for-cpr');
      expect(content.resuscitation?.dnacpr?.recordedBy).toEqual({ name: 'Dr Priya Patel', position: 'General practitioner', registration: 'GMC 1234567', date: day(-7) });
      expect(content.recommendations?.ceiling).toBe('symptom-control');
      expect(content.preferences?.placeOfCare).toEqual({ first: { place: 'home' }, second: { place: 'hospice', detail: "St Christopher's Hospice" } });
      expect(content.allergies).toEqual({
        status: 'known',
        items: [{ substance: { system: 'http://snomed.info/sct', code: '764146007', display: 'Penicillin', text: 'Penicillin' }, reaction: 'Rash and facial swelling', severity: 'moderate', criticality: 'high' }],
      });
      expect(content.emergencyPlan?.problems).toHaveLength(2);
      expect(content.approval?.reviewingClinician).toEqual({ name: 'Dr Priya Patel', registration: 'GMC 1234567' });
      expect(content.approval?.reviewDate).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(content.alerts).toEqual([{ category: 'clinical-risk', text: 'Oxygen in use at home' }]);
      expect(content.contacts?.[0]?.relationship).toBe('next-of-kin');
      expect(content.homeAccess?.keySafe).toEqual({ present: true, code: '4321', location: 'Left of the front door' });
      expect(content.socialSupport).toBe('Carers twice a day; daughter visits daily');
    });

    it('for CPR: full escalation and no DNACPR questions; NKA keeps its source; a draft may hold only the patient', () => {
      const forCpr = parse(aCarePlan(nhs, { cpr: 'for-cpr' })).content;
      expect(forCpr.resuscitation?.decision).toBe('for-cpr');
      expect(forCpr.resuscitation?.dnacpr).toBeUndefined();
      expect(forCpr.recommendations?.ceiling).toBe('full-escalation');
      expect(parse(withNka(aCarePlan(nhs), 'not-known')).content.allergies).toEqual({ status: 'no-known-allergies', source: 'not-known' });
      const minimal = parse(aCarePlan(nhs, { omit: ALL_SECTIONS })).content;
      expect(Object.keys(minimal)).toEqual(['patient']);
    });

    it('renders the lifecycle as status plus the exact state, and server-owned elements from the meta', () => {
      const content = parse(aCarePlan(nhs)).content;
      const expected: Record<PlanState, string> = { draft: 'draft', 'awaiting-approval': 'draft', published: 'active', withdrawn: 'revoked', deceased: 'completed' };
      for (const state of PLAN_STATES) {
        const plan = stored(content, state);
        const cp = toCarePlan(plan);
        expect(cp.status).toBe(expected[state]);
        expect(cp.extension?.find((e) => e.url === EXTENSION_URLS.planState)?.valueCode).toBe(state);
        expect(cp.id).toBe(plan.meta.id);
        expect(cp.meta).toEqual({ versionId: '4', lastUpdated: plan.meta.lastUpdated });
        expect(cp.period?.start).toBe(plan.meta.publishedAt);
        expect(cp.period?.end).toBe(content.approval?.reviewDate);
        expect(cp.subject).toEqual({ reference: '#patient', identifier: { system: 'https://fhir.nhs.uk/Id/nhs-number', value: nhs }, display: 'Margaret Ann SMITH' });
        expect(cp.author).toEqual({ type: 'Organization', identifier: { system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: 'Y12345' } });
        expect(cp.supportingInfo?.at(-1)).toEqual({
          reference: `Consent/${plan.content.consent!.consentId}`,
          extension: [{ url: EXTENSION_URLS.consentBasis, valueCoding: { system: 'http://snomed.info/sct', code: '882921000000109' } }],
        });
        expect(cp.extension?.some((e) => e.url === EXTENSION_URLS.withdrawal)).toBe(state === 'withdrawn');
        expect(parse(cp).asserted).toEqual({ id: plan.meta.id, status: expected[state], state });
      }
    });
  });

  describe('validity under an independent FHIR R4 validator (Medplum)', () => {
    const cases = Object.keys(variants(nhs)).flatMap((v) => PLAN_STATES.map((s) => [v, s] as const));

    it.each(cases)('the CarePlan and its AllergyIntolerances are valid (%s, %s)', (variant, state) => {
      const plan = stored(parse(variants(nhs)[variant]).content, state);
      expect(validate(toCarePlan(plan))).toEqual([]);
      for (const a of allergyIntolerances(plan)) expect(validate(a)).toEqual([]);
    });

    it('the client bodies of the builder are valid FHIR too', () => {
      for (const body of Object.values(variants(nhs))) expect(validate(body)).toEqual([]);
    });

    it('rejects broken resources, so the checks above can fail', () => {
      const good = toCarePlan(stored(parse(aCarePlan(nhs)).content, 'published'));
      expect(validate(good)).toEqual([]);
      const broken = (change: (cp: Record<string, unknown>) => void) => {
        const cp = structuredClone(good) as unknown as Record<string, unknown>;
        change(cp);
        return validate(cp).map((i) => `${i.expression?.[0]}: ${i.details?.text}`);
      };
      expect(broken((cp) => (cp.colour = 'blue'))).toEqual(['CarePlan.colour: Invalid additional property "colour"']);
      expect(broken((cp) => (cp.status = 'finished'))).toEqual(['CarePlan.status: "finished" is not in http://hl7.org/fhir/ValueSet/request-status|4.0.1']);
      expect(broken((cp) => (cp.created = '2026-02-30'))).toEqual(['CarePlan.created: Invalid dateTime value']);
      const both = { url: 'https://x.example', valueString: 'a', extension: [{ url: 'b', valueString: 'c' }] };
      expect(broken((cp) => (cp.extension as unknown[]).push(both))).toEqual([expect.stringContaining('ext-1')]);
      expect(broken((cp) => (cp.title = ''))).toEqual(['Resource.title: ele-1: empty value']);
      expect(broken((cp) => delete cp.addresses)).toEqual(['contained[1]: dom-3: contained resource not referenced', 'contained[2]: dom-3: contained resource not referenced']);
      expect(broken((cp) => delete cp.intent)).toEqual(['CarePlan.intent: Missing required property']);
      expect(broken((cp) => ((cp.contained as Record<string, unknown>[])[0]!.birthDate = '1938-13-01'))).toEqual(['CarePlan.contained[0].birthDate: Invalid date format']);
      const allergy = allergyIntolerances(stored(parse(aCarePlan(nhs)).content))[0]!;
      expect(validate({ ...allergy, criticality: 'very-high' as 'high' }).map((i) => i.expression?.[0])).toEqual(['AllergyIntolerance.criticality']);
      const { clinicalStatus: _status, ...withoutStatus } = allergy;
      expect(validate(withoutStatus).map((i) => i.details?.text)).toEqual([expect.stringContaining('ait-1')]);
    });
  });

  describe('standalone AllergyIntolerances', () => {
    it('have ids stable across versions, distinct by substance, UUID-shaped, and point at their plan', () => {
      const content = parse(withOddAllergies(aCarePlan(nhs))).content;
      const plan = stored(content);
      const later = { meta: { ...plan.meta, versionId: 9 }, content: plan.content };
      const first = allergyIntolerances(plan);
      const second = allergyIntolerances(later);
      expect(first).toHaveLength(3);
      expect(second.map((a) => a.id)).toEqual(first.map((a) => a.id));
      expect(new Set(first.map((a) => a.id)).size).toBe(3);
      for (const a of first) {
        expect(a.id).toMatch(/^[A-Za-z0-9\-.]{1,64}$/);
        expect(isUuid(a.id!)).toBe(true);
        expect(a.extension).toContainEqual({ url: EXTENSION_URLS.sourceCarePlan, valueReference: { reference: `CarePlan/${plan.meta.id}` } });
        expect(a.patient).toEqual({ identifier: { system: 'https://fhir.nhs.uk/Id/nhs-number', value: nhs }, display: 'Margaret Ann SMITH' });
      }
      expect(second[0]!.meta?.versionId).toBe('9');
      expect(allergyIdOf(plan.meta.id, { substance: { text: 'LATEX ' } })).toBe(allergyIdOf(plan.meta.id, { substance: { text: 'latex' } }));
      expect(allergyIdOf(plan.meta.id, 'nka')).not.toBe(allergyIdOf(randomUUID(), 'nka'));
    });

    it('state "no known allergy" as one resource with its source', () => {
      const plan = stored(parse(withNka(aCarePlan(nhs))).content);
      const [nka, ...rest] = allergyIntolerances(plan);
      expect(rest).toEqual([]);
      expect(nka!.code?.coding?.[0]).toMatchObject({ system: 'http://snomed.info/sct', code: '716186003' });
      expect(nka!.extension).toContainEqual({ url: EXTENSION_URLS.noKnownAllergySource, valueCode: 'none-known-by-patient' });
      expect(nka!.id).toBe(allergyIdOf(plan.meta.id, 'nka'));
    });
  });

  describe('expressions of publish rules', () => {
    const cp = toCarePlan(stored(parse(aCarePlan(nhs)).content, 'published'));
    const paths = [
      'patient.address', 'patient.gpPractice', 'patient.gp', 'patient.nhsNumber', 'patient.birthDate', 'patient.name.family',
      'background.mainDiagnosis', 'background.otherDiagnoses', 'background.performanceStatus', 'background.performanceStatus.date', 'background.prognosis',
      'preferences.placeOfCare', 'preferences.placeOfDeath', 'preferences.placeOfCare.second.detail',
      'resuscitation.discussed', 'resuscitation.discussionDate', 'resuscitation.discussionSummary', 'resuscitation.decision', 'resuscitation.dnacpr',
      'resuscitation.dnacpr.recordedBy.date', 'resuscitation.dnacpr.review', 'recommendations.summary', 'recommendations.ceiling', 'recommendations.situations.0.recommendation',
      'medication.items', 'allergies', 'approval.reviewDate', 'approval.reviewingClinician', 'consent', 'emergencyPlan', 'emergencyPlan.problems.1',
      'alerts', 'alerts.0.text', 'contacts.0.name', 'homeAccess.keySafe.code', 'socialSupport', 'state', 'status',
      'background', 'resuscitation', 'medication', 'approval', 'patient',
    ];

    it.each(paths)('%s names an element present in the rendered CarePlan', (path) => {
      const expression = expressionFor(path);
      expect(expression.startsWith('CarePlan')).toBe(true);
      expect(evalFhirPath(expression, cp)).not.toHaveLength(0);
    });

    it('gives the documented forms', () => {
      expect(expressionFor('patient.address')).toBe("CarePlan.contained.where(resourceType='Patient').address");
      expect(expressionFor('resuscitation.decision')).toBe(`CarePlan.extension('${EXTENSION_URLS.resuscitation}').extension('decision')`);
      expect(expressionFor('resuscitation.dnacpr.recordedBy.name')).toBe(`CarePlan.extension('${EXTENSION_URLS.resuscitation}').extension('dnacpr').extension('recordedBy').extension('name')`);
      expect(expressionFor('contacts.2.phone')).toBe(`CarePlan.extension('${EXTENSION_URLS.contacts}').extension('contact')[2].extension('phone')`);
      expect(expressionFor('approval.reviewDate')).toBe('CarePlan.period.end');
      expect(expressionFor('resuscitation.notDiscussedReason')).toBe(`CarePlan.extension('${EXTENSION_URLS.resuscitation}').extension('notDiscussedReason')`);
      expect(expressionFor('nothing.like.this')).toBe('CarePlan');
    });
  });

  describe('bad input: one 400 naming every problem', () => {
    const body = () => aCarePlan(nhs);
    const RESUS = `CarePlan.extension('${EXTENSION_URLS.resuscitation}')`;
    const extensionOf = (b: Record<string, unknown>, url: string) => (b.extension as { url: string; extension: Record<string, unknown>[] }[]).find((e) => e.url === url)!;

    it('an unknown top-level element', () => {
      expect(issuesOf(() => parse({ ...body(), colour: 'blue' }))).toEqual([{ code: 'structure', expression: 'CarePlan.colour' }]);
    });

    it('an unknown extension url, at the top and nested', () => {
      const b = body();
      (b.extension as unknown[]).push({ url: 'https://example.org/fhir/StructureDefinition/shoe-size', valueString: '9' });
      extensionOf(b, EXTENSION_URLS.resuscitation).extension.push({ url: 'mood', valueString: 'calm' });
      expect(issuesOf(() => parse(b))).toEqual([
        { code: 'structure', expression: `${RESUS}.extension('mood')` },
        { code: 'structure', expression: "CarePlan.extension('https://example.org/fhir/StructureDefinition/shoe-size')" },
      ]);
    });

    it('a wrong value[x] type in a nested extension', () => {
      const b = body();
      const discussed = extensionOf(b, EXTENSION_URLS.resuscitation).extension.find((e) => e.url === 'discussed')!;
      delete discussed.valueBoolean;
      discussed.valueString = 'yes';
      expect(issuesOf(() => parse(b))).toEqual([{ code: 'structure', expression: `${RESUS}.extension('discussed')` }]);
    });

    it('a wrong JSON type for a value', () => {
      const b = body();
      const discussed = extensionOf(b, EXTENSION_URLS.resuscitation).extension.find((e) => e.url === 'discussed')!;
      discussed.valueBoolean = 'true';
      expect(issuesOf(() => parse(b))).toEqual([{ code: 'structure', expression: `${RESUS}.extension('discussed')` }]);
    });

    it('an invalid NHS number', () => {
      const bad = nhs.slice(0, 9) + String((Number(nhs[9]) + 1) % 10);
      expect(issuesOf(() => parse(aCarePlan(bad)))).toEqual([{ code: 'value', expression: 'CarePlan.contained[0].identifier[0].value' }]);
    });

    it('invalid codes', () => {
      const b = body();
      (b.contained as Record<string, unknown>[])[0]!.gender = 'woman';
      const prognosis = extensionOf(b, EXTENSION_URLS.prognosis).extension.find((e) => e.url === 'prognosis')!;
      prognosis.valueCoding = { system: 'https://fhir.cmc.example/CodeSystem/prognosis', code: 'soon' };
      const decision = extensionOf(b, EXTENSION_URLS.resuscitation).extension.find((e) => e.url === 'decision')!;
      decision.valueCoding = { system: 'http://snomed.info/sct', code: '123456789' };
      expect(issuesOf(() => parse(b))).toEqual([
        { code: 'code-invalid', expression: 'CarePlan.contained[0].gender' },
        { code: 'code-invalid', expression: `CarePlan.extension('${EXTENSION_URLS.prognosis}').extension('prognosis').code` },
        { code: 'code-invalid', expression: `${RESUS}.extension('decision').code` },
      ]);
    });

    it('a birth date in the future, and dates that do not exist', () => {
      const b = body();
      (b.contained as Record<string, unknown>[])[0]!.birthDate = day(3);
      b.period = { end: '2027-02-30' };
      expect(issuesOf(() => parse(b))).toEqual([
        { code: 'value', expression: 'CarePlan.contained[0].birthDate' },
        { code: 'value', expression: 'CarePlan.period.end' },
      ]);
    });

    it('three problems in one body are all reported', () => {
      const b: Record<string, unknown> = { ...body(), colour: 'blue' };
      (b.contained as Record<string, unknown>[])[0]!.birthDate = day(30);
      const ceiling = extensionOf(b, EXTENSION_URLS.recommendations).extension.find((e) => e.url === 'ceiling')!;
      ceiling.valueCoding = { system: 'https://fhir.cmc.example/CodeSystem/treatment-ceiling', code: 'everything' };
      const e = outcomeOf(() => parse(b));
      expect(e.status).toBe(400);
      expect(e.outcome.issue.map((i) => i.expression?.[0]).sort()).toEqual(
        ['CarePlan.colour', 'CarePlan.contained[0].birthDate', `CarePlan.extension('${EXTENSION_URLS.recommendations}').extension('ceiling').code`].sort(),
      );
      expect(e.outcome.issue.every((i) => i.severity === 'error' && i.diagnostics)).toBe(true);
    });

    it('unknown elements inside contained resources, too-long text, empty arrays and a missing required question', () => {
      const b = body();
      const contained = b.contained as Record<string, unknown>[];
      contained[0]!.maritalStatus = { text: 'widowed' };
      contained[1]!.onsetDateTime = '2025-01-01';
      const recs = extensionOf(b, EXTENSION_URLS.recommendations).extension;
      recs.find((e) => e.url === 'summary')!.valueString = 'x'.repeat(4001);
      const dnacpr = extensionOf(b, EXTENSION_URLS.resuscitation).extension.find((e) => e.url === 'dnacpr')! as { extension: { url: string }[] };
      dnacpr.extension = dnacpr.extension.filter((e) => e.url !== 'teamMembers');
      b.activity = [];
      expect(issuesOf(() => parse(b))).toEqual([
        { code: 'structure', expression: 'CarePlan.contained[0].maritalStatus' },
        { code: 'structure', expression: 'CarePlan.contained[1].onsetDateTime' },
        { code: 'required', expression: `${RESUS}.extension('dnacpr').extension('teamMembers')` },
        { code: 'too-long', expression: `CarePlan.extension('${EXTENSION_URLS.recommendations}').extension('summary')` },
        { code: 'structure', expression: 'CarePlan.activity' },
      ]);
    });

    it('no patient, a second main diagnosis, "no known allergy" beside an allergy, a wrong intent', () => {
      expect(issuesOf(() => parse({ ...aCarePlan(nhs, { omit: ['patient', ...ALL_SECTIONS] }) }))).toEqual([
        { code: 'required', expression: 'CarePlan.contained' },
        { code: 'required', expression: 'CarePlan.subject' },
      ]);
      const b = body();
      const contained = b.contained as Record<string, unknown>[];
      contained[2]!.extension = [{ url: EXTENSION_URLS.mainDiagnosis, valueBoolean: true }];
      contained.push({ resourceType: 'AllergyIntolerance', id: 'nka', extension: [{ url: EXTENSION_URLS.noKnownAllergySource, valueCode: 'not-known' }], code: { coding: [{ system: 'http://snomed.info/sct', code: '716186003' }] }, patient: { reference: '#patient' } });
      (b.supportingInfo as unknown[]).push({ reference: '#nka' });
      b.intent = 'order';
      expect(issuesOf(() => parse(b))).toEqual([
        { code: 'code-invalid', expression: 'CarePlan.intent' },
        { code: 'value', expression: `CarePlan.contained[2].extension('${EXTENSION_URLS.mainDiagnosis}')` },
        { code: 'value', expression: 'CarePlan.contained[5]' },
      ]);
    });

    it('references that do not match the contained resources (dom-3)', () => {
      const b = body();
      b.addresses = [{ reference: '#diagnosis-1' }, { reference: '#allergy-1' }];
      b.subject = { reference: '#someone-else' };
      expect(issuesOf(() => parse(b))).toEqual([
        { code: 'value', expression: 'CarePlan.subject.reference' },
        { code: 'value', expression: 'CarePlan.addresses[1].reference' },
        { code: 'structure', expression: 'CarePlan.contained[2]' },
      ]);
    });

    it('a body that is not an object, or not a CarePlan', () => {
      expect(issuesOf(() => parse('CarePlan'))).toEqual([{ code: 'structure', expression: 'CarePlan' }]);
      expect(issuesOf(() => parse({ ...body(), resourceType: 'Patient' }))).toEqual([{ code: 'value', expression: 'CarePlan.resourceType' }]);
    });
  });
});
