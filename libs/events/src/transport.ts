/** A message as it goes out: value is the CloudEvent's JSON. */
export interface OutgoingMessage {
  topic: string;
  key: string;
  value: string;
  headers: Record<string, string>;
}

/** A message as a consumer receives it. `topic` is the logical topic name (without any prefix). */
export interface IncomingMessage {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  value: string;
  headers: Record<string, string>;
}

/**
 * The transport refused a message for what it is (too large, malformed), not for the state of the broker:
 * sending it again will fail again.
 */
export class PermanentPublishError extends Error {
  constructor(message: string, override readonly cause?: unknown) {
    super(message);
    this.name = 'PermanentPublishError';
  }
}

export interface Subscription {
  stop: () => Promise<void>;
}

export interface SubscribeOptions {
  groupId: string;
  topics: readonly string[];
  /**
   * Called once per message, in order per partition. Resolving commits the message; throwing leaves it to
   * be delivered again (after a pause).
   */
  onMessage: (msg: IncomingMessage) => Promise<void>;
  /**
   * When given, called instead of `onMessage` with several messages at once (at most `maxBatch`), in order
   * per partition; all of one call come from one partition (one topic, on the SQL transport). Resolving
   * commits them all; throwing commits none of them and leaves them to be delivered again (after a pause),
   * as a throwing `onMessage` does.
   */
  onBatch?: (msgs: IncomingMessage[]) => Promise<void>;
  /** Most messages per `onBatch` call (default 500). */
  maxBatch?: number;
}

/** Default of `SubscribeOptions.maxBatch`. */
export const DEFAULT_MAX_BATCH = 500;

/**
 * How events travel: Kafka in the distributed setup, PostgreSQL tables in the embedded one. Both deliver
 * at least once and keep order per key.
 */
export interface Transport {
  readonly kind: 'kafka' | 'sql';
  start: () => Promise<void>;
  /** Sends messages, in order; resolves once they are durable. */
  publish: (messages: OutgoingMessage[]) => Promise<void>;
  subscribe: (opts: SubscribeOptions) => Promise<Subscription>;
  /** Creates the topics if missing (Kafka); a no-op where topics need no creation. */
  ensureTopics: (topics: readonly string[]) => Promise<void>;
  isReady: () => Promise<boolean>;
  close: () => Promise<void>;
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/** Exponential backoff with full jitter: a random wait up to base * 2^(attempt-1), capped. */
export function backoffMs(attempt: number, baseMs: number, capMs: number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}
