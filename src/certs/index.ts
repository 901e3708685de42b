/**
 * Public surface of src/certs: the local CA and the leaf cache used for TLS interception.
 * Imports only src/errors; never opens sockets (TLS termination lives in src/transport).
 */
export { CertificateAuthority, CA_CERT_FILE, CA_KEY_FILE } from './ca.js';
export {
  LeafCache,
  DEFAULT_LEAF_CACHE_MAX,
  DEFAULT_LEAF_RENEW_BEFORE_MS,
  DEFAULT_LEAF_VALIDITY_MS,
  DEFAULT_MAX_PENDING_MINTS,
  DEDICATED_AFTER_CONTACTS,
  MINT_CONCURRENCY,
  type Leaf,
  type LeafCacheOptions,
  type LeafCacheStats,
  type LeafPem,
} from './leaf-cache.js';
export { leafSubject, MAX_HOSTNAME_LENGTH, type LeafSubject } from './hostname.js';
export { trustInstructions } from './trust.js';
export { ContextPool, DEFAULT_CONTEXT_POOL_SIZE, type ContextPoolStats } from './context-pool.js';
