import { describe, expect, it } from 'vitest';
import { cidrRegex, decimalRange, parseCidr } from '../../src/detection/cidr.js';

describe('cidr lowering to an exact regex', () => {
  it('matches exactly the numbers of a decimal range, for every range boundary', () => {
    for (const [lo, hi] of [
      [0, 255],
      [10, 10],
      [64, 127],
      [0, 9],
      [8, 15],
      [96, 199],
      [250, 255],
      [1, 254],
    ] as const) {
      const re = new RegExp(`^${decimalRange(lo, hi)}$`);
      for (let n = 0; n <= 300; n++)
        expect(re.test(String(n)), `${n} in [${lo},${hi}]`).toBe(n >= lo && n <= hi);
      expect(re.test('010')).toBe(false);
    }
  });

  it.each([
    ['10.0.0.0/8', '10.255.3.4', true],
    ['10.0.0.0/8', '11.0.0.1', false],
    ['172.16.0.0/12', '172.31.255.255', true],
    ['172.16.0.0/12', '172.32.0.1', false],
    ['169.254.169.254/32', '169.254.169.254', true],
    ['169.254.169.254', '169.254.169.25', false],
    ['192.168.1.128/25', '192.168.1.200', true],
    ['192.168.1.128/25', '192.168.1.127', false],
    ['0.0.0.0/0', '8.8.8.8', true],
    ['10.0.0.0/8', 'evil10.0.0.1', false],
    ['10.0.0.0/8', '10.0.0.1.evil.com', false],
  ])('%s contains %s: %s', (cidr, ip, expected) => {
    expect(new RegExp(cidrRegex(cidr)).test(ip)).toBe(expected);
  });

  it('normalises host bits and refuses malformed or IPv6 input with a reason', () => {
    expect(parseCidr('10.1.2.3/8')).toEqual({ ok: true, octets: [10, 0, 0, 0], prefix: 8 });
    expect(parseCidr('10.0.0.0/33')).toMatchObject({
      ok: false,
      message: expect.stringMatching(/prefix/),
    });
    expect(parseCidr('10.0.0/8')).toMatchObject({ ok: false });
    expect(parseCidr('010.0.0.0/8')).toMatchObject({ ok: false });
    expect(parseCidr('fd00::/8')).toMatchObject({
      ok: false,
      message: expect.stringMatching(/IPv6/),
    });
  });
});
