/** Every Kafka topic of the platform. Each has a dead-letter twin `<topic>.dlq`. */
export const TOPICS = {
  identity: 'cmc.identity.v1',
  consent: 'cmc.consent.v1',
  careplan: 'cmc.careplan.v1',
  access: 'cmc.access.v1',
  notification: 'cmc.notification.v1',
} as const;

export type Topic = (typeof TOPICS)[keyof typeof TOPICS];

export const dlqTopic = (topic: string): string => `${topic}.dlq`;

/** Every topic and its dead-letter topic, in the order of deploy/kafka-topics.txt. */
export const ALL_TOPICS: readonly string[] = Object.values(TOPICS).flatMap((t) => [t, dlqTopic(t)]);
