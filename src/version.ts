/** celgate's version: the one source for the CLI, the health endpoint and MCP handshakes (test/cli pins it to package.json). */
export const CELGATE_VERSION = '0.1.0';
