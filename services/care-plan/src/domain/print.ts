/**
 * The printable plan (issue #6): the whole plan as a PDF a person can read on paper, in the guide's order, with
 * the resuscitation decision prominent near the top. Every page carries the plan version, when it was printed,
 * "page X of Y" and who the patient is, so that a separated or stale page can be recognised.
 *
 * pdfkit's standard fonts (Helvetica) are used, so nothing is embedded; they encode text as WinAnsi, so every
 * string passes through `toWinAnsi` first (characters outside it would otherwise print as garbage). No patient
 * data goes into the PDF's Info dictionary. The output is deterministic for the same plan and print time.
 */
import PDFDocument from 'pdfkit';
import type {
  Alert,
  AllergySection,
  Ceiling,
  Concept,
  Contact,
  NkaSource,
  Place,
  PlaceChoice,
  PlacePreference,
  PlanState,
  Prognosis,
  StoredPlan,
  WhoGrade,
} from './plan';

export interface PrintedBy {
  at: Date;
  /** Who printed it (display name). */
  by: string;
  byOrganisation?: string;
}

// ---------------------------------------------------------------------------------------------- labels

const PLACE_LABELS: Record<Place, string> = {
  home: 'Home',
  'care-home': 'Care home',
  hospice: 'Hospice',
  hospital: 'Hospital',
  other: 'Other',
  'not-yet-discussed': 'Not yet discussed',
  declined: 'Declined to discuss',
  'unable-to-express': 'Unable to express a preference',
  undecided: 'Undecided',
};

const CEILING_LABELS: Record<Ceiling, { label: string; meaning: string }> = {
  'full-escalation': { label: 'Full escalation of treatment', meaning: 'every appropriate treatment, including CPR and intensive care' },
  'limited-escalation': { label: 'Limited escalation of treatment', meaning: 'active treatment short of CPR or intensive care (for example ward-based care, antibiotics)' },
  'symptom-control': { label: 'Symptom control only', meaning: 'comfort and relief of symptoms only' },
};

const PROGNOSIS_LABELS: Record<Prognosis, string> = {
  'last-days': 'Last days of life',
  'last-weeks': 'Weeks',
  months: 'Months',
  years: 'Years',
  uncertain: 'Uncertain',
};

/** WHO (ECOG) performance status grades. */
const WHO_LABELS: Record<WhoGrade, string> = {
  0: 'fully active, able to carry on all pre-disease activity without restriction',
  1: 'restricted in physically strenuous activity but walking and able to carry out light or sedentary work',
  2: 'walking and capable of all self-care but unable to carry out any work; up and about more than half of waking hours',
  3: 'capable of only limited self-care; confined to bed or chair more than half of waking hours',
  4: 'completely disabled; cannot carry out any self-care; totally confined to bed or chair',
};

const NKA_SOURCE_LABELS: Record<NkaSource, string> = {
  'not-known': "I don't know",
  'none-known-by-patient': 'No allergies known by patient',
};

const ALERT_LABELS: Record<Alert['category'], string> = {
  'clinical-risk': 'Clinical risk',
  'danger-to-staff': 'Danger to staff',
  safeguarding: 'Safeguarding',
  other: 'Other',
};

const CONTACT_LABELS: Record<Contact['relationship'], string> = {
  gp: 'GP',
  professional: 'Professional',
  family: 'Family',
  'next-of-kin': 'Next of kin',
  'lasting-power-of-attorney': 'Lasting power of attorney',
  carer: 'Carer',
  other: 'Other',
};

const STATE_LABELS: Record<PlanState, string> = {
  draft: 'Draft',
  'awaiting-approval': 'Awaiting approval',
  published: 'Published',
  withdrawn: 'Withdrawn',
  deceased: 'Patient deceased',
};

/** SNOMED CT codes of how consent was obtained (plan.ts ConsentSection). */
const CONSENT_BASIS_LABELS: Readonly<Record<string, string>> = {
  '882921000000109': 'Consent given by the patient',
  '883001000000106': 'Consent given by a lasting power of attorney for health and welfare',
  '882961000000101': 'Best interests decision (the patient lacks capacity)',
};

const GENDER_LABELS = { male: 'Male', female: 'Female', other: 'Other', unknown: 'Unknown' } as const;
const SEVERITY_LABELS = { mild: 'Mild', moderate: 'Moderate', severe: 'Severe' } as const;
const CRITICALITY_LABELS = { low: 'Low', high: 'High', 'unable-to-assess': 'Unable to assess' } as const;

// ---------------------------------------------------------------------------------------------- text

/** The code points of WinAnsiEncoding besides printable ASCII and Latin-1 (pdfkit's WIN_ANSI_MAP). */
const WIN_ANSI_EXTRA = new Set([
  0x20ac, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021, 0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x017d, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022,
  0x2013, 0x2014, 0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x017e, 0x0178,
]);

function isWinAnsi(s: string): boolean {
  for (const ch of s) {
    const cp = ch.codePointAt(0) ?? 0;
    if (!(cp === 0x0a || (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xff) || WIN_ANSI_EXTRA.has(cp))) return false;
  }
  return true;
}

/** Look-alikes for characters common in clinical text that WinAnsi lacks. */
const SUBSTITUTES: Readonly<Record<string, string>> = {
  '\u2010': '-',
  '\u2011': '-',
  '\u2012': '-',
  '\u2212': '-',
  '\u2015': '\u2014',
  '\u2032': "'",
  '\u2033': '"',
  '\u2264': '<=',
  '\u2265': '>=',
  '\u2260': '!=',
  '\u2248': '~',
  '\u2192': '->',
  '\u2190': '<-',
  '\u2191': 'up',
  '\u2193': 'down',
  '\u2713': 'yes',
  '\u2714': 'yes',
  '\u0141': 'L',
  '\u0142': 'l',
  '\u0110': 'D',
  '\u0111': 'd',
  '\u0131': 'i',
};

const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });

/**
 * Text as pdfkit's standard fonts can print it: line breaks normalised to \n, tabs to spaces, invisible control
 * and format characters dropped, other spaces to a space; anything outside WinAnsi replaced by a look-alike, by
 * its letter without accents (NFKD), or else by one '?' per character as the reader sees it (a grapheme).
 */
export function toWinAnsi(input: string): string {
  const text = input.normalize('NFC').replace(/\r\n?/g, '\n').replace(/\t/g, ' ');
  if (isWinAnsi(text)) return text;
  let out = '';
  for (const { segment } of graphemes.segment(text)) {
    if (isWinAnsi(segment)) {
      out += segment;
      continue;
    }
    const sub = SUBSTITUTES[segment];
    if (sub !== undefined) out += sub;
    else if (/^[\p{Cc}\p{Cf}]+$/u.test(segment)) continue;
    else if (/^\p{Z}+$/u.test(segment)) out += ' ';
    else {
      const folded = segment.normalize('NFKD').replace(/\p{M}/gu, '');
      out += folded !== '' && isWinAnsi(folded) ? folded : '?';
    }
  }
  return out;
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const pad = (n: number): string => String(n).padStart(2, '0');

/** "05 March 2025 14:07 (UTC)". */
export function formatDateTime(at: Date): string {
  return `${pad(at.getUTCDate())} ${MONTHS[at.getUTCMonth()] ?? ''} ${at.getUTCFullYear()} ${pad(at.getUTCHours())}:${pad(at.getUTCMinutes())} (UTC)`;
}

/** A YYYY-MM-DD date as "12 March 1941"; a date-time as formatDateTime; anything else as written. */
export function formatDate(value: string): string {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(value);
  if (d) {
    const month = MONTHS[Number(d[2]) - 1];
    return month ? `${d[3]} ${month} ${d[1]}` : value;
  }
  const ms = /^\d{4}-\d{2}-\d{2}T/.test(value) ? Date.parse(value) : NaN;
  return Number.isNaN(ms) ? value : formatDateTime(new Date(ms));
}

/** "943 476 5919" for a 10-digit NHS number; anything else as written. */
export function formatNhsNumber(nhs: string): string {
  const digits = nhs.replace(/\s/g, '');
  return /^\d{10}$/.test(digits) ? `${digits.slice(0, 3)} ${digits.slice(3, 6)} ${digits.slice(6)}` : nhs;
}

const present = (s: string | undefined): s is string => s !== undefined && s.trim() !== '';
const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');
const joined = (parts: (string | undefined)[], sep = ', '): string => parts.filter(present).join(sep);

/** A coded or free-text concept: its display (or code) and its free text when that says something else. */
function conceptText(c: Concept): string {
  const coded = c.display ?? (c.code ? `code ${c.code}` : undefined);
  if (present(coded) && present(c.text) && c.text.trim().toLowerCase() !== coded.trim().toLowerCase()) return `${c.text} (${coded})`;
  return c.text ?? coded ?? 'Not recorded';
}

function placeText(p: PlaceChoice): string {
  return present(p.detail) ? `${PLACE_LABELS[p.place]}: ${p.detail}` : PLACE_LABELS[p.place];
}

function patientName(p: StoredPlan['content']['patient']): string {
  return joined([...(p.name.prefix ?? []), ...p.name.given, p.name.family], ' ') || 'Name not recorded';
}

// ---------------------------------------------------------------------------------------------- layout

const REGULAR = 'Helvetica';
const BOLD = 'Helvetica-Bold';
const BODY_SIZE = 10;
const MARGIN = { top: 64, bottom: 76, left: 50, right: 50 };
const INDENT = 14;

/** Writes flowing text; every string goes through toWinAnsi; x and width are always explicit. */
class Writer {
  readonly left: number;
  readonly width: number;

  constructor(readonly doc: PDFKit.PDFDocument) {
    this.left = MARGIN.left;
    this.width = doc.page.width - MARGIN.left - MARGIN.right;
  }

  private get bottom(): number {
    return this.doc.page.height - MARGIN.bottom;
  }

  /** A new page unless `height` points are left on this one. */
  ensureSpace(height: number): void {
    if (this.doc.y + height > this.bottom) this.doc.addPage();
  }

  gap(lines = 0.4): void {
    this.doc.moveDown(lines);
  }

  heading(title: string): void {
    this.ensureSpace(50);
    this.gap(0.8);
    const { doc } = this;
    doc.font(BOLD).fontSize(13).fillColor('black').text(toWinAnsi(title), this.left, doc.y, { width: this.width });
    const y = doc.y + 1;
    doc.save().lineWidth(0.75).moveTo(this.left, y).lineTo(this.left + this.width, y).stroke().restore();
    doc.y = y + 4;
    doc.font(REGULAR).fontSize(BODY_SIZE);
  }

  subheading(title: string, indent = 0): void {
    this.ensureSpace(40);
    this.gap(0.3);
    this.doc.font(BOLD).fontSize(BODY_SIZE + 0.5).text(toWinAnsi(title), this.left + indent, this.doc.y, { width: this.width - indent });
    this.doc.font(REGULAR).fontSize(BODY_SIZE);
  }

  /** "Label: value" (label bold), wrapping under itself; nothing when the value is absent. */
  field(label: string, value: string | undefined, indent = 0): void {
    if (!present(value)) return;
    const { doc } = this;
    this.ensureSpace(14);
    doc.font(BOLD).fontSize(BODY_SIZE).text(`${toWinAnsi(label)}: `, this.left + indent, doc.y, { width: this.width - indent, continued: true });
    doc.font(REGULAR).text(toWinAnsi(value));
  }

  paragraph(text: string, indent = 0, font = REGULAR): void {
    if (!present(text)) return;
    this.doc.font(font).fontSize(BODY_SIZE).text(toWinAnsi(text), this.left + indent, this.doc.y, { width: this.width - indent });
    this.doc.font(REGULAR);
  }

  bullet(text: string, indent = 0): void {
    this.ensureSpace(14);
    this.paragraph(`\u2022  ${text}`, indent);
  }

  notRecorded(indent = 0): void {
    this.doc.fillColor('#444444');
    this.paragraph('Not recorded', indent);
    this.doc.fillColor('black');
  }
}

// ---------------------------------------------------------------------------------------------- sections

function titleBlock(w: Writer, plan: StoredPlan, printed: PrintedBy): void {
  const { doc } = w;
  const { meta } = plan;
  doc.font(BOLD).fontSize(20).text('Urgent care plan', w.left, MARGIN.top, { width: w.width });
  w.gap(0.2);
  w.paragraph(`Version ${meta.versionId} \u00b7 ${STATE_LABELS[meta.state]} \u00b7 last modified ${formatDate(meta.lastUpdated)} by ${joined([meta.lastUpdatedBy, meta.lastUpdatedByOrg])}`);
  w.paragraph(`Printed ${formatDateTime(printed.at)} by ${joined([printed.by, printed.byOrganisation])}`);
  if (meta.state !== 'published') {
    w.gap(0.3);
    doc.fillColor('#b00000');
    w.paragraph(`This plan is not published (status: ${STATE_LABELS[meta.state]}). Do not rely on it for care decisions.`, 0, BOLD);
    doc.fillColor('black');
  }
}

function patientSection(w: Writer, plan: StoredPlan): void {
  const p = plan.content.patient;
  w.heading('Patient details');
  w.field('Name', patientName(p));
  w.field('NHS number', formatNhsNumber(p.nhsNumber));
  w.field('Date of birth', formatDate(p.birthDate));
  w.field('Gender', GENDER_LABELS[p.gender]);
  w.field('Address', p.address ? joined([...p.address.line, p.address.city, p.address.district, p.address.postalCode]) : 'Not recorded');
  for (const t of p.telecom ?? []) w.field(t.system === 'phone' ? 'Telephone' : 'Email', t.value);
  w.field('GP practice', p.gpPractice ? joined([p.gpPractice.name, `ODS code ${p.gpPractice.odsCode}`]) : 'Not recorded');
  w.field('GP', p.gp ? joined([p.gp.name, p.gp.registration && `registration ${p.gp.registration}`]) : 'Not recorded');
}

/** The decision in a box, then the discussion and the DNACPR form's eight questions. */
function resuscitationSection(w: Writer, plan: StoredPlan): void {
  const r = plan.content.resuscitation;
  const { doc } = w;
  w.heading('Cardiopulmonary resuscitation (CPR)');
  const decision = r?.decision === 'not-for-cpr' ? 'NOT FOR CPR' : r?.decision === 'for-cpr' ? 'FOR CPR' : 'CPR decision not recorded';
  const explanation =
    r?.decision === 'not-for-cpr'
      ? 'Do not attempt cardiopulmonary resuscitation (DNACPR).'
      : r?.decision === 'for-cpr'
        ? 'For cardiopulmonary resuscitation.'
        : 'No resuscitation decision is recorded in this plan.';
  const sub = toWinAnsi(joined([explanation, r?.decisionDate && `Decision made ${formatDate(r.decisionDate)}.`], ' '));
  const inner = w.width - 24;
  doc.font(BOLD).fontSize(18);
  const h1 = doc.heightOfString(decision, { width: inner });
  doc.font(REGULAR).fontSize(BODY_SIZE);
  const h2 = doc.heightOfString(sub, { width: inner });
  const boxHeight = h1 + h2 + 24;
  w.ensureSpace(boxHeight + 10);
  const top = doc.y + 2;
  doc.save().lineWidth(r?.decision === 'not-for-cpr' ? 3 : 1.5).rect(w.left, top, w.width, boxHeight).fillAndStroke('#f0f0f0', 'black').restore();
  doc.fillColor('black').font(BOLD).fontSize(18).text(decision, w.left + 12, top + 10, { width: inner });
  doc.font(REGULAR).fontSize(BODY_SIZE).text(sub, w.left + 12, doc.y + 4, { width: inner });
  doc.y = top + boxHeight + 6;
  if (!r) return;
  if (r.discussed !== undefined) w.field('CPR discussed with the patient or those close to them', yesNo(r.discussed));
  w.field('Date of discussion', r.discussionDate && formatDate(r.discussionDate));
  w.field('What was discussed', r.discussionSummary);
  w.field('Why not discussed', r.notDiscussedReason);
  const q = r.dnacpr;
  if (!q) return;
  w.subheading('DNACPR decision (adult DNACPR form)');
  w.field('1. The patient has capacity to make and communicate decisions about CPR', yesNo(q.hasCapacity), INDENT);
  w.field('2. Main clinical problems and why CPR would be inappropriate', q.clinicalReasons, INDENT);
  w.field('3. Communication with the patient', q.communicationWithPatient, INDENT);
  w.field('4. Communication with relatives, friends or welfare attorney', q.communicationWithRelatives, INDENT);
  w.field('5. Members of the multidisciplinary team who contributed', q.teamMembers, INDENT);
  const rec = q.recordedBy;
  w.field('6. Decision recorded by', joined([rec.name, rec.position, rec.registration && `registration ${rec.registration}`, formatDate(rec.date)]), INDENT);
  const end = q.endorsedBy;
  w.field('7. Reviewed and endorsed by', end ? joined([end.name, end.position, formatDate(end.date)]) : 'Not endorsed', INDENT);
  w.field('8. Review', q.review.indefinite ? 'The decision is indefinite' : q.review.date ? `Review by ${formatDate(q.review.date)}` : 'Review date not recorded', INDENT);
}

function recommendationsSection(w: Writer, plan: StoredPlan): void {
  const r = plan.content.recommendations;
  w.heading('Ceiling of treatment and clinical recommendations');
  if (!r || (!r.ceiling && !present(r.summary) && !r.situations?.length)) return w.notRecorded();
  w.field('Ceiling of treatment', r.ceiling ? `${CEILING_LABELS[r.ceiling].label}: ${CEILING_LABELS[r.ceiling].meaning}` : 'Not recorded');
  w.field('Summary of expected treatment', r.summary);
  if (r.situations?.length) {
    w.subheading('Expected treatment in specific situations');
    for (const s of r.situations) w.field(s.situation, s.recommendation, INDENT);
  }
}

function allergiesSection(w: Writer, allergies: AllergySection | undefined): void {
  w.heading('Allergies');
  if (!allergies) return w.notRecorded();
  if (allergies.status === 'no-known-allergies') {
    w.paragraph('No known allergies', 0, BOLD);
    w.field('Source', NKA_SOURCE_LABELS[allergies.source]);
    return;
  }
  if (allergies.items.length === 0) return w.notRecorded();
  for (const a of allergies.items) {
    w.bullet(
      joined(
        [
          conceptText(a.substance),
          a.reaction && `reaction: ${a.reaction}`,
          a.severity && `severity: ${SEVERITY_LABELS[a.severity]}`,
          a.criticality && `criticality: ${CRITICALITY_LABELS[a.criticality]}`,
        ],
        '; ',
      ),
    );
  }
}

function alertsSection(w: Writer, alerts: Alert[] | undefined): void {
  w.heading('Alerts');
  if (!alerts?.length) return w.notRecorded();
  for (const a of alerts) w.field(ALERT_LABELS[a.category], a.text);
}

function homeAccessSection(w: Writer, plan: StoredPlan): void {
  const h = plan.content.homeAccess;
  w.heading('Home access');
  const ks = h?.keySafe;
  if (!h || (!ks && !present(h.keyHolders) && !present(h.livesWith) && h.livesAlone === undefined && !present(h.accessNotes))) return w.notRecorded();
  if (ks) {
    w.field('Key safe', ks.present ? 'Yes' : 'No');
    // The code opens the patient's door: a printout can be left behind, copied or lost, so it stays on the electronic record.
    w.field('Key safe code', ks.code ? 'Not printed: see the electronic record' : undefined, INDENT);
    w.field('Key safe location', ks.location, INDENT);
  }
  w.field('Key holders', h.keyHolders);
  if (h.livesAlone !== undefined) w.field('Lives alone', yesNo(h.livesAlone));
  w.field('Lives with', h.livesWith);
  w.field('Access notes', h.accessNotes);
}

function emergencyPlanSection(w: Writer, plan: StoredPlan): void {
  const problems = plan.content.emergencyPlan?.problems ?? [];
  w.heading('Emergency treatment plan');
  if (problems.length === 0) return w.notRecorded();
  problems.forEach((p, i) => {
    w.subheading(`${i + 1}. ${p.problem}`);
    w.field('Action', p.action, INDENT);
  });
}

function preferencesSection(w: Writer, plan: StoredPlan): void {
  const p = plan.content.preferences;
  w.heading('Preferences');
  const choice = (label: string, pref: PlacePreference | undefined): void => {
    if (!pref) return w.field(label, 'Not recorded');
    w.field(`${label}, first choice`, placeText(pref.first));
    if (pref.second) w.field(`${label}, second choice`, placeText(pref.second));
  };
  if (!p || (!p.placeOfCare && !p.placeOfDeath && !present(p.culturalReligiousWishes))) return w.notRecorded();
  choice('Preferred place of care', p.placeOfCare);
  choice('Preferred place of death', p.placeOfDeath);
  w.field('Cultural and religious wishes', p.culturalReligiousWishes);
}

function backgroundSection(w: Writer, plan: StoredPlan): void {
  const b = plan.content.background;
  w.heading('Significant medical background');
  if (!b || (!b.mainDiagnosis && !b.otherDiagnoses?.length && !b.performanceStatus && !b.prognosis && !present(b.prognosisNote))) return w.notRecorded();
  w.field('Main diagnosis', b.mainDiagnosis ? conceptText(b.mainDiagnosis) : 'Not recorded');
  if (b.otherDiagnoses?.length) {
    w.subheading('Other diagnoses');
    for (const d of b.otherDiagnoses) w.bullet(conceptText(d), INDENT);
  }
  const ps = b.performanceStatus;
  w.field('WHO performance status', ps ? `grade ${ps.grade} (${WHO_LABELS[ps.grade]}), assessed ${formatDate(ps.date)}` : 'Not recorded');
  w.field('Prognosis', b.prognosis ? PROGNOSIS_LABELS[b.prognosis] : present(b.prognosisNote) ? undefined : 'Not recorded');
  w.field('Prognosis notes', b.prognosisNote);
}

function medicationSection(w: Writer, plan: StoredPlan): void {
  const m = plan.content.medication;
  w.heading('Medication');
  if (!m || (!m.items?.length && !present(m.notes))) return w.notRecorded();
  for (const item of m.items ?? []) {
    w.bullet(joined([item.name, item.dose], ' \u2014 '));
    w.field('Notes', item.notes, INDENT * 1.5);
  }
  w.field('Medication notes', m.notes);
}

function contactsSection(w: Writer, contacts: Contact[] | undefined): void {
  w.heading('Contacts');
  if (!contacts?.length) return w.notRecorded();
  for (const c of contacts) {
    w.ensureSpace(40);
    w.subheading(`${c.name} \u2014 ${CONTACT_LABELS[c.relationship]}`);
    w.field('Role', c.role, INDENT);
    w.field('Organisation', c.organisation, INDENT);
    w.field('Telephone', c.phone, INDENT);
    w.field('Email', c.email, INDENT);
    w.field('Notes', c.notes, INDENT);
  }
}

function socialSupportSection(w: Writer, plan: StoredPlan): void {
  w.heading('Social support');
  if (present(plan.content.socialSupport)) w.paragraph(plan.content.socialSupport);
  else w.notRecorded();
}

function consentSection(w: Writer, plan: StoredPlan): void {
  const c = plan.content.consent;
  w.heading('Consent');
  if (!c) return w.notRecorded();
  w.field('Basis of consent', c.basisCode ? (CONSENT_BASIS_LABELS[c.basisCode] ?? `SNOMED CT ${c.basisCode}`) : 'Not recorded');
  w.field('Consent record', c.consentId);
}

function approvalSection(w: Writer, plan: StoredPlan): void {
  const a = plan.content.approval;
  w.heading('Approval');
  if (!a || (!a.reviewDate && !a.reviewingClinician)) return w.notRecorded();
  w.field('Review date', a.reviewDate ? formatDate(a.reviewDate) : 'Not recorded');
  const c = a.reviewingClinician;
  w.field('Reviewing clinician', c ? joined([c.name, c.registration && `registration ${c.registration}`]) : 'Not recorded');
}

function statusSection(w: Writer, plan: StoredPlan, printed: PrintedBy): void {
  const m = plan.meta;
  w.heading('Plan status');
  w.field('Status', STATE_LABELS[m.state]);
  w.field('Version', String(m.versionId));
  w.field('Last modified', `${formatDate(m.lastUpdated)} by ${joined([m.lastUpdatedBy, m.lastUpdatedByOrg])}`);
  if (present(m.publishedAt)) w.field('Published', joined([formatDate(m.publishedAt), m.publishedBy && `by ${m.publishedBy}`], ' '));
  w.field('Created', `${formatDate(m.createdAt)} by ${m.createdBy} (organisation ${m.organisation})`);
  if (m.withdrawal) {
    w.field('Withdrawn', `${formatDate(m.withdrawal.at)}: ${m.withdrawal.reason}${m.withdrawal.byConsentWithdrawal ? ' (consent withdrawn)' : ''}`);
  }
  w.field('Plan reference', m.id);
  w.field('Printed', `${formatDateTime(printed.at)} by ${joined([printed.by, printed.byOrganisation])}`);
}

// ---------------------------------------------------------------------------------------------- page furniture

/** Shortens `text` with an ellipsis to fit `width` in the current font. */
function fit(doc: PDFKit.PDFDocument, text: string, width: number): string {
  if (doc.widthOfString(text) <= width) return text;
  let s = text;
  while (s.length > 1 && doc.widthOfString(`${s}\u2026`) > width) s = s.slice(0, -1);
  return `${s}\u2026`;
}

/** Header (who the patient is) and footer (version, print date, page X of Y) on every buffered page. */
function pageFurniture(doc: PDFKit.PDFDocument, plan: StoredPlan, printed: PrintedBy): void {
  const p = plan.content.patient;
  const width = doc.page.width - MARGIN.left - MARGIN.right;
  const who = toWinAnsi(`NHS number ${formatNhsNumber(p.nhsNumber)} \u00b7 born ${formatDate(p.birthDate)}`);
  const name = toWinAnsi(patientName(p));
  const version = `Plan version ${plan.meta.versionId} \u00b7 printed ${formatDateTime(printed.at)}`;
  const { start, count } = doc.bufferedPageRange();
  for (let i = start; i < start + count; i++) {
    doc.switchToPage(i);
    const { height } = doc.page;
    // No automatic page breaks while writing in the margins.
    const margins = { ...doc.page.margins };
    doc.page.margins = { top: 0, bottom: 0, left: margins.left, right: margins.right };
    doc.fillColor('black').font(BOLD).fontSize(8.5);
    const right = `Urgent care plan \u00b7 ${who}`;
    doc.font(REGULAR);
    const rightWidth = doc.widthOfString(right);
    doc.font(BOLD);
    const header = fit(doc, name, width - rightWidth - 12);
    doc.text(header, MARGIN.left, 30, { lineBreak: false });
    doc.font(REGULAR).text(right, MARGIN.left + width - rightWidth, 30, { lineBreak: false });
    doc.save().lineWidth(0.5).moveTo(MARGIN.left, 44).lineTo(MARGIN.left + width, 44).stroke().restore();

    const footerTop = height - MARGIN.bottom + 22;
    doc.save().lineWidth(0.5).moveTo(MARGIN.left, footerTop - 6).lineTo(MARGIN.left + width, footerTop - 6).stroke().restore();
    doc.font(BOLD).fontSize(8.5).text(`${version} \u00b7 page ${i - start + 1} of ${count}`, MARGIN.left, footerTop, { lineBreak: false });
    doc.font(REGULAR).text(fit(doc, `${name} \u00b7 ${who}`, width), MARGIN.left, footerTop + 12, { lineBreak: false });
    doc.text('Check for a newer version before relying on a printout: plans change.', MARGIN.left, footerTop + 24, { lineBreak: false });
    doc.page.margins = margins;
  }
}

// ---------------------------------------------------------------------------------------------- entry point

/** The whole plan as an A4 PDF (see the module comment). */
export async function renderPlanPdf(plan: StoredPlan, printed: PrintedBy): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    try {
      const doc = new PDFDocument({
        size: 'A4',
        margins: MARGIN,
        bufferPages: true,
        displayTitle: true,
        lang: 'en-GB',
        // No patient data here: the Info dictionary is visible in file lists and previews.
        info: { Title: 'Urgent care plan', Creator: 'CMC platform', Producer: 'CMC platform', CreationDate: printed.at },
      });
      const chunks: Buffer[] = [];
      doc.on('data', (chunk: Buffer) => chunks.push(chunk));
      doc.on('end', () => resolve(Buffer.concat(chunks)));
      doc.on('error', reject);

      const w = new Writer(doc);
      titleBlock(w, plan, printed);
      patientSection(w, plan);
      resuscitationSection(w, plan);
      recommendationsSection(w, plan);
      allergiesSection(w, plan.content.allergies);
      alertsSection(w, plan.content.alerts);
      homeAccessSection(w, plan);
      emergencyPlanSection(w, plan);
      preferencesSection(w, plan);
      backgroundSection(w, plan);
      medicationSection(w, plan);
      contactsSection(w, plan.content.contacts);
      socialSupportSection(w, plan);
      consentSection(w, plan);
      approvalSection(w, plan);
      statusSection(w, plan, printed);
      pageFurniture(doc, plan, printed);
      doc.end();
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}
