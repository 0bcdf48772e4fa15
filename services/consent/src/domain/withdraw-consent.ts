import type { Principal } from '@cmc/auth';
import type { Database } from '@cmc/db';
import { publish } from '@cmc/events';
import { OperationOutcomeError, conflict, forbidden, invalidResource, notFound, parseFhirDateTime, preconditionFailed, type IssueInput } from '@cmc/fhir';
import type { Consent, Extension } from 'fhir/r4';
import type { Transaction } from 'kysely';
import { isDeepStrictEqual } from 'node:util';
import { findConsentForUpdate, updateConsentVersion, type ConsentRow } from '../db/consent-repository';
import type { ConsentDB } from '../db/schema';
import { WITHDRAWAL_REASON_URL, mayRead, type StringExtension } from './consent';

/** A consent as a client sends it back to change it (PUT): the stored resource, with its changes. */
export interface ConsentUpdateInput {
  resourceType: 'Consent';
  id?: string;
  status: string;
  scope?: Consent['scope'];
  category?: Consent['category'];
  patient?: unknown;
  dateTime?: string;
  extension?: StringExtension[];
  provision?: unknown;
  meta?: { versionId?: string; lastUpdated?: string };
  organization?: unknown[];
}

const SUPPORTED = 'the only change supported is a withdrawal: the consent as stored, with status inactive and a withdrawal reason extension';

/** The elements a withdrawal must leave as they are. */
const KEPT = ['scope', 'category', 'patient', 'dateTime', 'provision'] as const;

function mayWithdraw(p: Principal, row: ConsentRow): boolean {
  if (p.kind !== 'user') return false;
  if (p.role === 'service-team') return true;
  return p.role === 'clinician' && mayRead(p, row);
}

export interface WithdrawConsentResult {
  resource: Consent;
}

/**
 * Withdraws an active consent: a new version with status inactive and the reason, the ConsentWithdrawn event
 * and the access entry, in one transaction. A refusal (403) is recorded too.
 */
export async function withdrawConsent(
  database: Database<ConsentDB>,
  who: Principal,
  id: string,
  expectedVersion: string,
  input: ConsentUpdateInput,
  extras: {
    requestId: string;
    recordAccess: (trx: Transaction<ConsentDB>, row: ConsentRow, outcome: 'allowed' | 'refused', reason?: string) => Promise<void>;
  },
): Promise<WithdrawConsentResult> {
  if (input.id !== undefined && input.id !== id) {
    throw new OperationOutcomeError(400, { code: 'value', diagnostics: 'the id in the body is not the id in the URL', expression: 'Consent.id' });
  }
  // The server sets meta; what comes back may be stale, but it must still be an instant (issue #10: no malformed input accepted).
  const lastUpdated = input.meta?.lastUpdated;
  if (lastUpdated !== undefined && !(/T/.test(lastUpdated) && parseFhirDateTime(lastUpdated))) {
    throw new OperationOutcomeError(400, { code: 'value', diagnostics: 'meta.lastUpdated must be an instant (a date and time with a zone)', expression: 'Consent.meta.lastUpdated' });
  }
  const outcome = await database.db.transaction().execute(async (trx): Promise<WithdrawConsentResult | Error> => {
    const row = await findConsentForUpdate(trx, id);
    if (!row) throw notFound(`Consent/${id} is not known`);
    if (!mayWithdraw(who, row)) {
      const refusal = forbidden('only clinicians of the recording organisation and the service team may withdraw a consent');
      // The refusal commits with the transaction, though the caller gets a 403.
      await extras.recordAccess(trx, row, 'refused', refusal.message);
      return refusal;
    }
    if (row.status !== 'active') throw conflict(`Consent/${id} was withdrawn and cannot be changed again`);
    if (expectedVersion !== String(row.version_id)) {
      throw preconditionFailed(`If-Match names version ${expectedVersion}; the current version is ${row.version_id}`);
    }
    const reason = checkWithdrawal(row.resource, input);
    const now = new Date();
    const versionId = row.version_id + 1;
    const kept: Extension[] = (row.resource.extension ?? []).filter((e) => e.url !== WITHDRAWAL_REASON_URL);
    const resource: Consent = {
      ...row.resource,
      meta: { versionId: String(versionId), lastUpdated: now.toISOString() },
      status: 'inactive',
      extension: [...kept, { url: WITHDRAWAL_REASON_URL, valueString: reason }],
    };
    const updated = await updateConsentVersion(trx, { id, version_id: versionId, status: 'inactive', resource, updated_at: now }, row.version_id, who.subject);
    if (!updated) throw preconditionFailed(`Consent/${id} changed meanwhile`);
    const nhsNumber = row.nhs_number.trim();
    await publish(trx, database.schema, {
      type: 'cmc.consent.withdrawn.v1',
      source: '/cmc/consent',
      subject: `Consent/${id}`,
      key: nhsNumber,
      requestId: extras.requestId,
      data: { consentId: id, versionId: String(versionId), nhsNumber, status: 'inactive', withdrawnAt: now.toISOString(), reason },
    });
    await extras.recordAccess(trx, { ...row, version_id: versionId, resource }, 'allowed');
    return { resource };
  });
  if (outcome instanceof Error) throw outcome;
  return outcome;
}

/** The reason of a withdrawal; 422 when the body asks for anything else, 400 when the reason is missing. */
function checkWithdrawal(stored: Consent, input: ConsentUpdateInput): string {
  if (input.status !== 'inactive') throw invalidResource([{ diagnostics: `${SUPPORTED}; status ${input.status} is not a withdrawal`, expression: 'Consent.status' }]);
  const changed: string[] = KEPT.filter((k) => !isDeepStrictEqual(input[k], stored[k]));
  // The organisation is the server's to set: it may be left out, or sent back as it was, never changed.
  if (input.organization !== undefined && !isDeepStrictEqual(input.organization, stored.organization)) changed.push('organization');
  const otherExtensions = (input.extension ?? []).filter((e) => e.url !== WITHDRAWAL_REASON_URL);
  const storedExtensions = (stored.extension ?? []).map((e) => ({ url: e.url, valueString: e.valueString }));
  if (!isDeepStrictEqual(otherExtensions, storedExtensions)) changed.push('extension');
  if (changed.length > 0) {
    throw invalidResource([{ diagnostics: `${SUPPORTED}; these elements differ from the stored consent: ${changed.join(', ')}`, expression: changed.map((c) => `Consent.${c}`) }]);
  }
  const reasons = (input.extension ?? []).filter((e) => e.url === WITHDRAWAL_REASON_URL);
  const issues: IssueInput[] = [];
  const path = `Consent.extension('${WITHDRAWAL_REASON_URL}')`;
  if (reasons.length !== 1 || reasons[0]!.valueString.trim() === '') issues.push({ code: 'required', diagnostics: 'a withdrawal needs exactly one reason', expression: path });
  else if (reasons[0]!.valueString.length > 1000) issues.push({ code: 'value', diagnostics: 'the withdrawal reason is longer than 1000 characters', expression: path });
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
  return reasons[0]!.valueString;
}
