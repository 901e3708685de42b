/**
 * What the CLI's admin-API clients share (`celgate events`, `stats`, `rules …`, `approvals`): where
 * the gateway's control socket is, one request with a timeout, the API's error as a readable
 * CelgateError, the `--socket / --config / --data-dir` options, and an action wrapper that prints
 * an error and sets a non-zero exit code.
 */
import type { Command } from 'commander';
import { controlRequest } from '../control/client.js';
import { CelgateError } from '../errors.js';
import { loadConfig } from '../gateway/config.js';

/** How long one admin API call may take. */
export const CLIENT_TIMEOUT_MS = 10_000;

export interface SocketFlags {
  socket?: string;
  config?: string;
  dataDir?: string;
}

/** `--socket`, or the control socket of the config / data dir given. */
export function socketPath(flags: SocketFlags): string {
  if (flags.socket !== undefined) return flags.socket;
  return loadConfig(flags.config, { data_dir: flags.dataDir }).control.socket;
}

/** One admin API call; a body that is not JSON comes back as `{text}`. */
export async function callControl(
  socket: string,
  method: string,
  path: string,
  body?: unknown,
  timeoutMs = CLIENT_TIMEOUT_MS,
): Promise<{ status: number; json: any }> {
  const res = await controlRequest(socket, method, path, { body, timeoutMs });
  return { status: res.status, json: res.json ?? { text: res.text } };
}

/** The API's error answer as one CelgateError: code, message, and each issue on its own line. */
export function apiError(res: { status: number; json: any }): CelgateError {
  const e = res.json?.error ?? { code: `HTTP_${res.status}`, message: JSON.stringify(res.json) };
  const issues = (e.issues ?? res.json?.issues ?? []) as {
    path: string;
    message: string;
    file?: string;
    line?: number;
  }[];
  const detail = issues
    .map(
      (i) =>
        `\n  ${i.file === undefined ? '' : `${i.file}${i.line === undefined ? '' : `:${i.line}`}: `}${i.path}: ${i.message}`,
    )
    .join('');
  return new CelgateError('E_CONFIG', `${e.code}: ${e.message}${detail}`);
}

/** A command action that prints its error as `celgate[ <command>]: message` and exits non-zero. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>, prefix = 'celgate') {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (err) {
      process.stderr.write(`${prefix}: ${(err as Error).message}\n`);
      process.exitCode =
        process.exitCode === undefined || process.exitCode === 0 ? 1 : process.exitCode;
    }
  };
}

/** Adds the options that locate a running gateway's control socket. */
export const withSocket = (cmd: Command) =>
  cmd
    .option('--socket <path>', 'admin API socket (default: from config / data dir)')
    .option('-c, --config <file>', 'configuration file (to find the socket)')
    .option('--data-dir <dir>', 'data directory (to find the socket)');
