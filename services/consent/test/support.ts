/** Shared by the consent tests: a consent service of the describe block's own, started before and stopped after. */
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { newTransport, startTestService, type TestIssuer } from '@cmc/test-support';
import { consentService, type ConsentDB } from '../src';

export interface ConsentHarness {
  readonly svc: RunningService<ConsentDB>;
  readonly transport: Transport;
}

/** Call at the top of a describe block; read `.svc` inside its tests. */
export function useConsentService(issuer: TestIssuer, env?: Record<string, string>): ConsentHarness {
  const box: { svc?: RunningService<ConsentDB>; transport?: Transport } = {};
  beforeAll(async () => {
    box.transport = await newTransport('sql');
    box.svc = await startTestService(consentService, { transport: box.transport, issuer, ...(env ? { env } : {}) });
  });
  afterAll(async () => {
    await box.svc?.close();
    await box.transport?.close();
  });
  return {
    get svc() {
      if (!box.svc) throw new Error('the consent service has not started');
      return box.svc;
    },
    get transport() {
      if (!box.transport) throw new Error('the transport has not started');
      return box.transport;
    },
  };
}
