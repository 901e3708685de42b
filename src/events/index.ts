export * from './types.js';
export * from './build.js';
export * from './decision.js';
export * from './sink.js';
export * from './enforce.js';
