/**
 * The configuration reference, the OpenAPI documents and the example bodies of the README's first calls are
 * generated from the code. These tests fail when
 * the committed files differ from what the code says; `pnpm docs:generate` (CMC_UPDATE_DOCS=1) writes them anew.
 */
import { configurationReference, openApiDocuments } from '@cmc/embedded';
import { aCarePlan, aConsent, testDatabaseUrl, uniqueName } from '@cmc/test-support';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const update = process.env.CMC_UPDATE_DOCS === '1';

async function expectFile(relative: string, content: string): Promise<void> {
  const file = path.join(ROOT, relative);
  if (update) {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  const committed = await readFile(file, 'utf8').catch(() => '(missing)');
  expect({ file: relative, content: committed }).toEqual({ file: relative, content });
}

describe('generated documents', () => {
  it('when the settings change, then docs/configuration.md says so', async () => {
    await expectFile('docs/configuration.md', configurationReference());
  });

  it('when a route changes, then its service\'s OpenAPI document and the merged platform.json in openapi/ say so', async () => {
    const docs = await openApiDocuments(testDatabaseUrl(), uniqueName('docs').replace(/^docs_/, ''));
    expect(Object.keys(docs).sort()).toEqual(['audit', 'care-plan', 'consent', 'gateway', 'identity', 'notification', 'platform']);
    for (const [name, doc] of Object.entries(docs)) await expectFile(`openapi/${name}.json`, `${JSON.stringify(doc, null, 2)}\n`);
  });

  it('when the builders change, then the example bodies in docs/examples/ (used by the README and the smoke test) say so', async () => {
    // Fixed dates (a week before this was written) so that the files do not change from day to day; no review
    // date, so publishing sets it to 3 months ahead and the example never goes stale. 9434765919 is a valid
    // NHS number of the test range.
    const nhs = '9434765919';
    const recent = '2026-11-24';
    const plan = aCarePlan(nhs, { overrides: { period: undefined } });
    const planText = JSON.stringify(plan, null, 2).replace(/"\d{4}-\d{2}-\d{2}"/g, (d) => (d === '"1938-04-12"' ? d : `"${recent}"`));
    await expectFile('docs/examples/consent.json', `${JSON.stringify(aConsent(nhs, { dateTime: `${recent}T10:00:00Z` }), null, 2)}\n`);
    await expectFile('docs/examples/care-plan.json', `${planText}\n`);
  });
});
