// Headless Chromium against a running `passgate rp`: the page calls the real
// navigator.credentials API; Chromium's CDP virtual authenticator (ctap2, internal, resident
// keys, UV) answers. The JSON that goes over the wire is what Chromium itself produced
// (PublicKeyCredential.parse*OptionsFromJSON and toJSON()).
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
const repo = join(here, '..', '..', '..');
const binary = process.env.PASSGATE_BIN ?? join(repo, 'target', 'debug', 'passgate');
const shots = join(here, '..', 'test-output');
const STEP = 15_000; // every page call has a timeout: Chromium can hang a page

let work, rp, port, context, page, cdp;

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

async function startRp() {
  port = await freePort();
  rp = spawn(binary, [
    'rp', '--listen', `127.0.0.1:${port}`,
    '--database', `sqlite://${join(work, 'rp.sqlite3')}`,
    '--rp-id', 'localhost', '--origin', `http://localhost:${port}`,
    '--rate-limit-per-sec', '0',
  ], { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, PASSGATE_LOG: 'warn' } });
  const lines = createInterface({ input: rp.stdout });
  await withTimeout(new Promise((resolve, reject) => {
    lines.on('line', (l) => { if (l.startsWith('listening on')) resolve(); });
    rp.on('exit', (code) => reject(new Error(`passgate rp exited with ${code}`)));
  }), 'passgate rp start');
}

async function addAuthenticator(isUserVerified = true) {
  const { authenticatorId } = await withTimeout(cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
      hasUserVerification: true, isUserVerified, automaticPresenceSimulation: true,
    },
  }), 'addVirtualAuthenticator');
  return authenticatorId;
}

// Runs a ceremony in the page: fetch options, call navigator.credentials, post toJSON().
async function ceremony(kind, optionsPath, verifyPath, body = {}) {
  return withTimeout(page.evaluate(async ({ kind, optionsPath, verifyPath, body }) => {
    const post = async (path, data) => {
      const r = await fetch(path, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify(data), credentials: 'same-origin',
      });
      return { status: r.status, body: await r.json() };
    };
    const options = await post(optionsPath, body);
    if (options.status !== 200) return { step: 'options', ...options };
    const publicKey = options.body.publicKey ?? options.body;
    let credential;
    try {
      credential = kind === 'create'
        ? await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(publicKey) })
        : await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(publicKey) });
    } catch (e) {
      return { step: 'navigator.credentials', error: e.name };
    }
    const json = credential.toJSON();
    const verified = await post(verifyPath, json);
    return { step: 'verify', options: publicKey, credential: json, ...verified };
  }, { kind, optionsPath, verifyPath, body }), `${kind} ceremony`);
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'passgate-rp-browser-'));
  mkdirSync(shots, { recursive: true });
  await startRp();
  context = await chromium.launchPersistentContext(join(work, 'profile'), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(STEP);
  await withTimeout(page.goto(`http://localhost:${port}/healthz`), 'goto');
  cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
});

after(async () => {
  await context?.close().catch(() => {});
  rp?.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
});

test('register, sign in with a username and by discoverable credential, with UV', async () => {
  const started = Date.now();
  const authenticatorId = await addAuthenticator(true);
  const reg = await ceremony('create', '/api/register/options', '/api/register/verify',
    { username: 'chromium-user', displayName: 'Chromium User' });
  assert.equal(reg.step, 'verify', JSON.stringify(reg));
  assert.equal(reg.status, 200, JSON.stringify(reg.body));
  assert.equal(reg.options.authenticatorSelection.residentKey, 'preferred');
  assert.equal(reg.options.authenticatorSelection.userVerification, 'required');
  assert.equal(reg.credential.clientExtensionResults.credProps.rk, true);
  assert.equal(reg.body.user.name, 'chromium-user');
  assert.equal(reg.body.credential.id, reg.credential.id);
  assert.deepEqual(reg.body.credential.transports, reg.credential.response.transports);

  const { credentials } = await withTimeout(cdp.send('WebAuthn.getCredentials', { authenticatorId }), 'getCredentials');
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true);

  await withTimeout(page.evaluate(() => fetch('/api/logout', {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}',
  }).then((r) => r.status)), 'logout');

  const login = await ceremony('get', '/api/login/options', '/api/login/verify', { username: 'chromium-user' });
  assert.equal(login.status, 200, JSON.stringify(login));
  assert.equal(login.body.verdict.userVerified, true);
  assert.equal(login.options.allowCredentials[0].id, reg.credential.id);

  const discoverable = await ceremony('get', '/api/login/options', '/api/login/verify', {});
  assert.equal(discoverable.status, 200, JSON.stringify(discoverable));
  assert.deepEqual(discoverable.options.allowCredentials, []);
  assert.equal(discoverable.body.user.name, 'chromium-user');
  assert.ok(discoverable.credential.response.userHandle, 'a discoverable credential returns the user handle');

  const session = await withTimeout(page.evaluate(() => fetch('/api/session').then((r) => r.json())), 'session');
  assert.equal(session.user.name, 'chromium-user');
  // The session cookie is HttpOnly: page script cannot read it.
  assert.equal(await page.evaluate(() => document.cookie), '');

  const action = await ceremony('get', '/api/actions/options', '/api/actions/verify', { payload: 'pay 10 EUR to Bob' });
  assert.equal(action.status, 200, JSON.stringify(action));
  const receipt = JSON.parse(action.body.receipt.receiptJson);
  assert.equal(receipt.payload, 'pay 10 EUR to Bob');
  assert.equal(receipt.userVerified, true);
  const check = await withTimeout(page.evaluate((r) => fetch('/api/receipts/verify', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ receiptJson: r.receiptJson, signature: r.signature }),
  }).then((x) => x.json()), action.body.receipt), 'receipt verify');
  assert.equal(check.valid, true);

  await page.screenshot({ path: join(shots, 'rp-journey.png') });
  await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
  console.log(`# journey: register + 2 sign-ins + action in ${Date.now() - started} ms`);
});

test('an authenticator that cannot verify the user is refused (UV required)', async () => {
  const authenticatorId = await addAuthenticator(false);
  const reg = await ceremony('create', '/api/register/options', '/api/register/verify', { username: 'no-uv-user' });
  // Chromium itself refuses to create a UV-required credential without UV, or the server does.
  if (reg.step === 'navigator.credentials') {
    assert.equal(reg.error, 'NotAllowedError');
  } else {
    assert.equal(reg.status, 400, JSON.stringify(reg));
    assert.equal(reg.body.error.code, 'user_verification_missing');
  }
  await cdp.send('WebAuthn.removeVirtualAuthenticator', { authenticatorId });
});
