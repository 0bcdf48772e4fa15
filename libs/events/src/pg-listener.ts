import pg from 'pg';

/**
 * Holds one connection of its own (outside any pool, so it never takes a pool's place) that LISTENs on a
 * channel and calls `onNotify` for each NOTIFY. If the connection breaks (the server restarted) it
 * reconnects after a second; until then callers still poll, so a lost notification only costs latency.
 */
export class PgListener {
  private drop: (() => void) | undefined;
  private closed = false;

  constructor(
    /** Connection settings, e.g. a pool's `options`. */
    private readonly connection: pg.ClientConfig,
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
    const client = new pg.Client(this.connection);
    client.on('error', () => undefined);
    try {
      await client.connect();
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
      // A closing client may still report its socket closing; that is expected, not a crash.
      client.on('error', () => undefined);
      void client.end().catch(() => undefined);
      if (this.drop === drop) this.drop = undefined;
    };
    client.on('notification', () => this.onNotify());
    client.removeAllListeners('error');
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
