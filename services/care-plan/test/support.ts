/** Shared by the care-plan tests: a service of the describe block's own, consent granted through real events. */
import { makeEvent } from '@cmc/contracts';
import { toMessage, type Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { newTransport, startTestService, waitFor, type TestIssuer, type TransportKind } from '@cmc/test-support';
import type { OperationOutcome } from 'fhir/r4';
import { randomUUID } from 'node:crypto';
import { activeConsentOf, carePlanService, type CarePlanDB } from '../src';

export interface CarePlanHarness {
  readonly svc: RunningService<CarePlanDB>;
  readonly transport: Transport;
  /** Publishes a granted consent on cmc.consent.v1 and waits until the service has it; resolves to its id. */
  grantConsent: (nhsNumber: string) => Promise<string>;
}

export function useCarePlanService(issuer: TestIssuer, opts: { transport?: TransportKind; env?: Record<string, string> } = {}): CarePlanHarness {
  const box: { svc?: RunningService<CarePlanDB>; transport?: Transport } = {};
  beforeAll(async () => {
    box.transport = await newTransport(opts.transport ?? 'sql');
    box.svc = await startTestService(carePlanService, { transport: box.transport, issuer, ...(opts.env ? { env: opts.env } : {}) });
  });
  afterAll(async () => {
    await box.svc?.close();
    await box.transport?.close();
  });
  const h: CarePlanHarness = {
    get svc() {
      if (!box.svc) throw new Error('the care-plan service has not started');
      return box.svc;
    },
    get transport() {
      if (!box.transport) throw new Error('the transport has not started');
      return box.transport;
    },
    grantConsent: async (nhsNumber) => {
      const consentId = randomUUID();
      const ev = makeEvent({
        type: 'cmc.consent.granted.v1',
        source: '/cmc/consent',
        key: nhsNumber,
        data: { consentId, versionId: '1', nhsNumber, status: 'active', dateTime: new Date(Date.now() - 60_000).toISOString(), secondaryUse: 'permit', basisCode: '882921000000109' },
      });
      await h.transport.publish([toMessage({ event_id: ev.id, topic: 'cmc.consent.v1', key: nhsNumber, type: ev.type, payload: JSON.stringify(ev) })]);
      await waitFor(async () => (await activeConsentOf(h.svc.database.db, nhsNumber))?.consent_id === consentId || undefined, 15_000, 'consent projected');
      return consentId;
    },
  };
  return h;
}

export const issuesOf = (body: string): OperationOutcome['issue'] => (JSON.parse(body) as OperationOutcome).issue;

/** The events of one type the service wrote to its outbox for a patient, oldest first. */
export async function outboxEvents(svc: RunningService<CarePlanDB>, nhsNumber: string, type: string): Promise<{ data: Record<string, unknown> }[]> {
  const rows = await svc.database.db.selectFrom('outbox').select(['payload']).where('key', '=', nhsNumber).where('type', '=', type).orderBy('id').execute();
  return rows.map((r) => JSON.parse(r.payload) as { data: Record<string, unknown> });
}
