import { performance } from 'node:perf_hooks';
import type { PlanContent, PlanMeta, StoredPlan } from '../src/domain/plan';
import { formatNhsNumber, renderPlanPdf, toWinAnsi } from '../src/domain/print';
import { containsText, readPdf, squash } from './pdf-text';

const PRINTED = { at: new Date('2025-03-05T14:07:30Z'), by: 'Nurse Olu Adeyemi', byOrganisation: 'St Lazarus Hospice' };
const PRINTED_LINE = 'printed 05 March 2025 14:07 (UTC)';
const NHS = '9434765919';

function meta(overrides: Partial<PlanMeta> = {}): PlanMeta {
  return {
    id: '6f1d7a52-3c1e-4d7b-9c59-2f0d8f0e6a11',
    versionId: 3,
    state: 'published',
    organisation: 'Y12345',
    createdBy: 'creator-user',
    createdAt: '2025-01-10T09:00:00.000Z',
    lastUpdated: '2025-03-01T10:15:00.000Z',
    lastUpdatedBy: 'Dr Priya Raman',
    lastUpdatedByOrg: 'Acacia Medical Centre (Y12345)',
    publishedAt: '2025-03-01T10:15:00.000Z',
    publishedBy: 'Dr Priya Raman',
    ...overrides,
  };
}

function fullContent(): PlanContent {
  return {
    patient: {
      nhsNumber: NHS,
      name: { family: 'Quennell', given: ['Winifred', 'Mary'], prefix: ['Mrs'] },
      gender: 'female',
      birthDate: '1938-11-02',
      address: { line: ['14 Larkspur Gardens'], city: 'London', district: 'Lambeth', postalCode: 'SE11 4QT' },
      telecom: [{ system: 'phone', value: '020 7946 0321' }],
      gpPractice: { odsCode: 'Y12345', name: 'Acacia Medical Centre' },
      gp: { name: 'Dr Priya Raman', registration: 'GMC 7012345' },
    },
    consent: { consentId: 'c0a1b2c3-0000-4000-8000-000000000001', basisCode: '883001000000106' },
    background: {
      mainDiagnosis: { system: 'http://snomed.info/sct', code: '254637007', display: 'Non-small cell lung cancer', text: 'Metastatic NSCLC with bone deposits' },
      otherDiagnoses: [{ text: 'Type 2 diabetes mellitus, diet controlled' }, { text: 'Osteoarthritis of both knees' }],
      performanceStatus: { grade: 3, date: '2025-02-20' },
      prognosis: 'last-weeks',
      prognosisNote: 'Deteriorating week on week since January',
    },
    preferences: {
      placeOfCare: { first: { place: 'home' }, second: { place: 'hospice', detail: 'St Lazarus Hospice, Vauxhall' } },
      placeOfDeath: { first: { place: 'care-home', detail: 'Rosewood Court' }, second: { place: 'not-yet-discussed' } },
      culturalReligiousWishes: 'Would like the parish priest, Father Benedict, called for the last rites',
    },
    resuscitation: {
      discussed: true,
      discussionDate: '2025-02-18',
      discussionSummary: 'Discussed with Winifred and her son; she understands CPR would not work and does not want it',
      decision: 'not-for-cpr',
      decisionDate: '2025-02-18',
      dnacpr: {
        hasCapacity: true,
        clinicalReasons: 'Advanced metastatic lung cancer; CPR would be unsuccessful',
        communicationWithPatient: 'Patient agrees with the decision',
        communicationWithRelatives: 'Son Marcus informed by telephone',
        teamMembers: 'District nurse Hollis, palliative care CNS Okafor',
        recordedBy: { name: 'Dr Priya Raman', position: 'GP', registration: 'GMC 7012345', date: '2025-02-18' },
        endorsedBy: { name: 'Dr Alan Whitcombe', position: 'Senior partner', date: '2025-02-19' },
        review: { indefinite: true },
      },
    },
    recommendations: {
      ceiling: 'symptom-control',
      summary: 'Keep at home and comfortable; avoid admission unless symptoms cannot be controlled',
      situations: [{ situation: 'Chest infection', recommendation: 'Oral amoxicillin at home if she wishes' }],
    },
    medication: {
      items: [{ name: 'Morphine sulfate oral solution', dose: '2.5 mg as required', notes: 'For breathlessness' }],
      notes: 'Just-in-case box kept in the kitchen cupboard above the kettle',
    },
    allergies: { status: 'known', items: [{ substance: { text: 'Flucloxacillin' }, reaction: 'Urticarial rash', severity: 'moderate', criticality: 'high' }] },
    emergencyPlan: { problems: [{ problem: 'Sudden breathlessness', action: 'Sit upright, use the fan, give Oramorph 2.5 mg and call the hospice' }] },
    alerts: [{ category: 'danger-to-staff', text: 'Large dog, Bruno, must be shut in the garden before entering' }],
    homeAccess: {
      keySafe: { present: true, code: '4821', location: 'Left of the blue front door behind the drainpipe' },
      keyHolders: 'Neighbour at number 16, Mr Tobias Ferrante',
      livesAlone: false,
      livesWith: 'Husband Desmond, who is frail',
      accessNotes: 'Ground floor flat; ramp at the side entrance',
    },
    contacts: [
      { relationship: 'next-of-kin', name: 'Marcus Quennell', role: 'Son', phone: '07700 900123', email: 'marcus@example.org', notes: 'Call at any hour' },
      { relationship: 'professional', name: 'Grace Okafor', role: 'Palliative care CNS', organisation: 'St Lazarus Hospice', phone: '020 7946 0999' },
    ],
    socialSupport: 'Carers visit four times a day from Brightwell Homecare',
    approval: { reviewDate: '2025-06-01', reviewingClinician: { name: 'Dr Helena Marsh', registration: 'GMC 7098765' } },
  };
}

const fullPlan = (): StoredPlan => ({ meta: meta(), content: fullContent() });

/** Distinctive text of every section of the full plan, each as the printout must show it. */
const EXPECTED: Record<string, string[]> = {
  title: ['Urgent care plan'],
  patient: ['Mrs Winifred Mary Quennell', '943 476 5919', '02 November 1938', '14 Larkspur Gardens', 'SE11 4QT', 'Female', '020 7946 0321', 'Acacia Medical Centre', 'Y12345', 'GMC 7012345'],
  resuscitation: [
    'NOT FOR CPR',
    '18 February 2025',
    'she understands CPR would not work',
    'CPR would be unsuccessful',
    'Patient agrees with the decision',
    'Son Marcus informed by telephone',
    'palliative care CNS Okafor',
    'Dr Alan Whitcombe',
    'The decision is indefinite',
  ],
  recommendations: ['Symptom control only', 'avoid admission unless symptoms cannot be controlled', 'Chest infection', 'Oral amoxicillin at home'],
  allergies: ['Flucloxacillin', 'Urticarial rash', 'Moderate', 'criticality: High'],
  alerts: ['Danger to staff', 'Large dog, Bruno'],
  homeAccess: ['Key safe', 'Not printed: see the electronic record', 'Left of the blue front door behind the drainpipe', 'Mr Tobias Ferrante', 'Husband Desmond', 'ramp at the side entrance'],
  emergencyPlan: ['Sudden breathlessness', 'use the fan, give Oramorph 2.5 mg'],
  preferences: ['Preferred place of care, first choice: Home', 'St Lazarus Hospice, Vauxhall', 'Preferred place of death, first choice: Care home: Rosewood Court', 'Not yet discussed', 'Father Benedict'],
  background: ['Metastatic NSCLC with bone deposits (Non-small cell lung cancer)', 'Type 2 diabetes mellitus', 'Osteoarthritis of both knees', 'grade 3', '20 February 2025', 'Weeks', 'Deteriorating week on week'],
  medication: ['Morphine sulfate oral solution', '2.5 mg as required', 'For breathlessness', 'kitchen cupboard above the kettle'],
  contacts: ['Marcus Quennell', 'Next of kin', '07700 900123', 'marcus@example.org', 'Call at any hour', 'Grace Okafor', 'Palliative care CNS'],
  socialSupport: ['Brightwell Homecare'],
  consent: ['lasting power of attorney'],
  approval: ['01 June 2025', 'Dr Helena Marsh', 'GMC 7098765'],
  status: ['Published', 'Last modified: 01 March 2025 10:15 (UTC) by Dr Priya Raman, Acacia Medical Centre (Y12345)'],
};

/** Every page carries the version, the print date, "page i of n" and who the patient is. */
function expectFooters(pages: string[], version: number): void {
  pages.forEach((text, i) => {
    expect(text).toContain(`Plan version ${version}`);
    expect(text).toContain(PRINTED_LINE);
    expect(text).toContain(`page ${i + 1} of ${pages.length}`);
    expect(text).toContain('943 476 5919');
    expect(text).toContain('Check for a newer version before relying on a printout');
  });
}

function longPlan(): StoredPlan {
  const words = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`).join(' ');
  const content = fullContent();
  content.socialSupport = words('soc', 700); // ~5,600 characters, no line breaks
  content.homeAccess = { ...content.homeAccess, accessNotes: `${'x'.repeat(600)}END` }; // one word wider than the page
  content.contacts = Array.from({ length: 40 }, (_, i) => ({
    relationship: 'family' as const,
    name: `Contact Person ${i + 1}`,
    phone: `07700 9${String(i).padStart(5, '0')}`,
    notes: words(`c${i}n`, 20),
  }));
  content.recommendations = { ...content.recommendations, summary: words('rec', 500) };
  return { meta: meta({ versionId: 12 }), content };
}

describe('renderPlanPdf', () => {
  test('prints every section of a full plan, the CPR decision on page 1 and the footer on every page', async () => {
    const started = performance.now();
    const buf = await renderPlanPdf(fullPlan(), PRINTED);
    const ms = performance.now() - started;
    expect(buf.subarray(0, 5).toString('latin1')).toBe('%PDF-');

    const { pages } = await readPdf(buf);
    process.stderr.write(`[print] full plan: ${pages.length} page(s), ${buf.length} bytes, rendered in ${ms.toFixed(1)} ms\n`);
    expectFooters(pages, 3);
    expect(pages[0]).toContain('Urgent care plan');
    expect(pages[0]).toContain('NOT FOR CPR');
    expect(pages[0]).toContain('Mrs Winifred Mary Quennell');

    const all = pages.join('\n');
    const missing = Object.entries(EXPECTED).flatMap(([section, strings]) => strings.filter((s) => !containsText(all, s)).map((s) => `${section}: ${s}`));
    expect(missing).toEqual([]);
    // The key safe code opens the door: it is never on paper.
    expect(containsText(all, '4821')).toBe(false);

    // In the guide's order.
    const order = ['Patient details', 'Cardiopulmonary resuscitation', 'Ceiling of treatment', 'Allergies', 'Alerts', 'Home access', 'Emergency treatment plan', 'Preferences', 'Significant medical background', 'Medication', 'Contacts', 'Social support', 'Consent', 'Approval', 'Plan status'];
    const flat = squash(all);
    const positions = order.map((h) => flat.indexOf(`${h}`, flat.indexOf('Patient details')));
    expect(positions.every((p) => p >= 0)).toBe(true);
    expect([...positions].sort((a, b) => a - b)).toEqual(positions);
  });

  test('the PDF Info dictionary and XMP metadata hold no patient data', async () => {
    const buf = await renderPlanPdf(fullPlan(), PRINTED);
    const { info, metadata } = await readPdf(buf);
    expect(info.Title).toBe('Urgent care plan');
    expect(info.Creator).toBe('CMC platform');
    expect(info.CreationDate).toBe('D:20250305140730Z');
    const visible = JSON.stringify(info) + metadata;
    for (const s of ['Quennell', 'Winifred', NHS, '943 476 5919', '1938']) expect(visible).not.toContain(s);
    // Page content is compressed, so the uncompressed parts of the file (Info, trailer) do not show it either.
    const raw = buf.toString('latin1');
    for (const s of ['Quennell', NHS, '943 476 5919']) expect(raw).not.toContain(s);
  });

  test('is deterministic for the same plan and print time', async () => {
    const a = await renderPlanPdf(fullPlan(), PRINTED);
    const b = await renderPlanPdf(fullPlan(), PRINTED);
    expect(a.equals(b)).toBe(true);
    const later = await renderPlanPdf(fullPlan(), { ...PRINTED, at: new Date('2025-03-06T08:00:00Z') });
    expect(later.equals(a)).toBe(false);
  });

  test('a minimal plan: every empty section says "Not recorded" and the CPR decision is shown as not recorded', async () => {
    const plan: StoredPlan = {
      meta: meta({ versionId: 1, state: 'draft', lastUpdatedByOrg: undefined, publishedAt: undefined, publishedBy: undefined }),
      content: { patient: { nhsNumber: NHS, name: { family: 'Quennell', given: [] }, gender: 'unknown', birthDate: '1938-11-02' } },
    };
    const { pages } = await readPdf(await renderPlanPdf(plan, { at: PRINTED.at, by: 'Clerk' }));
    expect(pages.length).toBeLessThanOrEqual(2);
    expectFooters(pages, 1);
    expect(pages[0]).toContain('CPR decision not recorded');
    const text = squash(pages.join('\n').replace(/^.*(Urgent care plan ·|Plan version|Quennell ·|Check for a newer).*$/gm, ''));
    expect(text).toContain('CPR decision not recorded');
    expect(text).toContain('This plan is not published (status: Draft)');
    // Patient address, GP practice, GP, CPR (no details), then 11 empty sections besides resuscitation.
    expect(text.match(/Not recorded/g)?.length).toBeGreaterThanOrEqual(3 + 11);
    for (const heading of ['Allergies', 'Alerts', 'Home access', 'Contacts', 'Consent', 'Approval']) {
      expect(text).toMatch(new RegExp(`${heading} Not recorded`));
    }
  });

  test('no known allergies is printed with its source; a FOR CPR decision is printed as such', async () => {
    const plan = fullPlan();
    plan.content.allergies = { status: 'no-known-allergies', source: 'none-known-by-patient' };
    plan.content.resuscitation = { discussed: false, notDiscussedReason: 'Patient declined to discuss', decision: 'for-cpr', decisionDate: '2025-02-18' };
    const { pages } = await readPdf(await renderPlanPdf(plan, PRINTED));
    const all = squash(pages.join('\n'));
    expect(all).toContain('No known allergies Source: No allergies known by patient');
    expect(squash(pages[0]!)).toContain('FOR CPR For cardiopulmonary resuscitation');
    expect(all).not.toContain('NOT FOR CPR');
    expect(all).toContain('Patient declined to discuss');
  });

  test('long content flows onto further pages, nothing clipped, every page with its footer', async () => {
    const plan = longPlan();
    const started = performance.now();
    const buf = await renderPlanPdf(plan, PRINTED);
    const ms = performance.now() - started;
    const { pages } = await readPdf(buf);
    process.stderr.write(`[print] long plan: ${pages.length} pages, ${buf.length} bytes, rendered in ${ms.toFixed(1)} ms\n`);
    expect(pages.length).toBeGreaterThan(3);
    expectFooters(pages, 12);
    const all = pages.join('\n');
    const words = squash(all).split(' ');
    // Every word of the long texts, in order (a clipped line or a lost page would drop some).
    for (const prefix of ['soc', 'rec']) {
      const found = words.filter((w) => new RegExp(`^${prefix}\\d{4}$`).test(w));
      const n = prefix === 'soc' ? 700 : 500;
      expect(found).toEqual(Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`));
    }
    for (let i = 1; i <= 40; i++) expect(all).toContain(`Contact Person ${i} `);
    expect(squash(all).replace(/\s/g, '')).toContain(`${'x'.repeat(600)}END`);
  });

  test('characters outside WinAnsi (emoji, CJK, other scripts) never throw and print as look-alikes or "?"', async () => {
    expect(toWinAnsi('Zoë Müller – café “ok” €5')).toBe('Zoë Müller – café “ok” €5');
    expect(toWinAnsi('SpO\u2082 \u2265 92%, Łódź')).toBe('SpO2 >= 92%, Lódz');
    expect(toWinAnsi('pain 😀 👨‍👩‍👧 李小龍')).toBe('pain ? ? ???');
    expect(toWinAnsi('a\r\nb\tc\u0007d\u200be')).toBe('a\nb cde');

    const plan = fullPlan();
    plan.content.patient.name = { family: '李', given: ['小龍'] };
    plan.content.socialSupport = 'Daughter 🙂 visits daily — Παρασκευή, понедельник, 월요일, \u{1F600}\u{1F3FD}';
    plan.content.alerts = [{ category: 'other', text: 'Speaks Cantonese 粵語 only' }];
    const buf = await renderPlanPdf(plan, PRINTED);
    const { pages } = await readPdf(buf);
    const all = pages.join('\n');
    expect(all).toContain('Daughter ? visits daily');
    expect(all).toContain('Speaks Cantonese ?? only');
    expect(all).toContain('?? ?'); // the name (given, family), each character as '?'
    expect(all).not.toMatch(/[^\t\n\r\x20-\x7e\xa0-\xff\u2013\u2014\u2018\u2019\u201c\u201d\u2022\u2026\u20ac]/u);
  });

  test('formats NHS numbers 3-3-4', () => {
    expect(formatNhsNumber('9434765919')).toBe('943 476 5919');
    expect(formatNhsNumber('943 476 5919')).toBe('943 476 5919');
    expect(formatNhsNumber('12345')).toBe('12345');
  });
});
