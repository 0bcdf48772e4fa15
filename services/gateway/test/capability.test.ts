/**
 * GET /fhir/R4/metadata: one CapabilityStatement for the platform, built from the services' own route
 * documents. Checked against the committed documents of every service (generated from their routes) and
 * through a running gateway in front of a running service; each statement passes an independent FHIR
 * validator.
 */
import { capabilityStatementOf, type OpenApiDocument } from '@cmc/fhir';
import { buildGateway } from '@cmc/gateway';
import { createApp } from '@cmc/http';
import type { CapabilityStatement, CapabilityStatementRestResource } from 'fhir/r4';
import type { FastifyInstance } from 'fastify';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { validate } from '../../care-plan/test/fhir-validator';

const root = path.resolve(__dirname, '../../..');
// Each service's own document (platform.json is their merge, checked below to give the same statement).
const committed: OpenApiDocument[] = readdirSync(path.join(root, 'openapi'))
  .filter((f) => f.endsWith('.json') && f !== 'platform.json')
  .map((f) => JSON.parse(readFileSync(path.join(root, 'openapi', f), 'utf8')) as OpenApiDocument);

const resourceOf = (cs: CapabilityStatement, type: string): CapabilityStatementRestResource | undefined => cs.rest?.[0]?.resource?.find((r) => r.type === type);
const interactions = (r: CapabilityStatementRestResource | undefined) => (r?.interaction ?? []).map((i) => i.code);
const searchParams = (r: CapabilityStatementRestResource | undefined) => Object.fromEntries((r?.searchParam ?? []).map((p) => [p.name, p.type]));

describe('the CapabilityStatement, from the services\' route documents', () => {
  const smart = { token_endpoint: 'https://cmc.example/auth/token', scopes_supported: ['system/CarePlan.rs'] };
  const cs = capabilityStatementOf(committed, { baseUrl: 'https://cmc.example/fhir/R4', date: '2026-12-02T10:00:00Z', software: { name: 'cmc', version: '0.1.0' }, smart });

  it('when built from every service\'s document, then it is a valid R4 CapabilityStatement', () => {
    expect(validate(cs)).toEqual([]);
    expect(cs).toMatchObject({ kind: 'instance', fhirVersion: '4.0.1', format: ['application/fhir+json'], implementation: { url: 'https://cmc.example/fhir/R4' } });
  });

  it('when a service serves read, vread, update, history, create and search of a type, then exactly those are listed, with its search parameters and types', () => {
    const carePlan = resourceOf(cs, 'CarePlan');
    expect(interactions(carePlan)).toEqual(['read', 'vread', 'update', 'history-instance', 'create', 'search-type']);
    expect(carePlan).toMatchObject({ versioning: 'versioned', readHistory: true, updateCreate: false });
    expect(searchParams(carePlan)).toEqual({ _lastUpdated: 'date', date: 'date', patient: 'reference', status: 'token' });
    expect(carePlan?.searchParam?.find((p) => p.name === 'patient')?.documentation).toBe('Supported with the modifier :identifier');
    expect((carePlan?.operation ?? []).map((o) => o.name)).toEqual(['publish', 'submit', 'summary', 'withdraw']);
    expect(interactions(resourceOf(cs, 'Consent'))).toEqual(['read', 'vread', 'update', 'history-instance', 'create', 'search-type']);
    expect(interactions(resourceOf(cs, 'Flag'))).toEqual(['read', 'search-type']);
    expect(resourceOf(cs, 'Flag')).toMatchObject({ versioning: 'no-version', readHistory: false });
    expect(interactions(resourceOf(cs, 'AuditEvent'))).toEqual(['read', 'search-type']);
    expect(searchParams(resourceOf(cs, 'AuditEvent'))).toMatchObject({ patient: 'reference', agent: 'reference', date: 'date', outcome: 'token' });
    expect(Object.keys(searchParams(resourceOf(cs, 'AuditEvent')))).not.toContain('_count');
  });

  it('when identity\'s SMART configuration is given, then the security section names SMART on FHIR and its token endpoint; without it, neither', () => {
    expect(cs.rest?.[0]?.security).toMatchObject({
      service: [{ coding: [{ code: 'SMART-on-FHIR' }] }],
      extension: [{ url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris', extension: [{ url: 'token', valueUri: smart.token_endpoint }] }],
    });
    const bare = capabilityStatementOf(committed, { baseUrl: 'x', date: '2026-12-02', software: { name: 'cmc', version: '0' } });
    expect(bare.rest?.[0]?.security?.service).toBeUndefined();
  });

  it('when built from the merged platform document instead, then it is the same statement', () => {
    const platform = JSON.parse(readFileSync(path.join(root, 'openapi', 'platform.json'), 'utf8')) as OpenApiDocument;
    expect(capabilityStatementOf([platform], { baseUrl: 'https://cmc.example/fhir/R4', date: '2026-12-02T10:00:00Z', software: { name: 'cmc', version: '0.1.0' }, smart })).toEqual(cs);
  });

  it('when no document has FHIR routes, then the statement lists no resources', () => {
    const none = capabilityStatementOf([{ paths: { '/api/flags/{nhsNumber}': { get: {} } } }], { baseUrl: 'x', date: '2026-12-02', software: { name: 'cmc', version: '0' } });
    expect(none.rest?.[0]?.resource).toEqual([]);
  });
});

describe('GET /fhir/R4/metadata through the gateway', () => {
  let upstream: FastifyInstance;
  let gateway: FastifyInstance;

  beforeAll(async () => {
    // A real service built by the same factory as ours, serving one FHIR search and read, and SMART's configuration.
    upstream = await createApp({ service: 'care-plan', logger: false });
    upstream.get('/fhir/R4/Flag', { config: { public: true }, schema: { querystring: { type: 'object', properties: { 'patient:identifier': { type: 'string' }, status: { type: 'string' } } } } }, () => ({}));
    upstream.get('/fhir/R4/Flag/:id', { config: { public: true } }, () => ({}));
    upstream.get('/.well-known/smart-configuration', { config: { public: true } }, () => ({ token_endpoint: 'http://gw.example/auth/token' }));
    const url = await upstream.listen({ host: '127.0.0.1', port: 0 });
    gateway = await buildGateway({ upstreams: { 'care-plan': url, identity: url }, logger: false });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('when asked without a token, then the running services\' FHIR routes come back as a valid CapabilityStatement, and stay listed while a service restarts', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/fhir/R4/metadata' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    const cs = res.json<CapabilityStatement>();
    expect(validate(cs)).toEqual([]);
    expect(cs.rest?.[0]?.resource?.map((r) => r.type)).toEqual(['Flag']);
    expect(interactions(resourceOf(cs, 'Flag'))).toEqual(['read', 'search-type']);
    expect(cs.rest?.[0]?.security?.extension?.[0]?.extension?.[0]?.valueUri).toBe('http://gw.example/auth/token');

    await upstream.close();
    const again = await gateway.inject({ method: 'GET', url: '/fhir/R4/metadata' });
    expect(again.json<CapabilityStatement>().rest?.[0]?.resource?.map((r) => r.type)).toEqual(['Flag']);
  });
});
