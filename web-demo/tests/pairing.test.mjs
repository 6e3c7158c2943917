// Pairing with the local bridge, as a person meets it on `passgate demo` through the webview
// shim: the dialog pre-fills the bridge address the server reports; a page paired before
// passgate restarts stays paired; `passgate bridge unpair` makes the page say "pair again"
// (never "cancelled or timed out") and pairing again works; switching authenticator in one
// tab leaves the site's other tabs, and the pairing, alone. The signature counter a new
// passkey reports starts low. Screenshots of the dialog at 1280 and 390 px wide.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import {
  binary, siteDir, freePort, spawnPassgate, stopChild, scriptedPinentry, launchBrowser, screenshots,
  httpRequest, withTimeout, STEP_MS,
} from './harness.mjs';
import { username, goto, statusText, signUp, signOut, signIn } from './flows.mjs';

const JOURNEY_TIMEOUT_MS = 150_000;

let work;
let pinentry;
let ports;
let demo; // the running `passgate demo`
let browser;

/** Starts `passgate demo` on the same ports and state directory each time (a restart). */
async function startDemo() {
  const started = await spawnPassgate(['demo', '--listen', `127.0.0.1:${ports.rp}`,
    '--bridge-listen', `127.0.0.1:${ports.bridge}`, '--state-dir', join(work, 'state'), '--static-dir', siteDir,
    '--prompt', 'pinentry', '--pinentry', pinentry.program, '--prompt-timeout', '30', '--user-verifier', 'pin'],
  { what: 'passgate demo', until: /^Stop with Ctrl-C/ });
  return {
    ...started,
    base: `http://localhost:${ports.rp}`,
    bridgeUrl: `http://127.0.0.1:${ports.bridge}`,
    /** The current pairing code: a code pairs one page, then passgate prints the next one. */
    get pairingCode() {
      const codes = [...started.lines.join('\n').matchAll(/pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})/g)];
      return codes[codes.length - 1][1];
    },
  };
}

/** `passgate bridge unpair ARGS` on the demo's state directory; resolves with its stdout. */
function unpair(...args) {
  return withTimeout(new Promise((done, failed) => {
    const child = spawn(binary, ['bridge', 'unpair', '--state-dir', join(work, 'state'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', failed);
    child.on('exit', (code) => (code === 0 ? done(out) : failed(new Error(`passgate bridge unpair exited ${code}: ${err}`))));
  }), 'passgate bridge unpair');
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'passgate-pairing-'));
  pinentry = scriptedPinentry(work);
  ports = { rp: await freePort(), bridge: await freePort() };
  demo = await startDemo();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.stop();
  if (demo) await stopChild(demo.child);
  if (work) rmSync(work, { recursive: true, force: true });
});

function journey(name, body) {
  test(name, { timeout: JOURNEY_TIMEOUT_MS }, async () => {
    const shot = screenshots(`pairing-${name.split(':')[0]}`);
    pinentry.direct({});
    const pages = [];
    const newPage = async () => {
      const page = await withTimeout(browser.context.newPage(), 'new page');
      page.setDefaultTimeout(STEP_MS);
      page.setDefaultNavigationTimeout(STEP_MS);
      pages.push(page);
      return page;
    };
    try {
      await body({ newPage, shot });
    } catch (e) {
      for (const page of pages) await shot(page, 'failure').catch(() => {});
      console.log(`demo log (tail):\n${demo?.log.slice(-20).join('\n')}`);
      throw e;
    } finally {
      for (const page of pages) await withTimeout(page.close(), 'close page').catch(() => {});
    }
  });
}

const kind = (page) => page.getAttribute('#authenticator-choice', 'data-kind');

/** Opens the pairing dialog, checks the pre-filled address, pairs with the current code. */
async function pairThroughDialog(page, shot, label) {
  await page.click('#use-passgate');
  await page.locator('#pair-dialog[open]').waitFor();
  // Pre-filled with the address the server reports, not a guess.
  await page.waitForFunction((url) => document.querySelector('#pair-url').value === url, demo.bridgeUrl);
  assert.match(await page.innerText('#pair-url-source'), /as this server reports it/);
  if (shot) await shot(page, label);
  await page.fill('#pair-code', demo.pairingCode);
  await page.click('#pair-submit');
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
}

/** The signature counter the status panel shows. */
async function panelCounter(page) {
  await page.locator('#authenticator dd[data-field="signature-counter"]').waitFor();
  return Number(await page.innerText('#authenticator dd[data-field="signature-counter"]'));
}

let account; // { name } made by the first journey

journey('1-restart-keeps-pairing: the dialog names the bridge in use; after passgate restarts the page is still paired; counters start at 1', async ({ newPage, shot }) => {
  const page = await newPage();
  await goto(page, `${demo.base}/`);
  assert.equal(await kind(page), 'browser');
  // The dialog at both widths, pre-filled.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.click('#use-passgate');
  await page.locator('#pair-dialog[open]').waitFor();
  await page.waitForFunction((url) => document.querySelector('#pair-url').value === url, demo.bridgeUrl);
  await shot(page, 'dialog-1280');
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, 'dialog-390');
  const fits = await page.evaluate(() => {
    const box = document.querySelector('#pair-dialog').getBoundingClientRect();
    return box.left >= 0 && box.right <= window.innerWidth;
  });
  assert.ok(fits, 'the dialog fits 390 px');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.click('#pair-cancel');
  await pairThroughDialog(page);
  await statusText(page, 'Paired');

  // A new passkey: the relying party stores the counter the authenticator reported.
  account = { name: username('pairing') };
  const reg = await signUp(page, demo.base, account.name, 'Pairing Person');
  assert.ok(reg.body.credential.signCount <= 1, `a new passkey's counter is ${reg.body.credential.signCount}`);
  await signOut(page, demo.base);
  const first = await signIn(page, demo.base, account.name);
  assert.equal(first.body.credential.signCount, 1, 'the first sign-in reads 1');
  assert.equal(await panelCounter(page), 1, 'the status panel shows the first sign-in\'s counter');
  assert.equal(await page.innerText('#passkeys td.sign-count'), '1', 'so does the passkey table');
  await shot(page, 'first-sign-in-counter');

  // passgate restarts (same ports, same state): the page is still paired, no dialog.
  await stopChild(demo.child);
  demo = await startDemo();
  assert.match(demo.log.join('\n'), /pages paired before stay paired/);
  await signOut(page, demo.base);
  assert.equal(await kind(page), 'passgate', 'still paired after the restart');
  const second = await signIn(page, demo.base, account.name);
  // A restart skips at most one reserved block of 16 (the store cannot know how far into
  // it the last run got), and never repeats a value.
  const after = second.body.credential.signCount;
  assert.ok(after > 1 && after <= 17, `after the restart the counter is ${after}`);
  assert.equal(await panelCounter(page), after);
  assert.equal(await page.innerText('#passkeys td.sign-count'), String(after));
  await shot(page, 'signed-in-after-restart');
});

journey('2-unpair-then-pair-again: `passgate bridge unpair` makes the page say "pair again", not "cancelled or timed out"', async ({ newPage, shot }) => {
  const page = await newPage();
  await goto(page, `${demo.base}/`);
  if ((await kind(page)) !== 'passgate') await pairThroughDialog(page);
  const out = await unpair('--origin', demo.base);
  assert.match(out, new RegExp(`revoked pairing [0-9a-f]{16} of ${demo.base.replaceAll('.', '\\.')}`));
  // The running bridge sees it at once: the next request is refused before any prompt.
  const dialogsBefore = pinentry.dialogs().length;
  await page.fill('#signin-username', account.name);
  await page.click('#signin-button');
  const said = await statusText(page, 'pair again');
  assert.match(said, /passgate no longer knows this site's pairing/);
  assert.match(said, /pairing_stale/);
  assert.doesNotMatch(said, /cancelled|timed out/i);
  assert.equal(pinentry.dialogs().length, dialogsBefore, 'passgate asked nothing');
  // The tab stays on passgate (nothing is sent to another authenticator behind the person's
  // back) and offers to pair again.
  assert.equal(await kind(page), 'unpaired');
  assert.match(await page.innerText('#choice-notice'), /Pair again/);
  assert.equal(await page.innerText('#use-passgate'), 'Pair again with passgate');
  await shot(page, 'pair-again');
  // Pairing again (the dialog pre-filled) and the sign-in goes through.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('#use-passgate');
  await page.locator('#pair-dialog[open]').waitFor();
  await page.waitForFunction((url) => document.querySelector('#pair-url').value === url, demo.bridgeUrl);
  await shot(page, 'pair-again-dialog-390');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.fill('#pair-code', demo.pairingCode);
  await page.click('#pair-submit');
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
  const again = await signIn(page, demo.base, account.name);
  assert.ok(again.body.credential.signCount > 1 && again.body.credential.signCount <= 18);
  await signOut(page, demo.base);
});

journey('3-two-tabs: switching authenticator in one tab leaves the other tab paired; unpairing tells the other tab', async ({ newPage, shot }) => {
  const first = await newPage();
  await goto(first, `${demo.base}/`);
  if ((await kind(first)) !== 'passgate') await pairThroughDialog(first);
  const second = await newPage();
  await goto(second, `${demo.base}/`);
  assert.equal(await kind(second), 'passgate', 'the site\'s pairing is shared by its tabs');

  // The first tab goes back to the browser's authenticators: only that tab.
  await first.click('#use-browser');
  await first.locator('#authenticator-choice[data-kind="browser"]').waitFor();
  assert.match(await first.innerText('#choice-label'), /the site stays paired with passgate/);
  await shot(first, 'tab-one-browser');
  assert.equal(await kind(second), 'passgate');
  const signedIn = await signIn(second, demo.base, account.name);
  assert.equal(signedIn.status, 200, 'the other tab still signs in through passgate');
  await signOut(second, demo.base);
  // And back to passgate without a code: the pairing was kept.
  await first.click('#use-passgate');
  await first.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
  assert.equal(await first.locator('#pair-dialog[open]').count(), 0);

  // "Unpair this site" in one tab: the bridge forgets it and the other tab is told.
  const token = await first.evaluate(() => JSON.parse(localStorage.getItem('passgate.localBridge')).token);
  const unpaired = first.waitForResponse((r) => new URL(r.url()).pathname === '/v1/unpair');
  await first.click('#forget-pairing');
  assert.equal((await unpaired).status(), 200);
  await first.locator('#authenticator-choice[data-kind="browser"]').waitFor();
  await statusText(first, 'no longer paired');
  await second.locator('#choice-notice', { hasText: 'removed in another tab' }).waitFor();
  assert.equal(await kind(second), 'unpaired');
  await shot(second, 'tab-two-told');
  // The bridge no longer knows the token.
  const refused = await httpRequest(`${demo.bridgeUrl}/v1/message`, {
    headers: { 'content-type': 'application/json', origin: demo.base, authorization: `Bearer ${token}` },
    body: { type: 'isUvpaa', requestId: 1 },
  });
  assert.deepEqual([refused.status, refused.body.error.code], [401, 'pairing_stale']);
});
