import { closeOnSignals } from '@cmc/http';
import { buildGateway } from './app';
import { loadGatewayConfig, rateLimitsOf, upstreamUrls } from './config';

(async () => {
  const config = loadGatewayConfig();
  const app = await buildGateway({
    upstreams: upstreamUrls(config),
    timeoutMs: config.GATEWAY_TIMEOUT_MS,
    trustProxy: config.GATEWAY_TRUST_PROXY,
    bodyLimit: config.BODY_LIMIT_BYTES,
    rateLimits: rateLimitsOf(config),
    logger: { level: config.LOG_LEVEL },
  });
  const url = await app.listen({ host: config.HOST, port: config.GATEWAY_PORT });
  app.log.info(`gateway listening at ${url}`);
  closeOnSignals(() => app.close(), app.log);
})().catch((err: unknown) => {
  process.stderr.write(`gateway failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
