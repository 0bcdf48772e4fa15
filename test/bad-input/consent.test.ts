/** Bad input to every write route of the consent service (see sweep.ts). */
import { consentService, type ConsentDB } from '@cmc/consent-service';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, aConsent, newTransport, randomNhsNumber, startTestService } from '@cmc/test-support';
import type { Consent } from 'fhir/r4';
import { serviceTarget, sweepSuite, type RouteSpec } from './sweep';

const issuer = new TestIssuer();
const clinician = issuer.bearer({ role: 'clinician', org: 'H81001' });
const WITHDRAWAL_REASON = 'https://fhir.cmc.example/StructureDefinition/consent-withdrawal-reason';

sweepSuite('consent', async () => {
  const transport: Transport = await newTransport('sql');
  const svc: RunningService<ConsentDB> = await startTestService(consentService, { transport, issuer });

  const specs: Record<string, RouteSpec> = {
    'POST /fhir/R4/Consent': {
      body: 'json',
      prepare: async () => ({ url: '/fhir/R4/Consent', headers: { authorization: clinician }, body: aConsent(randomNhsNumber()), expect: 201 }),
    },
    'PUT /fhir/R4/Consent/{id}': {
      body: 'json',
      prepare: async () => {
        const res = await svc.app.inject({ method: 'POST', url: '/fhir/R4/Consent', headers: { authorization: clinician, 'content-type': 'application/fhir+json' }, payload: aConsent(randomNhsNumber()) });
        if (res.statusCode !== 201) throw new Error(`recording a consent answered ${res.statusCode}: ${res.body}`);
        const stored = res.json<Consent>();
        // The withdrawal as a client sends it: the stored resource back, inactive, with the reason.
        const body = { ...stored, status: 'inactive', extension: [...(stored.extension ?? []), { url: WITHDRAWAL_REASON, valueString: 'The patient asked' }] };
        return { url: `/fhir/R4/Consent/${stored.id!}`, headers: { authorization: clinician, 'if-match': 'W/"1"' }, body, expect: 200 };
      },
    },
  };

  return serviceTarget(svc, transport, specs);
});
