/**
 * The platform's one OpenAPI document, merged from the services' own, and Swagger UI at the gateway's /docs:
 * the merge's rules on small documents, the merge of every committed service document, and /docs through a
 * gateway in front of a real service.
 */
import { buildGateway, mergeOpenApi, OpenApiMergeError, platformOpenApi, type MergedOpenApi, type OpenApiSource, type Upstream } from '@cmc/gateway';
import { createApp } from '@cmc/http';
import type { FastifyInstance } from 'fastify';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const info = { title: 't', version: '1' };
const servers = [{ url: 'http://gw.example' }];
const ok = { responses: { 200: { description: 'ok' } } };

describe('merging OpenAPI documents', () => {
  it('when two documents declare the same method on the same path, then the merge fails and names both (and every other collision)', () => {
    const a: OpenApiSource = { openapi: '3.1.0', paths: { '/x': { get: ok }, '/y': { post: ok } } };
    const b: OpenApiSource = { openapi: '3.1.0', paths: { '/x': { get: ok, put: ok }, '/y': { post: ok } } };
    const merge = () => mergeOpenApi([{ name: 'a', document: a }, { name: 'b', document: b }], { info, servers });
    expect(merge).toThrow(OpenApiMergeError);
    expect(merge).toThrow(/GET \/x is declared by both a and b; POST \/y is declared by both a and b/);
  });

  it('when two documents use one operationId, then the merge fails', () => {
    const a: OpenApiSource = { paths: { '/x': { get: { ...ok, operationId: 'read' } } } };
    const b: OpenApiSource = { paths: { '/y': { get: { ...ok, operationId: 'read' } } } };
    expect(() => mergeOpenApi([{ name: 'a', document: a }, { name: 'b', document: b }], { info, servers })).toThrow(/operationId read/);
  });

  it('when the documents do not overlap, then every path and method of each is there, different methods of one path together, with the given info and one server', () => {
    const a: OpenApiSource = { openapi: '3.1.0', tags: [{ name: 'A', description: 'first' }], paths: { '/x': { get: ok }, '/only-a': { get: ok } } };
    const b: OpenApiSource = { openapi: '3.1.0', tags: [{ name: 'A', description: 'second' }, { name: 'B' }], paths: { '/x': { put: ok }, '/only-b': { delete: ok } } };
    const merged = mergeOpenApi([{ name: 'a', document: a }, { name: 'b', document: b }], { info, servers });
    expect(merged).toMatchObject({ openapi: '3.1.0', info, servers });
    expect(Object.fromEntries(Object.entries(merged.paths).map(([p, item]) => [p, Object.keys(item)]))).toEqual({ '/x': ['get', 'put'], '/only-a': ['get'], '/only-b': ['delete'] });
    expect(merged.tags).toEqual([{ name: 'A', description: 'first' }, { name: 'B' }]);
  });

  it('when a part takes only some paths, then only those are merged', () => {
    const a: OpenApiSource = { paths: { '/health/live': { get: ok }, '/api/x': { get: ok } } };
    const merged = mergeOpenApi([{ name: 'a', document: a, include: (p) => p.startsWith('/api/') }], { info, servers });
    expect(Object.keys(merged.paths)).toEqual(['/api/x']);
  });

  it('when two documents define a component differently, then each is namespaced and its references follow; one defined alike is kept once', () => {
    const ref = (name: string) => ({ responses: { 200: { description: 'ok', content: { 'application/json': { schema: { $ref: `#/components/schemas/${name}` } } } } } });
    const a: OpenApiSource = { paths: { '/a': { get: ref('Thing') }, '/a2': { get: ref('Same') } }, components: { schemas: { Thing: { type: 'string' }, Same: { type: 'integer' } } } };
    const b: OpenApiSource = { paths: { '/b': { get: ref('Thing') } }, components: { schemas: { Thing: { type: 'object', properties: { inner: { $ref: '#/components/schemas/Thing/properties/x' } } }, Same: { type: 'integer' } } } };
    const merged = mergeOpenApi([{ name: 'a', document: a }, { name: 'b', document: b }], { info, servers });
    expect(Object.keys(merged.components.schemas ?? {}).sort()).toEqual(['Same', 'a.Thing', 'b.Thing']);
    expect(merged.components.schemas?.['b.Thing']).toEqual({ type: 'object', properties: { inner: { $ref: '#/components/schemas/b.Thing/properties/x' } } });
    const schemaOf = (p: string) => JSON.stringify(merged.paths[p]);
    expect(schemaOf('/a')).toContain('#/components/schemas/a.Thing');
    expect(schemaOf('/b')).toContain('#/components/schemas/b.Thing');
    expect(schemaOf('/a2')).toContain('#/components/schemas/Same"');
  });

  it('when one document is a live object (as app.swagger() gives) and another parsed JSON saying the same, with keys in another order, then their components are the same', () => {
    const live = Object.assign(Object.create(null) as object, { type: 'http', scheme: 'bearer' });
    const a: OpenApiSource = { security: [{ bearer: [] }], components: { securitySchemes: { bearer: live } }, paths: { '/a': { get: ok } } };
    const b = JSON.parse('{"security":[{"bearer":[]}],"components":{"securitySchemes":{"bearer":{"scheme":"bearer","type":"http"}}},"paths":{"/b":{"get":{}}}}') as OpenApiSource;
    const merged = mergeOpenApi([{ name: 'a', document: a }, { name: 'b', document: b }], { info, servers });
    expect(Object.keys(merged.components.securitySchemes ?? {})).toEqual(['bearer']);
    expect(merged.security).toEqual([{ bearer: [] }]);
  });

  it('when the documents\' security differs, then each one\'s is written onto its operations; security schemes that clash are namespaced in the requirements too', () => {
    const a: OpenApiSource = { security: [{ bearer: [] }], components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }, paths: { '/a': { get: ok }, '/open': { get: { ...ok, security: [] } } } };
    const b: OpenApiSource = { security: [{ bearer: [] }], components: { securitySchemes: { bearer: { type: 'apiKey', in: 'header', name: 'k' } } }, paths: { '/b': { get: ok } } };
    const merged = mergeOpenApi([{ name: 'a', document: a }, { name: 'b', document: b }], { info, servers });
    expect(merged.security).toBeUndefined();
    expect(merged.paths['/a']?.get).toMatchObject({ security: [{ 'a.bearer': [] }] });
    expect(merged.paths['/open']?.get).toMatchObject({ security: [] });
    expect(merged.paths['/b']?.get).toMatchObject({ security: [{ 'b.bearer': [] }] });
    expect(Object.keys(merged.components.securitySchemes ?? {})).toEqual(['a.bearer', 'b.bearer']);

    const same = mergeOpenApi([{ name: 'a', document: a }, { name: 'c', document: { security: [{ bearer: [] }], paths: { '/c': { get: ok } } } }], { info, servers });
    expect(same.security).toEqual([{ bearer: [] }]);
    expect(same.paths['/c']?.get).not.toHaveProperty('security');
  });
});

describe('the platform document, from every committed service document', () => {
  const root = path.resolve(__dirname, '../../..');
  const read = (name: string) => JSON.parse(readFileSync(path.join(root, 'openapi', `${name}.json`), 'utf8')) as OpenApiSource;
  const names: Upstream[] = ['identity', 'consent', 'care-plan', 'audit', 'notification'];
  const services = names.map((name) => ({ name, document: read(name) }));
  const { document, unrouted } = platformOpenApi(read('gateway'), services, { serverUrl: 'http://127.0.0.1:8080', version: '0.1.0' });

  it('when merged, then every service route is in it (health apart, the gateway\'s own), each reachable through the gateway, and it is what openapi/platform.json holds', () => {
    expect(unrouted).toEqual([]);
    const operations = (doc: OpenApiSource, keep: (p: string) => boolean) =>
      Object.entries(doc.paths ?? {}).flatMap(([p, item]) => (keep(p) ? Object.keys(item).map((m) => `${m} ${p}`) : []));
    const expected = [...operations(read('gateway'), () => true), ...services.flatMap((s) => operations(s.document, (p) => !p.startsWith('/health/')))];
    expect(operations(document, () => true).sort()).toEqual(expected.sort());
    expect(expected.length).toBeGreaterThan(70);
    expect(document.servers).toEqual([{ url: 'http://127.0.0.1:8080', description: 'The gateway' }]);
    expect(read('platform')).toEqual(document);
  });
});

describe('GET /docs at the gateway', () => {
  let upstream: FastifyInstance;
  let gateway: FastifyInstance;

  beforeAll(async () => {
    // A real service built by the same factory as ours, with a FHIR route and an /api route.
    upstream = await createApp({ service: 'care-plan', description: 'Care plans.', logger: false });
    upstream.get('/fhir/R4/Flag', { config: { public: true }, schema: { tags: ['Flag'], summary: 'Search flags' } }, () => ({}));
    upstream.get('/api/flags/:nhsNumber', { config: { public: true }, schema: { tags: ['Flag'] } }, () => ({ nhs: true }));
    const url = await upstream.listen({ host: '127.0.0.1', port: 0 });
    gateway = await buildGateway({ upstreams: { 'care-plan': url, consent: 'http://127.0.0.1:9' }, logger: false });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('when asked without a token, then Swagger UI\'s page comes back, its scripts served by the gateway itself (no CDN), under a strict CSP', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/docs' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('swagger-ui-bundle.js');
    expect(res.body).not.toMatch(/https?:\/\//);
    expect(res.headers['content-security-policy']).toMatch(/default-src 'self'.*script-src 'self'/);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    for (const asset of ['/docs/static/swagger-ui-bundle.js', '/docs/static/swagger-ui.css', '/docs/static/swagger-initializer.js']) {
      const file = await gateway.inject({ method: 'GET', url: asset });
      expect({ asset, status: file.statusCode }).toEqual({ asset, status: 200 });
    }
  });

  it('when the merged document is asked for, then it holds the running service\'s paths (not its health routes), the gateway\'s own, and the gateway as server; Swagger UI loads the same', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/docs/openapi.json', headers: { host: 'gw.example:8080' } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const doc = res.json<MergedOpenApi>();
    expect(doc).toMatchObject({ openapi: '3.1.0', info: { title: 'cmc urgent care plans' }, servers: [{ url: 'http://gw.example:8080' }] });
    expect(Object.keys(doc.paths).sort()).toEqual(['/api/flags/{nhsNumber}', '/fhir/R4/Flag', '/health/live', '/health/ready']);
    expect(doc.paths['/fhir/R4/Flag']).toMatchObject({ get: { summary: 'Search flags', tags: ['Flag'] } });
    expect(doc.security).toEqual([{ bearer: [] }]);
    expect(Object.keys(doc.components.securitySchemes ?? {})).toEqual(['bearer']);
    expect(doc.info.description).toContain('**care-plan**: Care plans.');
    expect(doc.info.description).toContain('left out: consent');

    const ui = await gateway.inject({ method: 'GET', url: '/docs/json', headers: { host: 'gw.example:8080' } });
    expect(ui.json()).toEqual(doc);
  });

  it('when /docs is served, then the other routes keep their own headers and the proxy still works', async () => {
    const proxied = await gateway.inject({ method: 'GET', url: '/api/flags/9434765919' });
    expect(proxied.statusCode).toBe(200);
    expect(proxied.json()).toEqual({ nhs: true });
    expect(proxied.headers['content-security-policy']).toBeUndefined();
    const health = await gateway.inject({ method: 'GET', url: '/health/live' });
    expect(health.headers['content-security-policy']).toBeUndefined();
  });
});
