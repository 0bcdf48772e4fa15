export { buildGateway, type GatewayOptions } from './app';
export { ownerOf, FHIR_OWNERS, API_OWNERS, UPSTREAMS, type Upstream } from './routing';
export { loadGatewayConfig, upstreamUrls, gatewayConfigSpec } from './config';
