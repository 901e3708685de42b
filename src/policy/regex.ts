/**
 * Regular expressions in rules (`matches()`) and Detection IR (`matches`). CEL specifies RE2; cel-js
 * and this engine run JS RegExp (no flags, as cel-js does), which backtracks. So every pattern is
 * vetted when a rule compiles, by one checker shared with Detection IR (`regex-safety.ts`): invalid
 * syntax, patterns over MAX_REGEX_LENGTH, back-references, nested quantifiers and overlapping
 * alternations under a repeat are refused; look-around (which RE2 lacks) is refused too. Pure.
 */
import { CelgateError } from '../errors.js';
import { MAX_REGEX_LENGTH } from './regex-limits.js';
import { checkRegex } from './regex-safety.js';

export { MAX_REGEX_LENGTH };

/** Returns why the pattern is refused, or undefined when it is acceptable. */
export function regexProblem(pattern: string): string | undefined {
  if (/\(\?<?[=!]/.test(pattern)) return 'look-around assertions are not allowed (RE2 has none)';
  return checkRegex(pattern);
}

/** Compiles a vetted pattern; throws E_RULE_COMPILE with the reason otherwise. */
export function compileRegex(pattern: string): RegExp {
  const problem = regexProblem(pattern);
  if (problem !== undefined) throw new CelgateError('E_RULE_COMPILE', `matches("${pattern}"): ${problem}`);
  return new RegExp(pattern);
}
