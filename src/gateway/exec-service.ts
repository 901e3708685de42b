/**
 * The gateway service behind `POST /v1/exec`: a guest process runs only after policy allows it
 * (src/transport/exec does the protocol and enforcement).
 */
import { HttpError } from '../control/server.js';
import type { GuestExecTarget } from '../transport/exec/client.js';
import { execHttpStatus, gatedExec, parseExecInput } from '../transport/exec/gate.js';
import type { GatewayConfig } from './config.js';
import type { Service, ServiceDeps } from './service.js';

/** Where the gateway reaches the guest exec service, from its config (null when not configured). */
export function execTarget(config: GatewayConfig): GuestExecTarget | null {
  const port = config.vsock.ports.exec;
  if (config.vsock.mode === 'uds')
    return config.vsock.uds_base === null
      ? null
      : { mode: 'uds', udsBase: config.vsock.uds_base, port };
  return port === 0 ? null : { mode: 'tcp', host: config.vsock.host, port };
}

/** The gateway service behind `POST /v1/exec`. */
export async function startExecService(d: ServiceDeps): Promise<Service> {
  const target = execTarget(d.config);
  const origin = { session_id: d.config.session_id, profile_id: d.config.profile };
  return {
    name: 'exec',
    addresses: {
      exec_target:
        target === null
          ? 'none'
          : target.mode === 'uds'
            ? `${target.udsBase} CONNECT ${target.port}`
            : `${target.host}:${target.port}`,
    },
    routes: [
      {
        method: 'POST',
        path: '/v1/exec',
        handler: async (req) => {
          const input = parseExecInput(req.body);
          if (!input.ok) throw new HttpError(400, 'E_CONFIG', 'invalid exec request', input.issues);
          const outcome = await gatedExec(input.value, {
            decider: d.decider,
            sink: d.sink,
            origin,
            target,
            signal: req.signal,
          });
          return { status: execHttpStatus(outcome), json: outcome };
        },
      },
    ],
    close: async () => {},
  };
}
