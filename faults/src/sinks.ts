/**
 * What the outside world would see of the notification service: an SMTP server that counts emails by their
 * Message-ID (the service gives each delivery one, the same on every attempt), and a GP system's rest-hook
 * endpoint that counts notifications by subscription and event number. A second receipt of either is a
 * notification that went out twice. Also the JWKS the services check tokens against (TestIssuer's key).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface Receipts {
  /** Message-ID -> times received. */
  emails: Map<string, number>;
  /** `<subscription id>#<event number>` -> times received. */
  hooks: Map<string, number>;
}

function listen(server: Server | SMTPServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = (server as Server).address?.() ?? (server as unknown as { server: Server }).server.address();
      resolve((addr as AddressInfo).port);
    });
  });
}

/** An SMTP server on 127.0.0.1 that takes every email (no auth, no TLS) and counts it by Message-ID. */
export async function startSmtpSink(receipts: Receipts): Promise<{ port: number; close: () => Promise<void> }> {
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        const header = text.split(/\r?\n\r?\n/)[0] ?? '';
        const id = /^message-id:\s*(\S+)/im.exec(header)?.[1] ?? '(no message-id)';
        receipts.emails.set(id, (receipts.emails.get(id) ?? 0) + 1);
        callback();
      });
    },
  });
  const port = await listen(server);
  return { port, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

interface HookBundle {
  entry?: { resource?: { parameter?: { name?: string; valueReference?: { reference?: string }; valueString?: string; part?: { name?: string; valueString?: string }[] }[] } }[];
}

/** A GP system's endpoint: answers 200 to every notification and counts it by subscription and event number. */
export async function startHookReceiver(receipts: Receipts): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let key = '(unreadable)';
      try {
        const bundle = JSON.parse(Buffer.concat(chunks).toString('utf8')) as HookBundle;
        const params = bundle.entry?.[0]?.resource?.parameter ?? [];
        const subscription = params.find((p) => p.name === 'subscription')?.valueReference?.reference ?? '?';
        const event = params.find((p) => p.name === 'notification-event')?.part?.find((p) => p.name === 'event-number')?.valueString ?? '?';
        key = `${subscription.replace(/^Subscription\//, '')}#${event}`;
      } catch {
        // counted under (unreadable)
      }
      receipts.hooks.set(key, (receipts.hooks.get(key) ?? 0) + 1);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}/hook`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** Serves a JWKS at /jwks.json (the services' AUTH_JWKS_URL). */
export async function startJwksServer(jwks: unknown): Promise<{ url: string; close: () => Promise<void> }> {
  const body = JSON.stringify(jwks);
  const server = createServer((req, res) => {
    if (req.url === '/jwks.json') res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    else res.writeHead(404).end();
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}/jwks.json`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
