/**
 * The configuration reference and the OpenAPI documents are generated from the code. These tests fail when
 * the committed files differ from what the code says; `pnpm docs:generate` (CMC_UPDATE_DOCS=1) writes them anew.
 */
import { configurationReference, openApiDocuments } from '@cmc/embedded';
import { testDatabaseUrl, uniqueName } from '@cmc/test-support';
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

  it('when a route changes, then its service\'s OpenAPI document in openapi/ says so', async () => {
    const docs = await openApiDocuments(testDatabaseUrl(), uniqueName('docs').replace(/^docs_/, ''));
    expect(Object.keys(docs).sort()).toEqual(['care-plan', 'consent', 'gateway', 'identity']);
    for (const [name, doc] of Object.entries(docs)) await expectFile(`openapi/${name}.json`, `${JSON.stringify(doc, null, 2)}\n`);
  });
});
