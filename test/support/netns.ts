/**
 * The guest namespace harness. It lives in bench/guest-netns.ts so `npm run bench:security` (built
 * from src/ and bench/ only) and the tests share one implementation; see that file.
 */
export * from '../../bench/guest-netns.js';
