/** Bounds on regular expressions in rules and Detection IR. Pure data. */
export const MAX_REGEX_LENGTH = 1024;
/**
 * Longest pattern celgate generates itself (a Detection IR value list lowered to one RE2
 * alternation of quoted literals, src/detection/lower.ts): one pass over the input instead of
 * dozens (bench/detection.ts, "1,000 values").
 */
export const MAX_GENERATED_REGEX_LENGTH = 64 * 1024;
