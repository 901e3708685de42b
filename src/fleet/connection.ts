/**
 * NATS connection options for a fleet config (gateway) or command-line flags (CLI). The gateway
 * connects in the background and keeps retrying for ever, so an unreachable server never delays
 * start or enforcement; the CLI fails fast with a message that names the servers.
 */
import { readFileSync } from 'node:fs';
import {
  connect,
  credsAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
} from '@nats-io/transport-node';
import { CelgateError } from '../errors.js';
import type { FleetConfig } from './config.js';

export type NatsAuth = Pick<
  FleetConfig,
  'servers' | 'token' | 'user' | 'password' | 'creds' | 'tls'
>;

export function connectionOptions(c: NatsAuth, name: string): ConnectionOptions {
  const o: ConnectionOptions = { servers: c.servers, name };
  if (c.token !== null) o.token = c.token;
  if (c.user !== null && c.password !== null) {
    o.user = c.user;
    o.pass = c.password;
  }
  if (c.creds !== null) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(c.creds);
    } catch (err) {
      throw new CelgateError(
        'E_CONFIG',
        `fleet.creds: cannot read ${c.creds}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    o.authenticator = credsAuthenticator(creds);
  }
  if (c.tls !== null) {
    o.tls = {
      ...(c.tls.ca === null ? {} : { caFile: c.tls.ca }),
      ...(c.tls.cert === null ? {} : { certFile: c.tls.cert }),
      ...(c.tls.key === null ? {} : { keyFile: c.tls.key }),
    };
  }
  return o;
}

/** The gateway's connection: resolves on the first successful connect, retrying until then. */
export function connectForever(c: NatsAuth, name: string): Promise<NatsConnection> {
  return connect({
    ...connectionOptions(c, name),
    waitOnFirstConnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    pingInterval: 5_000,
    maxPingOut: 2,
  });
}

/** The CLI's connection: one attempt per server, a clear error when none answers. */
export async function connectOnce(
  c: NatsAuth,
  name: string,
  timeoutMs = 5_000,
): Promise<NatsConnection> {
  try {
    return await connect({
      ...connectionOptions(c, name),
      timeout: timeoutMs,
      maxReconnectAttempts: 0,
    });
  } catch (err) {
    throw new CelgateError(
      'E_FLEET',
      `cannot connect to NATS at ${c.servers.join(', ')}: ${(err as Error).message}`,
      { cause: err },
    );
  }
}
