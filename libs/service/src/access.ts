import type { Principal } from '@cmc/auth';
import { makeEvent, type AccessInteraction, type AccessRecordedData, type CloudEvent } from '@cmc/contracts';
import { publishMany, type EventsTables } from '@cmc/events';
import type { FastifyRequest } from 'fastify';
import type { Kysely, Transaction } from 'kysely';

export interface AccessedEntity {
  resourceType: string;
  id?: string;
  versionId?: string;
  nhsNumber?: string;
}

export interface AccessRecord {
  interaction: AccessInteraction;
  outcome: AccessRecordedData['outcome'];
  outcomeReason?: string;
  entities: AccessedEntity[];
  /** The search as asked, when the interaction is a search. */
  query?: string;
}

function agentOf(p: Principal | undefined): AccessRecordedData['agent'] {
  if (!p) return { kind: 'anonymous', id: 'anonymous' };
  const agent: AccessRecordedData['agent'] = {
    kind: p.kind === 'client' ? 'client' : p.role === 'patient' || p.role === 'proxy' ? 'patient' : 'user',
    id: p.subject,
  };
  if (p.role) agent.role = p.role;
  if (p.organisation) agent.organisation = p.organisation;
  return agent;
}

/** The access entry for a request, as an event checked against its contract (throws when it is not valid). */
export function accessEvent(service: string, request: FastifyRequest, record: AccessRecord): CloudEvent<'cmc.access.recorded.v1'> {
  const key = record.entities.find((e) => e.nhsNumber)?.nhsNumber || record.entities[0]?.id || String(request.id);
  const data: AccessRecordedData = {
    agent: agentOf(request.principal),
    interaction: record.interaction,
    outcome: record.outcome,
    recordedAt: new Date().toISOString(),
    entities: record.entities,
    source: {
      service,
      clientAddress: request.ip.slice(0, 100),
      ...(typeof request.headers['user-agent'] === 'string' ? { userAgent: request.headers['user-agent'].slice(0, 500) } : {}),
    },
  };
  if (record.outcomeReason) data.outcomeReason = record.outcomeReason.slice(0, 500);
  if (record.query) data.query = record.query.slice(0, 2000);
  return makeEvent({ type: 'cmc.access.recorded.v1', source: `/cmc/${service}`, key, data, requestId: String(request.id) });
}

/** Most entities one access event holds (its contract's maxItems); a larger access is split into several. */
export const MAX_ACCESS_ENTITIES = 1000;

/**
 * Writes the access entry for patient data about to be served (or refused) to the outbox, in the caller's
 * transaction: commit it before sending the data, and the audit log is sure to receive it. An access naming
 * more entities than one event holds is written as several events in the same statement (all or none).
 */
export async function recordAccess<DB extends EventsTables>(
  trx: Transaction<DB> | Kysely<DB>,
  schema: string,
  service: string,
  request: FastifyRequest,
  record: AccessRecord,
): Promise<void> {
  const parts: AccessRecord[] = [];
  for (let i = 0; i === 0 || i < record.entities.length; i += MAX_ACCESS_ENTITIES) parts.push({ ...record, entities: record.entities.slice(i, i + MAX_ACCESS_ENTITIES) });
  await publishMany(trx, schema, parts.map((part) => accessEvent(service, request, part)));
}

interface Waiting {
  event: CloudEvent<'cmc.access.recorded.v1'>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit for access entries of reads that change nothing else (flag lookups, summaries, prints): each
 * request waits until its entry is committed, but the entries of concurrent requests share one INSERT and one
 * commit. The first entry is written at once; those that arrive while a write is in flight go together in the
 * next (natural batching: no timer, so no latency is added when the service is quiet). When a write fails,
 * every request in it fails: none of them sends its data without its record.
 */
export class AccessLog<DB extends EventsTables> {
  private queue: Waiting[] = [];
  private inFlight = 0;
  /** Batches written and entries in them, since start (for the benchmarks and metrics). */
  readonly stats = { batches: 0, entries: 0 };

  constructor(
    private readonly db: Kysely<DB>,
    private readonly schema: string,
    private readonly service: string,
    private readonly opts: { maxBatch: number; concurrency: number } = { maxBatch: 500, concurrency: 2 },
  ) {}

  /** Resolves once the entry is durably committed; rejects if it could not be. */
  record(request: FastifyRequest, record: AccessRecord): Promise<void> {
    const event = accessEvent(this.service, request, record);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      this.kick();
    });
  }

  private kick(): void {
    while (this.inFlight < this.opts.concurrency && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      this.inFlight++;
      void this.write(batch).finally(() => {
        this.inFlight--;
        this.kick();
      });
    }
  }

  private async write(batch: Waiting[]): Promise<void> {
    try {
      await publishMany(this.db, this.schema, batch.map((w) => w.event));
      this.stats.batches++;
      this.stats.entries += batch.length;
      for (const w of batch) w.resolve();
    } catch (e) {
      for (const w of batch) w.reject(e);
    }
  }
}

/** What a request asked for, in access-log terms: the FHIR type and id of the route, and the interaction. */
export function describeRequest(request: FastifyRequest): { interaction: AccessInteraction; entities: AccessedEntity[] } {
  const route = request.routeOptions.url ?? '';
  const params = (request.params ?? {}) as Record<string, unknown>;
  const fhir = /^\/fhir\/R4\/([A-Za-z]+)/.exec(route);
  const id = typeof params.id === 'string' ? params.id.slice(0, 64) : undefined;
  const entity: AccessedEntity = { resourceType: (fhir?.[1] ?? 'Endpoint').slice(0, 64) };
  if (id) entity.id = id;
  const method = request.method;
  const interaction: AccessInteraction =
    method === 'POST' ? 'create' : method === 'PUT' || method === 'PATCH' ? 'update' : method === 'DELETE' ? 'delete' : id ? 'read' : 'search';
  return { interaction, entities: [entity] };
}

/** The auth plugin's onRefused: a refused attempt goes to the access log like any other access. */
export function recordRefusal<DB extends EventsTables>(db: Kysely<DB>, schema: string, service: string) {
  return async (request: FastifyRequest, refusal: Error): Promise<void> => {
    const { interaction, entities } = describeRequest(request);
    await recordAccess(db, schema, service, request, {
      interaction,
      outcome: 'refused',
      outcomeReason: refusal.message,
      entities,
      query: `${request.method} ${request.url}`,
    });
  };
}
