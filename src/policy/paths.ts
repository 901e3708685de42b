/**
 * Path functions for rules about file paths (CEL string members, in both evaluators):
 *
 *   p.cleanPath()     the path with `.`/`..` segments and repeated `/` resolved lexically, like
 *                     Go's path.Clean: `/tmp/x/../../../../etc/hostname` → `/etc/hostname`,
 *                     `a//b/./c/..` → `a/b`, `` → `.`; a relative path keeps leading `..`.
 *   p.underPath(dir)  true when the cleaned path is `dir` or inside it, by whole segments:
 *                     `/etc/passwd` and `/etc` are under `/etc`, `/etcetera` is not.
 *
 * Pure string work: no filesystem access, no symlink resolution (a server that follows a symlink
 * out of a directory is not seen here). Owns nothing else.
 */

/** Lexical clean of a slash-separated path (Go's path.Clean). */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const rooted = p.startsWith('/');
  const out: string[] = [];
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length > 0 && out[out.length - 1] !== '..') out.pop();
      else if (!rooted) out.push('..');
      continue;
    }
    out.push(seg);
  }
  const joined = out.join('/');
  return rooted ? `/${joined}` : joined === '' ? '.' : joined;
}

/** Whether `p`, cleaned, is `dir` (cleaned) or below it. A relative path is never under an absolute dir. */
export function underPath(p: string, dir: string): boolean {
  const path = cleanPath(p);
  const base = cleanPath(dir);
  if (base === '/') return path.startsWith('/');
  if (base === '.') return !path.startsWith('/') && path !== '..' && !path.startsWith('../');
  return path === base || path.startsWith(`${base}/`);
}
