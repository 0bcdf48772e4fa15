import { closeOnSignals } from '@cmc/http';
import { startPlatform } from './platform';

/** `pnpm start`: the whole platform in one process. */
(async () => {
  const say = (line: string): void => void process.stdout.write(`[cmc] ${line}\n`);
  const platform = await startPlatform({ onLog: say });
  say(`ready: one base URL for every client at ${platform.gatewayUrl} (FHIR at ${platform.gatewayUrl}/fhir/R4)`);
  closeOnSignals(() => platform.stop(), { info: say, error: (_o, msg) => say(msg) });
})().catch((err: unknown) => {
  process.stderr.write(`cmc failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
