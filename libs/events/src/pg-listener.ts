import type pg from 'pg';

/**
 * Holds one pooled connection that LISTENs on a channel and calls `onNotify` for each NOTIFY. If the
 * connection breaks (the server restarted) it reconnects after a second; until then callers still poll, so
 * a lost notification only costs latency. The connection is destroyed on close rather than returned to the
 * pool, so no other user of the pool inherits the LISTEN.
 */
export class PgListener {
  private drop: (() => void) | undefined;
  private closed = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly channel: string,
    private readonly onNotify: () => void,
  ) {}

  start(): void {
    void this.connect();
  }

  private retry(): void {
    if (!this.closed) setTimeout(() => void this.connect(), 1000).unref();
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch {
      this.retry();
      return;
    }
    let dropped = false;
    const drop = (): void => {
      if (dropped) return;
      dropped = true;
      client.removeAllListeners('notification');
      client.removeAllListeners('error');
      // A destroyed client may still report its socket closing; that is expected, not a crash.
      client.on('error', () => undefined);
      client.release(true);
      if (this.drop === drop) this.drop = undefined;
    };
    client.on('notification', () => this.onNotify());
    client.on('error', () => {
      drop();
      this.retry();
    });
    try {
      await client.query(`listen ${this.channel}`);
    } catch {
      drop();
      this.retry();
      return;
    }
    if (this.closed) drop();
    else this.drop = drop;
  }

  close(): void {
    this.closed = true;
    this.drop?.();
  }
}
