/**
 * Regular expressions in rules (`matches()`, Detection IR `matches`). CEL specifies RE2; cel-js and
 * this engine run JS RegExp, which backtracks. So every pattern is vetted when a rule compiles:
 * patterns that can backtrack catastrophically (a quantified group that itself contains a quantifier
 * or an alternation, e.g. `(a+)+`, `(a|aa)*`, `(.*a){10}`) and back-references are refused, and the
 * pattern length is bounded. Pure; no I/O.
 */
import { CelgateError } from '../errors.js';

export const MAX_REGEX_LENGTH = 1024;

/** Returns why the pattern is refused, or undefined when it is acceptable. */
export function regexProblem(pattern: string): string | undefined {
  if (pattern.length > MAX_REGEX_LENGTH) return `pattern is longer than ${MAX_REGEX_LENGTH} characters`;
  try {
    new RegExp(pattern, 'u');
  } catch (e) {
    return `invalid regular expression: ${(e as Error).message}`;
  }
  if (/\\[1-9]|\\k</.test(pattern)) return 'back-references are not allowed (RE2 has none and they backtrack)';
  if (/\(\?<?[=!]/.test(pattern)) return 'look-around assertions are not allowed (RE2 has none)';
  // Walk groups: a group containing a quantifier or an alternation, itself followed by a quantifier,
  // is the shape of catastrophic backtracking.
  const stack: { quantified: boolean; firsts: string[]; atBranchStart: boolean }[] = [];
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    const top = stack[stack.length - 1];
    if (top !== undefined && top.atBranchStart && ch !== '(') {
      top.firsts.push(ch === '\\' ? pattern.slice(i, i + 2) : ch);
      top.atBranchStart = false;
    }
    if (ch === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (ch === ']') inClass = false;
      continue;
    }
    if (ch === '[') inClass = true;
    else if (ch === '(') {
      if (top !== undefined && top.atBranchStart) top.atBranchStart = false;
      stack.push({ quantified: false, firsts: [], atBranchStart: true });
      if (pattern[i + 1] === '?' && pattern[i + 2] === ':') i += 2;
    } else if (ch === '|' && top !== undefined) top.atBranchStart = true;
    else if (ch === ')') {
      const group = stack.pop();
      const next = pattern[i + 1];
      const followedByQuantifier = next === '*' || next === '+' || next === '?' || next === '{';
      const unbounded = next === '*' || next === '+' || (next === '{' && /^\{\d*,\d{2,}|^\{\d{2,}|^\{\d*,\}/.test(pattern.slice(i + 1)));
      if (group !== undefined && unbounded && group.quantified) {
        return 'nested quantifier: a repeated group that itself repeats can backtrack catastrophically';
      }
      if (group !== undefined && unbounded && new Set(group.firsts).size < group.firsts.length) {
        return 'overlapping alternation under a repeat: branches that start alike can backtrack catastrophically';
      }
      if (group !== undefined && stack.length > 0 && (group.quantified || followedByQuantifier)) {
        stack[stack.length - 1]!.quantified = true;
      }
    } else if ((ch === '*' || ch === '+' || ch === '{') && stack.length > 0) stack[stack.length - 1]!.quantified = true;
  }
  return undefined;
}

/** Compiles a vetted pattern; throws E_RULE_COMPILE with the reason otherwise. */
export function compileRegex(pattern: string): RegExp {
  const problem = regexProblem(pattern);
  if (problem !== undefined) throw new CelgateError('E_RULE_COMPILE', `matches("${pattern}"): ${problem}`);
  return new RegExp(pattern, 'u');
}
