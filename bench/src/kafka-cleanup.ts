import { ALL_TOPICS } from '@cmc/contracts';
import { Kafka, logLevel } from 'kafkajs';

/**
 * Deletes a run's consumer groups and its topics (every topic under `topicPrefix`), so that the broker does not
 * fill up with benchmark runs. Best effort: a failure is written to stderr, not thrown.
 */
export async function deleteRunTopics(brokers: string, run: string, topicPrefix: string, groups: string[]): Promise<void> {
  const kafka = new Kafka({ brokers: brokers.split(','), clientId: `bench-cleanup-${run}`, logLevel: logLevel.NOTHING }).admin();
  try {
    await kafka.connect();
    await kafka.deleteGroups(groups).catch(() => undefined);
    await kafka.deleteTopics({ topics: ALL_TOPICS.map((t) => topicPrefix + t), timeout: 10_000 });
  } catch (e) {
    process.stderr.write(`could not delete the run's Kafka topics (${topicPrefix}*): ${e instanceof Error ? e.message : String(e)}\n`);
  } finally {
    await kafka.disconnect();
  }
}
