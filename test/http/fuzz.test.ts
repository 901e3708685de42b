import fc from 'fast-check';
import { describe, it } from 'vitest';
import { CelgateError } from '../../src/errors.js';
import { parseClientHello } from '../../src/transport/http/clienthello.js';
import { resolveTarget, parseHostHeader } from '../../src/transport/http/target.js';
import { parseConnectReply, parseMetaPreamble } from '../../src/transport/vsock.js';

/** Runs `fn`; anything thrown must be a CelgateError (a typed refusal), never a crash. */
function onlyTypedErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    return err instanceof CelgateError && ['E_PARSE', 'E_LIMIT'].includes(err.code);
  }
}

describe('sans-io parsers on arbitrary bytes', () => {
  it('parseClientHello returns a result or a typed error for any input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) =>
        onlyTypedErrors(() => parseClientHello(Buffer.from(bytes))),
      ),
      { numRuns: 2000 },
    );
  });

  it('parseClientHello survives mutated real-looking records', () => {
    const header = fc.tuple(
      fc.constant(0x16),
      fc.constant(0x03),
      fc.integer({ min: 0, max: 4 }),
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 255 }),
    );
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 400 }), (h, rest) =>
        onlyTypedErrors(() =>
          parseClientHello(
            Buffer.from([...h, 0x01, 0, rest.length >> 8, rest.length & 0xff, ...rest]),
          ),
        ),
      ),
      { numRuns: 2000 },
    );
  });

  it('parseMetaPreamble and parseConnectReply never throw untyped errors', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const b = Buffer.from(bytes);
        return (
          onlyTypedErrors(() => parseMetaPreamble(Buffer.concat([Buffer.from('\0META '), b]))) &&
          onlyTypedErrors(() => parseConnectReply(b))
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('resolveTarget never throws on arbitrary request lines and Host headers', () => {
    const ctx = { scheme: 'https' as const, sniHost: 'api.test', port: 443, meta: {} };
    fc.assert(
      fc.property(fc.string({ maxLength: 120 }), fc.string({ maxLength: 60 }), (url, host) => {
        const r = resolveTarget('GET', url, { host }, 1, ctx, {
          maxRequestTarget: 100,
          maxHeaderCount: 10,
        });
        parseHostHeader(host);
        // SNI stays authoritative whatever the request says.
        return !r.ok || r.target.host === 'api.test';
      }),
      { numRuns: 3000 },
    );
  });
});
