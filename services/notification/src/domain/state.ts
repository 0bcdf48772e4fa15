import type { SecretBox } from './secrets';

/** What the service makes at start (setup) for its routes and background work. */
export interface NotificationState {
  /** Seals and opens hook secrets (NOTIFY_SECRET_KEY). */
  box: SecretBox;
}
