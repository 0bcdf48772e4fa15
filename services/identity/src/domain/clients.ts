import { JwksKeys, type Jwk } from '@cmc/auth';
import { sql, type Kysely, type Selectable, type Transaction } from '@cmc/db';
import { publish } from '@cmc/events';
import { OperationOutcomeError, notFound, conflict, type IssueInput } from '@cmc/fhir';
import { createPublicKey, randomUUID } from 'node:crypto';
import type { ClientsTable, IdentityDB } from '../db/schema';
import { AssertionError, checkClaims, checkSignature, decodeAssertion, publicMembers, publicSigningKey, spendJti } from './assertions';
import { SERVICE_SOURCE, type IdentityContext } from './context';
import { organisationRefusal, type OrganisationRow } from './governance';
import { signAccessToken } from './tokens';

type Db = Kysely<IdentityDB> | Transaction<IdentityDB>;
type ClientRow = Selectable<ClientsTable>;

/** SMART v2 system scopes of the resources we serve, with a non-empty permission part (c, r, u, d, s in order). */
export const SYSTEM_SCOPE = /^system\/(CarePlan|Flag|AllergyIntolerance|Consent|AuditEvent|Subscription)\.(?=[cruds])c?r?u?d?s?$/;
export const CLIENT_ID = /^[A-Za-z0-9._-]{3,100}$/;
export const CLIENT_ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
/** What SMART Backend Services allows for client assertions. */
export const CLIENT_ALGORITHMS = ['RS384', 'ES384'] as const;
/** A system's access token lives at most this long, whatever people's tokens do. */
export const MAX_CLIENT_TOKEN_SECONDS = 300;

// ------------------------------------------------------------------------------------------ registration

export interface ClientInput {
  clientId?: string;
  name: string;
  organisation: string;
  jwks?: { keys: Jwk[] };
  jwksUrl?: string;
  scopes: string[];
}

export interface ClientPatch {
  name?: string;
  scopes?: string[];
  jwks?: { keys: Jwk[] };
  jwksUrl?: string;
  active?: boolean;
}

export interface ClientView {
  clientId: string;
  name: string;
  organisation: string;
  scopes: string[];
  jwks: { keys: Jwk[] } | null;
  jwksUrl: string | null;
  active: boolean;
  createdAt: string;
  updatedAt: string;
}

const clientView = (c: ClientRow, ods: string): ClientView => ({
  clientId: c.client_id,
  name: c.name,
  organisation: ods,
  scopes: c.scopes,
  jwks: c.jwks,
  jwksUrl: c.jwks_url,
  active: c.active,
  createdAt: c.created_at.toISOString(),
  updatedAt: c.updated_at.toISOString(),
});

function scopeIssues(scopes: string[]): IssueInput[] {
  return scopes.flatMap((scope, i) =>
    SYSTEM_SCOPE.test(scope)
      ? []
      : [{ code: 'value' as const, diagnostics: `scope '${scope}' is not a SMART v2 system scope of CarePlan, Flag, AllergyIntolerance, Consent, AuditEvent or Subscription (e.g. system/Flag.rs)`, expression: `scopes[${i}]` }],
  );
}

/** The keys as stored: public members only, each with its kid, for signatures (RS384 or ES384). */
function checkedJwks(jwks: { keys: Jwk[] }, issues: IssueInput[]): { keys: Jwk[] } {
  const keys: Jwk[] = [];
  const kids = new Set<string>();
  jwks.keys.forEach((jwk, i) => {
    const expression = `jwks.keys[${i}]`;
    const problem = (diagnostics: string) => issues.push({ code: 'value', diagnostics: `key ${JSON.stringify(jwk.kid ?? i)} ${diagnostics}`, expression });
    const key = publicSigningKey(jwk, ['P-384']);
    if (typeof key === 'string') return problem(key);
    if (!jwk.kid) return problem('has no kid');
    if (kids.has(jwk.kid)) return problem('has the same kid as another key');
    kids.add(jwk.kid);
    const alg = key.asymmetricKeyType === 'rsa' ? 'RS384' : 'ES384';
    if (jwk.alg !== undefined && jwk.alg !== alg) return problem(`names algorithm ${JSON.stringify(jwk.alg)}: this ${jwk.kty} key can only sign ${alg} here`);
    keys.push({ ...publicMembers(key), kid: jwk.kid, alg, use: 'sig' });
  });
  return { keys };
}

/** A key set URL: https, or plain http on this machine only (development). */
function jwksUrlIssue(value: string): IssueInput | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { code: 'value', diagnostics: 'jwksUrl is not a URL', expression: 'jwksUrl' };
  }
  const local = url.hostname === '127.0.0.1' || url.hostname === 'localhost';
  if (!(url.protocol === 'https:' || (url.protocol === 'http:' && local))) {
    return { code: 'value', diagnostics: 'jwksUrl must use https (plain http only for 127.0.0.1 or localhost)', expression: 'jwksUrl' };
  }
  if (url.username || url.password) return { code: 'value', diagnostics: 'jwksUrl must not carry credentials', expression: 'jwksUrl' };
  return undefined;
}

/** Checks what may be given on create or change; returns the key set as it is to be stored. */
function checkRegistration(input: { scopes?: string[]; jwks?: { keys: Jwk[] }; jwksUrl?: string }, creating: boolean): { jwks?: { keys: Jwk[] } } {
  const issues: IssueInput[] = input.scopes ? scopeIssues(input.scopes) : [];
  if (input.jwks && input.jwksUrl !== undefined) issues.push({ code: 'value', diagnostics: 'give the keys (jwks) or where to fetch them (jwksUrl), not both', expression: ['jwks', 'jwksUrl'] });
  if (creating && !input.jwks && input.jwksUrl === undefined) issues.push({ code: 'required', diagnostics: 'a client needs its public keys: jwks, or jwksUrl', expression: ['jwks', 'jwksUrl'] });
  const jwks = input.jwks ? checkedJwks(input.jwks, issues) : undefined;
  if (input.jwksUrl !== undefined) {
    const issue = jwksUrlIssue(input.jwksUrl);
    if (issue) issues.push(issue);
  }
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
  return jwks ? { jwks } : {};
}

const json = <T>(value: T) => sql<T>`${JSON.stringify(value)}::jsonb`;

async function announce(trx: Transaction<IdentityDB>, ctx: IdentityContext, view: ClientView, requestId: string): Promise<void> {
  await publish(trx, ctx.database.schema, {
    type: 'cmc.identity.client-registered.v1',
    source: SERVICE_SOURCE,
    key: view.clientId,
    requestId,
    data: { clientId: view.clientId, organisation: view.organisation, scopes: view.scopes },
  });
}

/** Registers a system client (a GP system, a dispatch system) of an organisation, with its public keys and scopes. */
export async function createClient(ctx: IdentityContext, input: ClientInput, requestId: string): Promise<ClientView> {
  const { jwks } = checkRegistration(input, true);
  return ctx.database.db.transaction().execute(async (trx) => {
    const org = await trx.selectFrom('organisations').select(['id', 'ods_code']).where('ods_code', '=', input.organisation).executeTakeFirst();
    if (!org) throw new OperationOutcomeError(422, { code: 'not-found', diagnostics: `organisation ${input.organisation} is not registered`, expression: 'organisation' });
    const clientId = input.clientId ?? randomUUID();
    const now = new Date();
    const row = await trx
      .insertInto('clients')
      .values({
        id: randomUUID(),
        client_id: clientId,
        name: input.name,
        organisation_id: org.id,
        jwks: jwks ? json(jwks) : null,
        jwks_url: input.jwksUrl ?? null,
        scopes: json(input.scopes),
        active: true,
        updated_at: now,
      })
      .onConflict((oc) => oc.column('client_id').doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw conflict(`client ${clientId} is already registered`);
    const view = clientView(row, org.ods_code);
    await announce(trx, ctx, view, requestId);
    return view;
  });
}

function clientsWithOrganisation(db: Db) {
  return db.selectFrom('clients').innerJoin('organisations', 'organisations.id', 'clients.organisation_id').selectAll('clients').select('organisations.ods_code as org_ods');
}

export async function listClients(ctx: IdentityContext): Promise<ClientView[]> {
  const rows = await clientsWithOrganisation(ctx.database.db).orderBy('clients.client_id').limit(1000).execute();
  return rows.map((r) => clientView(r, r.org_ods));
}

export async function findClient(ctx: IdentityContext, clientId: string): Promise<ClientView> {
  const row = await clientsWithOrganisation(ctx.database.db).where('clients.client_id', '=', clientId).executeTakeFirst();
  if (!row) throw notFound(`client ${clientId} is not registered`);
  return clientView(row, row.org_ods);
}

/** Changes a client: its name, scopes, keys (inline or by URL, replacing the other) or whether it is active. */
export async function updateClient(ctx: IdentityContext, clientId: string, patch: ClientPatch, requestId: string): Promise<ClientView> {
  const { jwks } = checkRegistration(patch, false);
  return ctx.database.db.transaction().execute(async (trx) => {
    const set: Record<string, unknown> = { updated_at: new Date() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.scopes !== undefined) set.scopes = json(patch.scopes);
    if (patch.active !== undefined) set.active = patch.active;
    if (jwks) Object.assign(set, { jwks: json(jwks), jwks_url: null });
    if (patch.jwksUrl !== undefined) Object.assign(set, { jwks: null, jwks_url: patch.jwksUrl });
    const updated = await trx.updateTable('clients').set(set).where('client_id', '=', clientId).returning('id').executeTakeFirst();
    if (!updated) throw notFound(`client ${clientId} is not registered`);
    const row = await clientsWithOrganisation(trx).where('clients.id', '=', updated.id).executeTakeFirstOrThrow();
    const view = clientView(row, row.org_ods);
    await announce(trx, ctx, view, requestId);
    return view;
  });
}

// ---------------------------------------------------------------------------------------------- the token

export type OAuthErrorCode = 'invalid_request' | 'invalid_client' | 'invalid_grant' | 'unsupported_grant_type' | 'invalid_scope' | 'server_error';

/**
 * An error of the token endpoint, answered as OAuth 2.0 says (RFC 6749 §5.2: `{error, error_description}`),
 * not as an OperationOutcome: the callers are OAuth clients.
 */
export class OAuthError extends Error {
  constructor(
    readonly status: number,
    readonly error: OAuthErrorCode,
    description: string,
  ) {
    super(description);
    this.name = 'OAuthError';
  }
}

const invalidClient = (description: string) => new OAuthError(401, 'invalid_client', description);

export interface TokenRequest {
  grant_type?: string;
  client_assertion_type?: string;
  client_assertion?: string;
  scope?: string;
  client_id?: string;
}

export interface ClientToken {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  scope: string;
}

/**
 * The verifiers of clients' keys, one per client, kept while the client's registration is unchanged: an
 * inline key set is parsed once, and a key set URL is fetched again only for an unknown kid (with a cooldown).
 */
export class ClientKeyCache {
  private readonly byClient = new Map<string, { version: string; keys: JwksKeys }>();

  constructor(private readonly maxClients = 1000) {}

  keysOf(client: ClientRow): JwksKeys {
    const version = `${client.updated_at.getTime()}|${client.jwks_url ?? ''}`;
    const cached = this.byClient.get(client.client_id);
    if (cached?.version === version) return cached.keys;
    const keys = client.jwks_url ? new JwksKeys({ url: client.jwks_url }) : new JwksKeys({ keys: client.jwks?.keys ?? [] });
    this.byClient.delete(client.client_id);
    if (this.byClient.size >= this.maxClients) {
      const oldest = this.byClient.keys().next().value;
      if (oldest !== undefined) this.byClient.delete(oldest);
    }
    this.byClient.set(client.client_id, { version, keys });
    return keys;
  }
}

/** The scopes to grant: those asked for, each registered; none asked for means all registered ones. */
function grantedScopes(requested: string | undefined, registered: string[]): string[] {
  if (requested === undefined) return registered;
  const asked = requested.split(' ');
  if (asked.some((s) => s.length === 0)) throw new OAuthError(400, 'invalid_scope', 'scope must be scope names separated by single spaces');
  const refused = asked.filter((s) => !registered.includes(s));
  if (refused.length > 0) throw new OAuthError(400, 'invalid_scope', `scope not registered for this client: ${refused.join(' ')}`);
  return [...new Set(asked)];
}

/**
 * SMART Backend Services' token request (client_credentials with a private_key_jwt assertion): the assertion
 * must be signed by a key registered for an active client, for our token endpoint, short-lived and never seen
 * before; the client's organisation must pass the same organisation gates as people's logins. The token says
 * `cmc_kind: client` and carries the organisation and the granted scopes, never a role or a patient.
 */
export async function issueClientToken(ctx: IdentityContext, keyCache: ClientKeyCache, request: TokenRequest): Promise<ClientToken> {
  if (request.grant_type === undefined) throw new OAuthError(400, 'invalid_request', 'grant_type is required');
  if (request.grant_type !== 'client_credentials') throw new OAuthError(400, 'unsupported_grant_type', `grant_type ${request.grant_type} is not supported: use client_credentials`);
  if (request.client_assertion_type === undefined || request.client_assertion === undefined) {
    throw new OAuthError(400, 'invalid_request', `client_assertion_type (${CLIENT_ASSERTION_TYPE}) and client_assertion (a signed JWT) are required`);
  }
  if (request.client_assertion_type !== CLIENT_ASSERTION_TYPE) throw invalidClient(`client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`);

  const audience = `${ctx.config.IDENTITY_PUBLIC_URL}/auth/token`;
  const { db } = ctx.database;
  try {
    const assertion = decodeAssertion(request.client_assertion, CLIENT_ALGORITHMS);
    const clientId = assertion.payload.iss;
    if (typeof clientId !== 'string' || !CLIENT_ID.test(clientId) || assertion.payload.sub !== clientId) throw invalidClient('the assertion\'s iss and sub must both be your client_id');
    if (request.client_id !== undefined && request.client_id !== clientId) throw invalidClient('client_id does not match the assertion\'s iss');
    const client = await db.selectFrom('clients').selectAll().where('client_id', '=', clientId).executeTakeFirst();
    if (!client) throw invalidClient(`client ${clientId} is not registered`);
    if (!client.active) throw invalidClient(`client ${clientId} is not active`);
    const key = await keyCache.keysOf(client).get(assertion.header.kid);
    if (!key) throw invalidClient(`client ${clientId} has no registered key with kid ${assertion.header.kid}`);
    if (key.alg && key.alg !== assertion.header.alg) throw invalidClient(`key ${assertion.header.kid} is registered for ${key.alg}, not ${assertion.header.alg}`);
    checkSignature(assertion, createPublicKey(key.pem));
    const { jti, rememberUntil } = checkClaims(assertion.payload, { sender: clientId, audience, senderName: 'client_id' });
    // The scope is checked before the jti is spent: a request refused for its scope leaves nothing behind (issue #10).
    const scopes = grantedScopes(request.scope, client.scopes);
    if (!(await spendJti(db, `client:${clientId}`, jti, rememberUntil))) throw invalidClient('this assertion was used before: sign a new one, with a new jti, for every token request');

    const org = await db.selectFrom('organisations').selectAll().where('id', '=', client.organisation_id).executeTakeFirstOrThrow();
    const refused = organisationRefusal(org, new Date());
    if (refused) throw new OAuthError(400, 'invalid_grant', refused.message);
    return await clientToken(ctx, client, org, scopes);
  } catch (e) {
    if (e instanceof AssertionError) throw invalidClient(e.message);
    throw e;
  }
}

async function clientToken(ctx: IdentityContext, client: ClientRow, org: OrganisationRow, scopes: string[]): Promise<ClientToken> {
  const seconds = Math.min(ctx.tokens.accessTokenSeconds, MAX_CLIENT_TOKEN_SECONDS);
  const scope = scopes.join(' ');
  const accessToken = await signAccessToken(ctx.keys, { ...ctx.tokens, accessTokenSeconds: seconds }, { sub: client.client_id, cmc_kind: 'client', cmc_org: org.ods_code, scope });
  return { access_token: accessToken, token_type: 'bearer', expires_in: seconds, scope };
}
