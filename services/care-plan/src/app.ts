import type { ServiceDefinition } from '@cmc/service';
import { migrations } from './db/migrations';
import type { CarePlanDB } from './db/schema';
import { consentConsumer } from './events/consent-consumer';

/** The care-plan service. For now it keeps the consent projection; plans come with issue #5. */
export const carePlanService: ServiceDefinition<CarePlanDB> = {
  name: 'care-plan',
  envPrefix: 'CAREPLAN',
  defaultPort: 3003,
  defaultSchema: 'careplan',
  description: 'Urgent care plans: FHIR CarePlan, AllergyIntolerance and Flag.',
  migrations,
  consumers: [consentConsumer],
};
