/**
 * The sweep's files each check their own service's write routes against its OpenAPI document. This one checks
 * that no service is left out: every service of the platform (and the gateway) whose document, built from the
 * code, has a write route has a bad-input file here.
 */
import { openApiDocuments } from '@cmc/embedded';
import { testDatabaseUrl, uniqueName } from '@cmc/test-support';
import { writeRoutesOfDocument, type OpenApi } from './sweep';

/** The services swept, each by the file of its name in this folder. */
const SWEPT = ['care-plan', 'consent', 'identity', 'notification'];

describe('the bad-input sweep covers the platform', () => {
  it('when a service of the platform has a write route, then a bad-input file sweeps that service, and the merged document has no write route of its own', async () => {
    const docs = (await openApiDocuments(testDatabaseUrl(), uniqueName('badinput').replace(/^badinput_/, ''))) as Record<string, OpenApi>;
    const { platform, ...services } = docs;
    const withWrites = Object.entries(services).filter(([, doc]) => writeRoutesOfDocument(doc).length > 0).map(([name]) => name).sort();
    expect(withWrites).toEqual(SWEPT);
    const servicesRoutes = new Set(Object.values(services).flatMap((doc) => writeRoutesOfDocument(doc)));
    expect(writeRoutesOfDocument(platform!).filter((r) => !servicesRoutes.has(r))).toEqual([]);
  }, 60_000);
});
