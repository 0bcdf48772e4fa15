import type { ServiceDefinition } from '@cmc/service';
import { migrations } from './db/migrations';
import type { CarePlanDB } from './db/schema';
import { consentConsumer } from './events/consent-consumer';
import { carePlanRoutes } from './routes/care-plans';
import { flagRoutes } from './routes/flags';
import { urgentCareRoutes } from './routes/urgent-care';

/** The care-plan service: plans, their versions and lifecycle, FHIR CarePlan and AllergyIntolerance; keeps a projection of consent. */
export const carePlanService: ServiceDefinition<CarePlanDB> = {
  name: 'care-plan',
  envPrefix: 'CAREPLAN',
  defaultPort: 3003,
  defaultSchema: 'careplan',
  description: 'Urgent care plans: FHIR CarePlan, AllergyIntolerance and Flag.',
  migrations,
  consumers: (schema) => [consentConsumer(schema)],
  routes: async (app, ctx) => {
    await carePlanRoutes(app, ctx);
    await flagRoutes(app, ctx);
    await urgentCareRoutes(app, ctx);
  },
};
