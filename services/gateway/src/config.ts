import { int, loadConfig, oneOf, optionalUrl, port, str, type ConfigOf } from '@cmc/config';
import { DEFAULT_RATE_LIMITS, type RateLimits } from './rate-limit';
import type { Upstream } from './routing';

export const gatewayConfigSpec = {
  HOST: str({ doc: 'Address the HTTP servers listen on.', default: '127.0.0.1' }),
  GATEWAY_PORT: port({ doc: 'Port of the gateway: the one base URL clients use.', default: 8080 }),
  GATEWAY_TRUST_PROXY: str({ doc: 'Proxies in front of the gateway (load balancer) whose X-Forwarded-For is believed: addresses or CIDRs, comma-separated. Empty: none.', default: '' }),
  GATEWAY_TIMEOUT_MS: int({ doc: 'How long the gateway waits for a service before answering 504.', default: 30_000, min: 100, max: 300_000 }),
  GATEWAY_RATE_LIMIT_PER_CLIENT: int({ doc: 'Requests a minute each client (token subject; address without a token) may make through one gateway instance; 0 for no limit.', default: DEFAULT_RATE_LIMITS.perClientPerMinute, min: 0, max: 1_000_000 }),
  GATEWAY_RATE_LIMIT_AUTH: int({ doc: 'Requests a minute to /auth/ (login, tokens, password resets) per address, per gateway instance.', default: DEFAULT_RATE_LIMITS.authPerAddressPerMinute, min: 1, max: 1_000_000 }),
  BODY_LIMIT_BYTES: int({ doc: 'Largest request body accepted, in bytes.', default: 1024 * 1024, min: 1024, max: 50 * 1024 * 1024 }),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, { doc: 'pino log level.', default: 'info' }),
  IDENTITY_URL: optionalUrl({ doc: 'Base URL of the identity service (unset: its paths answer 503).', protocols: ['http', 'https'] }),
  CONSENT_URL: optionalUrl({ doc: 'Base URL of the consent service.', protocols: ['http', 'https'] }),
  CAREPLAN_URL: optionalUrl({ doc: 'Base URL of the care-plan service.', protocols: ['http', 'https'] }),
  AUDIT_URL: optionalUrl({ doc: 'Base URL of the audit service.', protocols: ['http', 'https'] }),
  NOTIFICATION_URL: optionalUrl({ doc: 'Base URL of the notification service.', protocols: ['http', 'https'] }),
} as const;

export type GatewayConfig = ConfigOf<typeof gatewayConfigSpec>;

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env): GatewayConfig {
  return loadConfig(gatewayConfigSpec, env);
}

/** The rate limits the configuration asks for; false when GATEWAY_RATE_LIMIT_PER_CLIENT is 0. */
export function rateLimitsOf(c: Pick<GatewayConfig, 'GATEWAY_RATE_LIMIT_PER_CLIENT' | 'GATEWAY_RATE_LIMIT_AUTH'>): RateLimits | false {
  return c.GATEWAY_RATE_LIMIT_PER_CLIENT === 0 ? false : { perClientPerMinute: c.GATEWAY_RATE_LIMIT_PER_CLIENT, authPerAddressPerMinute: c.GATEWAY_RATE_LIMIT_AUTH };
}

export function upstreamUrls(c: GatewayConfig): Partial<Record<Upstream, string>> {
  const out: Partial<Record<Upstream, string>> = {};
  if (c.IDENTITY_URL) out.identity = c.IDENTITY_URL;
  if (c.CONSENT_URL) out.consent = c.CONSENT_URL;
  if (c.CAREPLAN_URL) out['care-plan'] = c.CAREPLAN_URL;
  if (c.AUDIT_URL) out.audit = c.AUDIT_URL;
  if (c.NOTIFICATION_URL) out.notification = c.NOTIFICATION_URL;
  return out;
}
