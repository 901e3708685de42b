/** session.db: schema, the batched writer (an EventSink) and readers. Imports only events and errors. */
export * from './schema.js';
export * from './redact.js';
export * from './writer.js';
export * from './readers.js';
