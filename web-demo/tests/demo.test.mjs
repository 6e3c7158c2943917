// The demo's journeys in headless Chromium: `passgate demo` serves the pages, Chromium's CDP
// virtual authenticator (ctap2, internal, resident keys, UV) answers navigator.credentials.
// Each journey clicks through the real pages, asserts on what the page and the server say,
// and writes a screenshot of every page it visits to test-output/screenshots/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..');
const binary = process.env.PASSGATE_BIN ?? join(repo, 'target', 'debug', 'passgate');
const shots = join(here, '..', 'test-output', 'screenshots');
const STEP = 15_000;

let work, demo, port, base, context;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function withTimeout(promise, what, ms = STEP) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]);
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'passgate-demo-'));
  mkdirSync(shots, { recursive: true });
  port = await freePort();
  base = `http://localhost:${port}`;
  demo = spawn(binary, ['demo', '--listen', `127.0.0.1:${port}`, '--state-dir', join(work, 'state'),
    '--static-dir', join(repo, 'web-demo', 'site')],
  { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PASSGATE_LOG: 'warn' } });
  const lines = createInterface({ input: demo.stdout });
  await withTimeout(new Promise((resolve, reject) => {
    lines.on('line', (l) => { if (l.startsWith('passgate demo is running')) resolve(); });
    demo.on('exit', (code) => reject(new Error(`passgate demo exited with ${code}`)));
  }), 'passgate demo start');
  context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1000, height: 800 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await context?.close().catch(() => {});
  demo?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

/** A fresh page with its own virtual authenticator; dialogs (prompt/confirm) answered by `answers`. */
async function newPage({ isUserVerified = true, answers = [] } = {}) {
  await context.clearCookies(); // each journey starts signed out
  const page = await context.newPage();
  page.setDefaultTimeout(STEP);
  page.on('dialog', (d) => d.accept(answers.shift()));
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified, automaticPresenceSimulation: true },
  });
  return { page, cdp, authenticatorId };
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function statusText(page, pattern) {
  await page.locator('#status').filter({ hasText: pattern }).waitFor({ timeout: STEP });
  return page.locator('#status').textContent();
}

async function signUp(page, username, displayName) {
  await withTimeout(page.goto(`${base}/`), 'goto /');
  await page.fill('#signup-username', username);
  await page.fill('#signup-display', displayName);
  await page.click('#signup-button');
  await statusText(page, `Welcome, ${displayName}`);
  await page.waitForURL(`${base}/account.html`, { timeout: STEP });
  await page.locator('#passkeys tr').first().waitFor();
}

async function signOut(page) {
  await page.click('#signout');
  await page.waitForURL(`${base}/`, { timeout: STEP });
}

const timings = [];
function timed(name, fn) {
  return test(name, async () => {
    const start = Date.now();
    await fn();
    timings.push([name, Date.now() - start]);
    console.log(`# journey "${name}": ${Date.now() - start} ms`);
  });
}

timed('sign up, sign out, sign in with the username and with a device passkey', async () => {
  const { page, cdp, authenticatorId } = await newPage();
  await withTimeout(page.goto(`${base}/`), 'goto /');
  await shot(page, 'index');
  assert.equal(await page.getAttribute('#signin-username', 'autocomplete'), 'username webauthn');
  assert.equal(await page.evaluate(() => PublicKeyCredential.isConditionalMediationAvailable()), true);

  await signUp(page, 'ada', 'Ada Lovelace');
  assert.match(await page.textContent('#who'), /Signed in as Ada Lovelace \(ada\)/);
  assert.equal(await page.locator('#passkeys tr').count(), 1);
  assert.match(await page.textContent('#authenticator'), /Answered by: .*AAGUID/);
  await shot(page, 'account');
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true);

  await signOut(page);
  await page.fill('#signin-username', 'ada');
  await page.click('#signin-button');
  assert.match(await statusText(page, 'Signed in as ada'), /verified on your device/);
  await page.waitForURL(`${base}/account.html`, { timeout: STEP });

  // With no username: the discoverable passkey on this device is used.
  await signOut(page);
  await page.click('#signin-button');
  await statusText(page, 'Signed in as ada');
  await page.waitForURL(`${base}/account.html`, { timeout: STEP });
  const lastUsed = await page.locator('#passkeys tr td').nth(3).textContent();
  assert.notEqual(lastUsed, 'never');
  await page.close();
});

timed('rename, add a second passkey, delete one after re-authentication, refuse deleting the last', async () => {
  const { page } = await newPage({ answers: ['Work laptop'] });
  await signUp(page, 'grace', 'Grace Hopper');
  await page.click('button[aria-label^="Rename"]');
  await statusText(page, 'Renamed to “Work laptop”');
  await page.locator('#passkeys .name', { hasText: 'Work laptop' }).waitFor();

  // A second passkey needs a second authenticator: the first one is in excludeCredentials.
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'usb', hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });
  await page.click('#add');
  await statusText(page, 'Added');
  await page.locator('#passkeys tr').nth(1).waitFor();
  assert.equal(await page.locator('#passkeys tr').count(), 2);
  await shot(page, 'account-two-passkeys');

  // Delete "Work laptop": confirm(), then a re-authentication with a passkey, then the delete.
  const reauths = [];
  page.on('request', (r) => { if (r.url().endsWith('/api/reauth/verify')) reauths.push(r.url()); });
  await page.click('button[aria-label="Delete Work laptop"]');
  await statusText(page, 'Deleted “Work laptop”');
  await page.waitForFunction(() => document.querySelectorAll('#passkeys tr').length === 1);
  assert.equal(reauths.length, 1);
  const info = await page.evaluate(() => fetch('/api/session').then((r) => r.json()));
  assert.equal(info.recentlyVerified, true);

  await page.click('button[aria-label^="Delete"]');
  const text = await statusText(page, 'only passkey');
  assert.match(text, /last_credential/);
  assert.equal(await page.locator('#passkeys tr').count(), 1);
  await page.close();
});

timed('approve an action and verify its receipt', async () => {
  const { page } = await newPage();
  await signUp(page, 'alan', 'Alan Turing');
  await withTimeout(page.goto(`${base}/approve.html`), 'goto approve');
  const payload = '{"pay": "Bletchley Park Trust", "amount": "42.00", "currency": "GBP"}';
  await page.fill('#payload', payload);
  await page.click('#approve');
  await statusText(page, 'Approved');
  await page.locator('#receipt-valid', { hasText: 'valid' }).waitFor();
  assert.equal(await page.textContent('#receipt-valid'), 'valid');
  assert.match(await page.textContent('#receipt-summary'), /alan approved this payload .* after verifying on their device/);
  const receiptJson = await page.textContent('#receipt-json');
  const receipt = JSON.parse(receiptJson);
  assert.equal(receipt.payload, payload);
  assert.equal(receipt.userVerified, true);
  // A changed byte does not verify.
  const signature = await page.textContent('#receipt-signature');
  const forged = await page.evaluate(async ([json, sig]) => (await fetch('/api/receipts/verify', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ receiptJson: json.replace('42.00', '420.00'), signature: sig }),
  })).json(), [receiptJson, signature]);
  assert.equal(forged.valid, false);
  await page.click('summary');
  await shot(page, 'approve-receipt');
  await page.close();
});

timed('errors a user can cause are explained on the page', async () => {
  // An authenticator that cannot verify the user: sign-up is refused with a clear message.
  const { page } = await newPage({ isUserVerified: false });
  await withTimeout(page.goto(`${base}/`), 'goto /');
  await page.fill('#signup-username', 'no-uv');
  await page.click('#signup-button');
  const text = await statusText(page, /cancelled|verify/);
  assert.match(text, /cancelled or timed out|did not verify you/);
  // An unknown username.
  await page.fill('#signin-username', 'nobody-here');
  await page.click('#signin-button');
  assert.match(await statusText(page, 'No account'), /unknown_user/);
  // A taken username.
  await page.fill('#signup-username', 'ada');
  await page.click('#signup-button');
  assert.match(await statusText(page, 'taken'), /username_taken/);
  await shot(page, 'index-error');
  // The account page without a session.
  await withTimeout(page.goto(`${base}/account.html`), 'goto account');
  await statusText(page, 'Sign in first');
  await page.close();
});

timed('a page at another origin cannot sign in to the demo', async () => {
  // 127.0.0.1 is another origin than localhost: Chromium refuses rpId "localhost" there
  // (SecurityError), and a forged clientDataJSON origin could not pass the server either.
  const { page } = await newPage();
  await withTimeout(page.goto(`http://127.0.0.1:${port}/`), 'goto 127.0.0.1');
  await page.click('#signin-button');
  const text = await statusText(page, /not allowed|Passkey error|passkey/i);
  assert.match(text, /not allowed to use passkeys|SecurityError|security/i);
  await page.close();
});

test('timings', () => {
  assert.equal(timings.length, 5);
  for (const [name, ms] of timings) console.log(`# ${name}: ${ms} ms`);
});
