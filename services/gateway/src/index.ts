export { buildGateway, GATEWAY_VERSION, type GatewayOptions } from './app';
export { mergeOpenApi, platformOpenApi, OpenApiMergeError, type MergedOpenApi, type OpenApiPart, type OpenApiSource } from './openapi';
export { ownerOf, FHIR_OWNERS, API_OWNERS, UPSTREAMS, type Upstream } from './routing';
export { loadGatewayConfig, rateLimitsOf, upstreamUrls, gatewayConfigSpec } from './config';
export { clientKey, DEFAULT_RATE_LIMITS, type RateLimits } from './rate-limit';
