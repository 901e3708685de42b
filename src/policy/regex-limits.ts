/** Bounds on regular expressions in rules and Detection IR. Pure data. */
export const MAX_REGEX_LENGTH = 1024;
