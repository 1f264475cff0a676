// The chat demo (demo/index.html) in Debian's headless chromium, driven by
// puppeteer-core (no browser download): two players join one room over the
// server's wsport, chat, the room plugin is hot-reloaded v1 -> v2 with
// `lampyrctl reload room`, and both pages keep their session and get the v2
// greeting. Screenshots go to LAMPYR_TEST_OUTPUT (default
// <repo>/build/test-output/browser). Run by `npm run test:browser` (and
// scripts/test.sh); CHROMIUM overrides /usr/bin/chromium.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import puppeteer, { type Browser, type Page } from 'puppeteer-core';

import { LAMPYR_BIN, LampyrServer, PLUGIN_DIR } from '../test/server.js';

// .test-build/test-browser/demo.test.js -> clients/js, and the repository
const PACKAGE = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const REPO = resolve(PACKAGE, '../..');
const OUTPUT = process.env.LAMPYR_TEST_OUTPUT ?? join(REPO, 'build/test-output/browser');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const LAMPYRCTL = join(LAMPYR_BIN, '../lampyrctl');
const TOKEN = 'browser-test-token';
// Only waits for things to happen; a hang fails the test instead of CI.
const WAIT = { timeout: 15000 };

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.map': 'application/json' };

// Serves clients/js (demo/ and dist/) read-only, as any static server would.
function serveStatic(root: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const path = normalize(join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)));
    if (!path.startsWith(root + sep) || !(path.includes(`${sep}demo${sep}`) || path.includes(`${sep}dist${sep}`))) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = readFileSync(path);
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((done) =>
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      done({ server, port: typeof a === 'object' && a ? a.port : 0 });
    }),
  );
}

const logText = (page: Page) => page.$eval('#log', (el) => el.textContent ?? '');
// The page waited on is brought to the front first: headless chromium may
// hold back a background page's work (a full CI-like run once saw alice's
// page miss bob's push for 15 s while bob's page was in front).
const waitForLog = async (page: Page, needle: string) => {
  await page.bringToFront();
  await page.waitForFunction((n) => document.querySelector('#log')?.textContent?.includes(n), WAIT, needle);
};

let server: LampyrServer;
let web: Server;
let browser: Browser;
let work: string;
let demoUrl: string;

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'lampyr-browser-'));
  copyFileSync(join(PLUGIN_DIR, 'libroom.so'), join(work, 'libroom.so'));
  server = await LampyrServer.start(
    { master: { admin_token: TOKEN }, pluginPaths: { room: join(work, 'libroom.so') } },
    ['wsport', 'webport'],
  );
  const s = await serveStatic(PACKAGE);
  web = s.server;
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    protocolTimeout: 20000,
    args: [
      // Two pages at once: the one not in front must not be throttled.
      '--disable-background-timer-throttling',
      '--disable-backgrounding-occluded-windows',
      '--disable-renderer-backgrounding',
      // chromium's sandbox refuses to run as root (CI containers)
      ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
    ],
  });
  demoUrl = `http://127.0.0.1:${s.port}/demo/index.html`;
});

after(async () => {
  await browser?.close();
  web?.close();
  await server?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('two players chat in the demo page; room v1 -> v2 reloads under them', async (t) => {
  const step = (what: string) => t.diagnostic(what); // where it stood, if it hangs
  const ws = `ws://127.0.0.1:${server.extraPorts.wsport}/`;
  const open = async (name: string, say?: string) => {
    const page = await browser.newPage();
    const q = new URLSearchParams({ ws, name, room: 'hall', ...(say ? { say } : {}) });
    await page.goto(`${demoUrl}?${q}`);
    return page;
  };
  const alice = await open('alice');
  await waitForLog(alice, 'welcome to hall');
  const bob = await open('bob', 'hello alice');
  await waitForLog(bob, 'welcome to hall');
  await waitForLog(alice, 'bob> hello alice'); // bob's line reaches alice as a push
  await waitForLog(bob, 'bob> hello alice');

  step('reload');
  // Hot reload: the v2 build replaces the configured file (rename), then lampyrctl.
  copyFileSync(join(PLUGIN_DIR, 'libroom_v2.so'), join(work, 'libroom.so.tmp'));
  renameSync(join(work, 'libroom.so.tmp'), join(work, 'libroom.so'));
  const { stdout } = await promisify(execFile)(LAMPYRCTL, [
    '--url', `http://127.0.0.1:${server.extraPorts.webport}`, '--token', TOKEN, 'reload', 'room',
  ]);
  assert.match(stdout, /room/);

  // Same pages, same sessions: joining again now gets v2's greeting.
  for (const page of [alice, bob]) {
    step(`rejoin ${page === alice ? 'alice' : 'bob'}`);
    await page.bringToFront();
    await page.click('#join button');
    await waitForLog(page, 'v2: hello');
    await page.waitForFunction(() => /generation 2/.test(document.querySelector('#status')?.textContent ?? ''), WAIT);
  }
  step('say after the reload');
  await alice.bringToFront();
  await alice.type('#say [name=text]', 'after the reload');
  await alice.click('#say button');
  await waitForLog(bob, 'alice> after the reload');

  mkdirSync(OUTPUT, { recursive: true });
  for (const [name, page] of [['alice', alice], ['bob', bob]] as const) {
    await page.bringToFront(); // a page in the background renders no frames to capture
    await page.screenshot({ path: join(OUTPUT, `${name}.png`) });
  }
  for (const page of [alice, bob]) {
    const log = await logText(page);
    assert.doesNotMatch(log, /session lost|reconnected/, 'the page kept its session through the reload');
  }
});
