// The built package (dist/, from `npm run build`): the browser entry must
// load nothing but its own files, and both entries must export one API.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';

// .test-build/test/ -> the package root
const ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const DIST = join(ROOT, 'dist');
const IMPORT = /(?:^|[;\s])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

// Every module specifier reachable from `entry`, following relative imports.
function importGraph(entry: string): { files: Set<string>; external: Set<string> } {
  const files = new Set<string>();
  const external = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2]) as string;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else external.add(spec);
    }
  };
  visit(entry);
  return { files, external };
}

test('the browser entry imports only its own files (no Node module, no ws)', () => {
  const entry = join(DIST, 'index.js');
  assert.ok(existsSync(entry), 'dist/index.js is missing: run `npm run build` first');
  const { files, external } = importGraph(entry);
  assert.deepEqual([...external], []);
  assert.ok(![...files].some((f) => f.endsWith('tcp.js')));
  // The Node entry does use them, so the scan does see imports.
  assert.deepEqual([...importGraph(join(DIST, 'node.js')).external].sort(), ['node:net', 'ws']);
});

test('both entries export the same API, and package.json points at them', async () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'lampyr-client');
  assert.equal(pkg.exports['.'].browser.default, './dist/index.js');
  assert.equal(pkg.exports['.'].node.default, './dist/node.js');
  assert.deepEqual(Object.keys(pkg.dependencies ?? {}), []);
  const browser = await import(pathToFileURL(join(DIST, 'index.js')).href);
  const node = await import(pathToFileURL(join(DIST, 'node.js')).href);
  for (const name of Object.keys(browser)) assert.ok(name in node, `node entry lacks ${name}`);
  assert.deepEqual(Object.keys(node).filter((n) => !(n in browser)), ['tcpTransport']);
  for (const f of ['index.d.ts', 'node.d.ts']) assert.ok(existsSync(join(DIST, f)), f);
  await assert.rejects(browser.connect({ host: '127.0.0.1', port: 1 }), { kind: 'connect' });
});
