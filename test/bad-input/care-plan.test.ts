/**
 * Bad input to every write route of the care-plan service (see sweep.ts). Consent reaches the service as the
 * consent service's event over the SQL transport; each route gets a plan of its own in the state it needs.
 */
import { makeEvent } from '@cmc/contracts';
import { toMessage, type Transport } from '@cmc/events';
import { activeConsentOf, carePlanService, type CarePlanDB } from '@cmc/care-plan-service';
import type { RunningService } from '@cmc/service';
import { TestIssuer, aCarePlan, newTransport, randomNhsNumber, startTestService, waitFor } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';
import { serviceTarget, sweepSuite, type Prepared, type RouteSpec } from './sweep';

const issuer = new TestIssuer();
const ORG = 'H81001';
const clinician = issuer.bearer({ role: 'clinician', org: ORG });
const urgentCare = issuer.bearer({ role: 'urgent-care', org: 'RRU' });
const fhir = { 'content-type': 'application/fhir+json' };

sweepSuite('care-plan', async () => {
  const transport: Transport = await newTransport('sql');
  const svc: RunningService<CarePlanDB> = await startTestService(carePlanService, { transport, issuer });

  const grantConsent = async (nhs: string) => {
    const ev = makeEvent({
      type: 'cmc.consent.granted.v1',
      source: '/cmc/consent',
      key: nhs,
      data: { consentId: randomUUID(), versionId: '1', nhsNumber: nhs, status: 'active', dateTime: new Date(Date.now() - 60_000).toISOString(), secondaryUse: 'permit', basisCode: '882921000000109' },
    });
    await transport.publish([toMessage({ event_id: ev.id, topic: 'cmc.consent.v1', key: nhs, type: ev.type, payload: JSON.stringify(ev) })]);
    await waitFor(() => activeConsentOf(svc.database.db, nhs), 15_000, 'consent projected');
  };
  const call = async (method: 'POST' | 'PUT', url: string, headers: Record<string, string>, body?: unknown) => {
    const res = await svc.app.inject({ method, url, headers: { ...headers, ...(body === undefined ? {} : fhir) }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
    if (res.statusCode >= 300) throw new Error(`${method} ${url} answered ${res.statusCode}: ${res.body}`);
    return res.json<{ id: string; meta: { versionId: string } }>();
  };
  /** A patient with consent and a plan: a draft, or published (version 2). */
  const aPlan = async (state: 'consent-only' | 'draft' | 'published') => {
    const nhs = randomNhsNumber();
    await grantConsent(nhs);
    if (state === 'consent-only') return { nhs, id: '' };
    const { id } = await call('POST', '/fhir/R4/CarePlan', { authorization: clinician }, aCarePlan(nhs));
    if (state === 'published') await call('POST', `/fhir/R4/CarePlan/${id}/$publish`, { authorization: clinician, 'if-match': 'W/"1"' });
    return { nhs, id };
  };
  const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);

  const specs: Record<string, RouteSpec> = {
    'POST /fhir/R4/CarePlan': {
      body: 'json',
      prepare: async (): Promise<Prepared> => {
        const { nhs } = await aPlan('consent-only');
        return { url: '/fhir/R4/CarePlan', headers: { authorization: clinician }, body: aCarePlan(nhs), expect: 201 };
      },
    },
    'PUT /fhir/R4/CarePlan/{id}': {
      body: 'json',
      prepare: async () => {
        const { nhs, id } = await aPlan('draft');
        return { url: `/fhir/R4/CarePlan/${id}`, headers: { authorization: clinician, 'if-match': 'W/"1"' }, body: { ...aCarePlan(nhs), id }, expect: 200 };
      },
    },
    'POST /fhir/R4/CarePlan/{id}/$submit': {
      body: 'none',
      prepare: async () => {
        const { id } = await aPlan('draft');
        return { url: `/fhir/R4/CarePlan/${id}/$submit`, headers: { authorization: clinician, 'if-match': 'W/"1"' }, expect: 200 };
      },
    },
    'POST /fhir/R4/CarePlan/{id}/$publish': {
      body: 'none',
      prepare: async () => {
        const { id } = await aPlan('draft');
        return { url: `/fhir/R4/CarePlan/${id}/$publish`, headers: { authorization: clinician, 'if-match': 'W/"1"' }, expect: 200 };
      },
    },
    'POST /fhir/R4/CarePlan/{id}/$withdraw': {
      body: 'json',
      prepare: async () => {
        const { id } = await aPlan('published');
        return {
          url: `/fhir/R4/CarePlan/${id}/$withdraw`,
          headers: { authorization: clinician, 'if-match': 'W/"2"' },
          body: { resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'The patient asked for it to be withdrawn' }] },
          expect: 200,
        };
      },
    },
    'POST /api/flags/$lookup': {
      body: 'json',
      prepare: async () => {
        const { nhs } = await aPlan('published');
        return { url: '/api/flags/$lookup', headers: { authorization: urgentCare }, body: { nhsNumbers: [nhs, randomNhsNumber()] }, expect: 200 };
      },
    },
    'POST /api/care-plans/{id}/notes': {
      body: 'json',
      prepare: async () => {
        const { id } = await aPlan('published');
        return { url: `/api/care-plans/${id}/notes`, headers: { authorization: urgentCare }, body: { text: '111 referred to 24h nursing', admission: false }, expect: 201 };
      },
    },
    'POST /api/care-plans/{id}/death': {
      body: 'json',
      prepare: async () => {
        const { id } = await aPlan('published');
        return { url: `/api/care-plans/${id}/death`, headers: { authorization: clinician, 'if-match': 'W/"2"' }, body: { date: yesterday, place: 'hospice', placeDetail: "St Christopher's Hospice" }, expect: 200 };
      },
    },
    'POST /api/care-plans/{id}/change-requests': {
      body: 'json',
      prepare: async () => {
        const { nhs, id } = await aPlan('published');
        return { url: `/api/care-plans/${id}/change-requests`, headers: { authorization: issuer.bearer({ role: 'patient', patient: nhs }) }, body: { text: 'Please add my son as a contact' }, expect: 201 };
      },
    },
  };

  return serviceTarget(svc, transport, specs);
});
