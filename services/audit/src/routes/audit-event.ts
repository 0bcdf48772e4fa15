import { FHIR_JSON, NHS_NUMBER_SYSTEM, encodeCursor, idSchema, isUuid, notFound, searchsetBundle } from '@cmc/fhir';
import { errorResponses, fhirResource } from '@cmc/http';
import { recordAccess, type AccessedEntity, type ServiceContext } from '@cmc/service';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditEvent } from 'fhir/r4';
import { findEntryByEventId, searchEntries } from '../db/audit-event-queries';
import type { AuditDB } from '../db/schema';
import { DOMAIN_RESOURCES, SELF_ACTED_EVENTS, toAuditEvent } from '../domain/audit-event';
import { MAX_AUDIT_PAGE, DEFAULT_AUDIT_PAGE, parseAuditEventSearch } from '../domain/search-audit-events';

type Query = Record<string, string | string[] | undefined>;

/** An access names at most this many entities (the contract's limit). */
const MAX_RECORDED_ENTITIES = 1000;

const repeatable = (description: string) => ({ anyOf: [{ type: 'string' }, { type: 'array', maxItems: 10, items: { type: 'string' } }], description }) as const;

const searchQuerystring = {
  type: 'object',
  properties: {
    patient: repeatable(`NHS number of a patient the entry is about: bare or ${NHS_NUMBER_SYSTEM}|<NHS number>; commas for any of several`),
    agent: repeatable('The user or system client who acted (their id; system|id also accepted)'),
    entity: repeatable('A resource the entry is about: <type>/<id> or <type>/<id>/_history/<version>'),
    date: repeatable('FHIR date search on AuditEvent.recorded: eq, ge, gt, le, lt'),
    action: repeatable('C, R, U, D or E'),
    outcome: repeatable('0 (success), 4 (refused), 8 (failed), 12'),
    type: repeatable('Token: e.g. rest, or http://dicom.nema.org/resources/ontology/DCM|110110'),
    subtype: repeatable('Token: e.g. read, search-type, or an event type such as cmc.careplan.published.v1'),
    _count: { type: 'string', description: `Page size, default ${DEFAULT_AUDIT_PAGE}, at most ${MAX_AUDIT_PAGE}` },
    _cursor: { type: 'string', description: 'Opaque: from the next link' },
  },
} as const;

const SERVICE_TEAM = { roles: ['service-team'] } as const;

/**
 * FHIR AuditEvent: read and search the audit log, for the service team only. Every call that is answered is an
 * access of its own, recorded before the answer, naming the patients of what it served.
 */
export async function auditEventRoutes(app: FastifyInstance, ctx: ServiceContext<AuditDB>): Promise<void> {
  const { database } = ctx;
  const base = (request: FastifyRequest): string => `${request.protocol}://${request.host}/fhir/R4`;
  const keys = { resources: DOMAIN_RESOURCES, selfActed: SELF_ACTED_EVENTS };

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/AuditEvent/:id',
    {
      config: { allow: SERVICE_TEAM },
      schema: {
        tags: ['AuditEvent'],
        summary: 'Read an entry of the audit log as an AuditEvent (IHE BALP)',
        description: 'The id is the event id of the entry. Reading the log is itself an audited access, recorded before the answer.',
        params: { type: 'object', required: ['id'], properties: { id: idSchema } },
        response: { 200: fhirResource('AuditEvent', 'The entry'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const row = isUuid(id) ? await findEntryByEventId(database.db, id) : undefined;
      const entities: AccessedEntity[] = row && row.nhs_numbers.length > 0 ? row.nhs_numbers.map((nhsNumber) => ({ resourceType: 'AuditEvent', id, nhsNumber })) : [{ resourceType: 'AuditEvent', id }];
      // Recorded found or not: looking for an entry of the log is itself worth knowing about.
      await recordAccess(database.db, database.schema, 'audit', request, { interaction: 'read', outcome: 'allowed', entities });
      if (!row) throw notFound(`AuditEvent/${id} is not known`);
      return reply.type(`${FHIR_JSON}; charset=utf-8`).send(toAuditEvent(row));
    },
  );

  app.get<{ Querystring: Query }>(
    '/fhir/R4/AuditEvent',
    {
      config: { allow: SERVICE_TEAM },
      schema: {
        tags: ['AuditEvent'],
        summary: 'Search the audit log: who accessed which patient, when, how, with what outcome; newest first',
        description:
          'A searchset Bundle of AuditEvents (IHE BALP), paged by the next link. The search is itself an audited access, recorded before the answer, naming every patient of the entries served (a page ends early rather than name more than 1000).',
        querystring: searchQuerystring,
        response: { 200: fhirResource('Bundle', 'A searchset Bundle'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const search = parseAuditEventSearch(request.query);
      const asked = search.patients.flat();
      const found = await searchEntries(database.db, { ...search, limit: search.limit + 1 }, keys);
      // Every patient served is named in the access; a page stops before it would name more than the contract allows.
      const patients = new Set(asked);
      const page: typeof found = [];
      for (const row of found.slice(0, search.limit)) {
        const more = row.nhs_numbers.filter((n) => !patients.has(n));
        if (page.length > 0 && patients.size + more.length > MAX_RECORDED_ENTITIES) break;
        more.forEach((n) => patients.add(n));
        page.push(row);
      }
      const entities: AccessedEntity[] = patients.size > 0 ? [...patients].map((nhsNumber) => ({ resourceType: 'AuditEvent', nhsNumber })) : [{ resourceType: 'AuditEvent' }];
      await recordAccess(database.db, database.schema, 'audit', request, { interaction: 'search', outcome: 'allowed', query: request.url, entities });
      const last = page[page.length - 1];
      const bundle = searchsetBundle<AuditEvent>({
        selfUrl: `${request.protocol}://${request.host}${request.url}`,
        baseUrl: base(request),
        resources: page.map(toAuditEvent),
        ...(found.length > page.length && last ? { nextCursor: encodeCursor({ s: last.seq }) } : {}),
        ...(typeof request.query._cursor === 'string' ? { cursor: request.query._cursor } : {}),
      });
      return reply.type(`${FHIR_JSON}; charset=utf-8`).send(bundle);
    },
  );
}
