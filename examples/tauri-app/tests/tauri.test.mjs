// The Tauri example in a real WebKitGTK webview: tauri-driver + WebKitWebDriver under Xvfb,
// passgate's authenticator in the app's process (PIN typed by a scripted pinentry, a real
// Assuan speaker), the pages and the relying party from `passgate rp`, which verifies what the
// app produced (webauthn-rs). Every step is bounded by a timeout.
//
// Environment: PASSGATE_BIN (the passgate binary), TAURI_EXAMPLE_BIN (the example app),
// TAURI_DRIVER (tauri-driver), SCREENSHOT_DIR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import { remote } from 'webdriverio';
import { scriptedPinentry } from '../../../web-demo/tests/pinentry.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const dist = resolve(here, '..', 'dist');
const passgate = process.env.PASSGATE_BIN || join(root, 'target', 'debug', 'passgate');
const app = process.env.TAURI_EXAMPLE_BIN || join(root, 'target', 'debug', 'passgate-tauri-example');
const tauriDriver = process.env.TAURI_DRIVER || join(process.env.HOME || '/root', '.cargo', 'bin', 'tauri-driver');
const screenshots = process.env.SCREENSHOT_DIR || join(root, 'web-demo', 'test-output', 'tauri');
const STEP_MS = 20_000;

function withTimeout(promise, what, ms = STEP_MS) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([Promise.resolve(promise).finally(() => clearTimeout(timer)), limit]);
}

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function stop(child, ms = 5_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), ms);
    child.once('exit', () => { clearTimeout(timer); done(); });
    child.kill('SIGTERM');
  });
}

/** Spawns `cmd`, resolving once a line of its output matches `ready`. */
async function start(cmd, args, { env, ready, what }) {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  const log = [];
  const seen = new Promise((ok, fail) => {
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (l) => {
        log.push(l);
        if (log.length > 300) log.shift();
        if (ready.test(l)) ok();
      });
    }
    child.once('error', fail);
    child.once('exit', (code, signal) => fail(new Error(`${what} exited (${code ?? signal}):\n${log.join('\n')}`)));
  });
  try {
    await withTimeout(seen, `${what} start`, 30_000);
  } catch (e) {
    await stop(child);
    throw e;
  }
  return { child, log };
}

/** A TCP port accepting connections. */
async function waitForPort(port, what) {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 20_000;
  for (;;) {
    const ok = await new Promise((done) => {
      const s = connect(port, '127.0.0.1', () => { s.end(); done(true); });
      s.on('error', () => done(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} is not listening on ${port}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const work = mkdtempSync(join(tmpdir(), 'passgate-tauri-'));
const pinentry = scriptedPinentry(work);
const apiToken = randomBytes(32).toString('base64url');
let rp;
let xvfb;
let display = process.env.DISPLAY;
let rpPort;
let base;

before(async () => {
  for (const [what, path] of [['passgate', passgate], ['the example app', app], ['tauri-driver', tauriDriver]]) {
    assert.ok(existsSync(path), `${what} is not built: ${path}`);
  }
  mkdirSync(screenshots, { recursive: true });
  rpPort = await freePort();
  base = `http://localhost:${rpPort}`;
  rp = await start(passgate, ['rp', '--listen', `127.0.0.1:${rpPort}`,
    '--database', `sqlite://${join(work, 'rp.sqlite3')}`, '--rp-id', 'localhost',
    '--origin', base, '--static-dir', dist, '--rate-limit-per-sec', '0'], {
    env: { PASSGATE_RP_API_TOKENS: apiToken }, ready: /^listening on /, what: 'passgate rp',
  });
  if (!display) {
    display = ':97';
    xvfb = spawn('Xvfb', [display, '-screen', '0', '1280x900x24', '-nolisten', 'tcp'], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 700));
  }
});

after(async () => {
  await stop(rp?.child);
  if (xvfb) await stop(xvfb);
  rmSync(work, { recursive: true, force: true });
});

/**
 * Starts tauri-driver and a WebDriver session on the example app (a fresh state directory
 * unless given), with the app's window on `url`. Returns { browser, close }.
 */
async function session(options = {}) {
  // WebKitWebDriver now and then drops the first connection while the app starts: one retry.
  try {
    return await sessionOnce(options);
  } catch (e) {
    if (!/UND_ERR_SOCKET|ECONNRESET|socket hang up/.test(String(e.message))) throw e;
    return sessionOnce(options);
  }
}

async function sessionOnce({ url = `${base}/index.html`, env = {}, stateDir = join(work, `state-${Date.now()}`) } = {}) {
  const port = await freePort();
  const nativePort = await freePort();
  const driver = spawn(tauriDriver, ['--port', String(port), '--native-port', String(nativePort)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      DISPLAY: display,
      PASSGATE_EXAMPLE_URL: url,
      PASSGATE_STATE_DIR: stateDir,
      PASSGATE_PINENTRY: pinentry.program,
      ...env,
    },
  });
  const log = [];
  for (const s of [driver.stdout, driver.stderr]) {
    createInterface({ input: s }).on('line', (l) => { log.push(l); if (log.length > 300) log.shift(); });
  }
  try {
    await waitForPort(port, 'tauri-driver');
    const browser = await withTimeout(remote({
      hostname: '127.0.0.1',
      port,
      logLevel: 'error',
      connectionRetryCount: 0,
      capabilities: {
        browserName: 'wry',
        'wdio:enforceWebDriverClassic': true,
        'tauri:options': { application: app },
      },
    }), 'WebDriver session', 60_000);
    await browser.setTimeout({ script: 90_000 });
    await withTimeout(browser.waitUntil(
      () => browser.execute(() => window.exampleReady === true),
      { timeout: 20_000, interval: 100 },
    ), 'the example page', 25_000);
    return {
      browser,
      log,
      async close() {
        await withTimeout(browser.deleteSession(), 'closing the session', 15_000).catch(() => {});
        await stop(driver);
      },
    };
  } catch (e) {
    await stop(driver);
    throw new Error(`${e.message}\ntauri-driver:\n${log.join('\n')}`);
  }
}

let calls = 0;

/**
 * Runs `example.NAME(...args)` in the page; returns { ok, value } or { ok: false, error }.
 * The call is started by one WebDriver command and its outcome read by later ones:
 * WebKitWebDriver turns a rejection inside a running script into a command error even when
 * the script handles it.
 */
async function call(browser, name, ...args) {
  calls += 1;
  const id = `c${calls}`;
  const start = withTimeout(browser.execute((fn, params, key) => {
    window.exampleResults = window.exampleResults || {};
    if (!window.exampleUnhandled) {
      window.exampleUnhandled = [];
      window.addEventListener('unhandledrejection', (event) => {
        window.exampleUnhandled.push(String(event.reason?.message ?? event.reason));
        event.preventDefault();
      });
    }
    Promise.resolve().then(() => window.example[fn](...params)).then(
      (value) => { window.exampleResults[key] = { ok: true, value }; },
      (e) => {
        const text = typeof e === 'string' ? e : (e?.message ?? JSON.stringify(e));
        window.exampleResults[key] = { ok: false, error: { code: e?.code ?? null, name: e?.name ?? null, message: text } };
      },
    ).finally(() => {
      // Also in the title, which WebDriver reads without running a script (see below).
      document.title = `outcome ${key} ${JSON.stringify(window.exampleResults[key])}`;
    });
    return true;
  }, name, args, id), `starting example.${name}`);
  // WebKitWebDriver reports a rejected Tauri invoke as the error of a running command, even
  // when the page handled it; the page's own record (read below) says what happened.
  let reported = 0;
  await start.catch((e) => {
    if (!/WebDriverError/.test(String(e))) throw e;
    reported += 1;
  });
  const deadline = Date.now() + 90_000;
  const prefix = `outcome ${id} `;
  for (;;) {
    let outcome = null;
    try {
      const title = await withTimeout(browser.getTitle(), `example.${name}`);
      if (title.startsWith(prefix)) outcome = JSON.parse(title.slice(prefix.length));
    } catch (e) {
      reported += 1;
      if (reported > 3 || !/WebDriverError/.test(String(e))) throw e;
    }
    if (outcome) return outcome;
    if (Date.now() > deadline) throw new Error(`example.${name}: no outcome within 90 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function screenshot(browser, name) {
  // Two frames, so the picture is of what the page shows now.
  await browser.execute(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
  await browser.saveScreenshot(join(screenshots, `${name}.png`));
}

test('the official plugin: status, then authenticate with the PIN in the trusted prompt', async () => {
  const s = await session();
  try {
    const status = await call(s.browser, 'status');
    assert.equal(status.ok, true, JSON.stringify(status));
    // No fingerprint reader here: the official shape with its numbering (0 = None).
    assert.equal(status.value.isAvailable, false);
    assert.equal(status.value.biometryType, 0);
    assert.equal(status.value.errorCode, 'biometryNotAvailable');
    // The first call chooses the PIN (typed twice) in the trusted prompt; the second asks
    // for it, in a dialog shaped by the app's options.
    pinentry.direct({});
    const first = await call(s.browser, 'authenticate');
    assert.deepEqual(first, { ok: true, value: 'authenticated' });
    const before = pinentry.dialogs().length;
    const auth = await call(s.browser, 'authenticate');
    assert.deepEqual(auth, { ok: true, value: 'authenticated' });
    const shown = pinentry.dialogs().slice(before);
    // The PIN dialog names the caller (passgate's line, on top) and carries the app's reason,
    // subtitle, title and cancel label, byte for byte. (The fallback label belongs to the
    // dialog shown while a finger is awaited: no reader here, so the PIN is asked directly;
    // ctap-tests/python/test_biometric_prompt.py checks it on the real fprintd.)
    const pinDialog = shown.find((d) => d.command === 'GETPIN' && d.description?.includes('Open your wallet'));
    assert.ok(pinDialog, JSON.stringify(shown));
    assert.equal(pinDialog.description,
      `${base} asks for your passgate PIN.\nReason: Open your wallet\nPayments over 100 EUR\n\nEnter the PIN to confirm it is you.`);
    assert.equal(pinDialog.title, 'Wallet');
    assert.equal(pinDialog.cancel, 'Not now');
    assert.equal(pinDialog.ok, 'Verify');
    // A declined prompt rejects with the official code.
    pinentry.direct({ getpin: 'cancel', confirm: 'cancel' });
    const declined = await call(s.browser, 'authenticate');
    assert.equal(declined.ok, false);
    assert.equal(declined.error.code, 'userCancel', JSON.stringify(declined));
    pinentry.direct({});
    await s.browser.$('#status').click();
    await screenshot(s.browser, 'status');
  } finally {
    await s.close();
  }
});

test('the JS and Rust snippets of Tauri\'s biometric guide, unchanged, give their documented results', async () => {
  const before = pinentry.dialogs().length;
  const printedTo = join(work, `guide-${Date.now()}.out`);
  const s = await session({ url: `${base}/guide.html`, env: { PASSGATE_EXAMPLE_GUIDE: 'rust', PASSGATE_EXAMPLE_STDOUT: printedTo } });
  const printedLines = () => (existsSync(printedTo) ? readFileSync(printedTo, 'utf8').split('\n') : []);
  try {
    // No fingerprint reader and no device credential allowed: "not available", and the
    // authentication fails with the official error (iOS rejects without a prompt the same way).
    const unavailable = 'no biometric sensor is available';
    await withTimeout(s.browser.waitUntil(
      () => s.browser.execute(() => window.guideLog.length >= 2), { timeout: 20_000, interval: 100 },
    ), 'the guide page\'s snippets', 25_000);
    const logged = await s.browser.execute(() => window.guideLog);
    assert.deepEqual([...logged].sort(), [
      `No! Biometric Authentication is not available due to ${unavailable}`,
      `Oh no! Authentication failed because ${unavailable}`,
    ]);
    await withTimeout(new Promise((done) => {
      const poll = setInterval(() => {
        if (printedLines().includes('guide snippets done')) { clearInterval(poll); done(); }
      }, 100);
    }), 'the guide\'s Rust snippets').catch((e) => {
      throw new Error(`${e.message}; the app printed: ${JSON.stringify(printedLines())}`);
    });
    const printed = printedLines().filter((l) => /^(Yes!|No!|Hooray!|Oh no!)/.test(l));
    assert.deepEqual(printed, [
      `No! Biometric Authentication is not available due to: ${unavailable}`,
      `Oh no! Authentication failed because : biometryNotAvailable: ${unavailable}`,
    ]);
    // Nothing was asked: a check that cannot succeed shows no prompt.
    assert.equal(pinentry.dialogs().length, before);
    await screenshot(s.browser, 'guide-snippets');
  } finally {
    await s.close();
  }
});

/** A swtpm on two free loopback ports (TPM and control), its state in `dir`: { child, tcti }. */
async function swtpm(dir) {
  mkdirSync(dir, { recursive: true });
  let port;
  do { port = await freePort(); } while (port >= 65000);
  const child = spawn('swtpm', ['socket', '--tpm2', '--tpmstate', `dir=${dir}`,
    '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`,
    '--ctrl', `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
    '--flags', 'not-need-init,startup-clear'], { stdio: 'ignore' });
  await waitForPort(port, 'swtpm');
  return { child, tcti: `swtpm:host=127.0.0.1,port=${port}` };
}

test('connected to a running passgate authenticator (TPM keys in a swtpm) on its Unix socket: a proof the relying party verifies', async () => {
  // `passgate authenticator serve` on its own state directory, its keys in a swtpm, its
  // presence asked in the scripted pinentry; the app connects with PASSGATE_AUTHENTICATOR
  // (AuthenticatorSource::Connect) to its default socket.
  const authState = join(work, `served-${Date.now()}`);
  const tpm = await swtpm(join(work, `swtpm-${Date.now()}`));
  let served;
  try {
    served = await start(passgate, ['authenticator', 'serve', '--state-dir', authState,
      '--presence', 'pinentry', '--pinentry', pinentry.program, '--attestation', 'none',
      '--key-store', 'tpm', '--tcti', tpm.tcti], {
      env: {}, ready: /^listening on unix:/, what: 'passgate authenticator serve',
    });
  } catch (e) {
    await stop(tpm.child);
    throw e;
  }
  const appState = join(work, `state-connect-${Date.now()}`);
  const s = await session({ stateDir: appState, env: { PASSGATE_AUTHENTICATOR: `unix:${join(authState, 'authenticator.sock')}` } });
  try {
    pinentry.direct({});
    const before = pinentry.dialogs().length;
    const proof = await call(s.browser, 'proof');
    assert.equal(proof.ok, true, `${JSON.stringify(proof)}\n${served.log.join('\n')}`);
    const { challenge, proof: p } = proof.value;
    const verdict = await verifyProof(p, challenge);
    assert.equal(verdict.status, 200, JSON.stringify(verdict.body));
    assert.equal(verdict.body.verdict.userVerified, true);
    // The served authenticator asked for presence (its prompt names the page), and holds the
    // key: the app's own state directory has no authenticator of its own.
    const shown = pinentry.dialogs().slice(before);
    assert.ok(shown.some((d) => d.command === 'CONFIRM' && d.description?.startsWith(`The page ${base} asks to`)),
      JSON.stringify(shown));
    assert.ok(existsSync(join(authState, 'device.key')), 'the served authenticator keeps the keys');
    assert.ok(!existsSync(join(appState, 'authenticator', 'device.key')), 'the app kept no authenticator of its own');
    // The key is the TPM's: with the swtpm gone, the same check cannot sign.
    await stop(tpm.child);
    pinentry.direct({});
    const without = await call(s.browser, 'proof');
    assert.equal(without.ok, false, JSON.stringify(without));
    assert.equal(without.error.code, 'systemCancel', JSON.stringify(without));
  } finally {
    await s.close();
    await stop(served.child);
    await stop(tpm.child);
  }
});

/** POSTs a proof to the relying party's /api/verify/assertion: { status, body }. */
async function verifyProof(p, challenge) {
  const response = await fetch(`http://127.0.0.1:${rpPort}/api/verify/assertion`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      credential: { id: p.key.credentialId, publicKey: p.key.publicKeyCose, signCount: 0, userHandle: 'cGFzc2dhdGUtcHJvb2Y' },
      response: p.credential,
      expectedChallenge: challenge,
      expectedOrigins: [p.key.origin],
      expectedRpId: p.key.rpId,
      requireUserVerification: true,
    }),
  });
  return { status: response.status, body: await response.json() };
}

test('the in-process authenticator with its keys in a swtpm: a proof the relying party verifies, none without the TPM', async () => {
  const tpm = await swtpm(join(work, `swtpm-inproc-${Date.now()}`));
  const appState = join(work, `state-tpm-${Date.now()}`);
  let s;
  try {
    s = await session({ stateDir: appState, env: { PASSGATE_KEY_STORE: 'tpm', PASSGATE_TCTI: tpm.tcti } });
    pinentry.direct({});
    const proof = await call(s.browser, 'proof');
    assert.equal(proof.ok, true, JSON.stringify(proof));
    const { challenge, proof: p } = proof.value;
    const verdict = await verifyProof(p, challenge);
    assert.equal(verdict.status, 200, JSON.stringify(verdict.body));
    assert.equal(verdict.body.verdict.userVerified, true);
    // The app's own authenticator holds its state; the key is the TPM's: with the swtpm gone,
    // the same check cannot sign.
    assert.ok(existsSync(join(appState, 'authenticator', 'device.key')));
    await stop(tpm.child);
    pinentry.direct({});
    const without = await call(s.browser, 'proof');
    assert.equal(without.ok, false, JSON.stringify(without));
    assert.equal(without.error.code, 'systemCancel', JSON.stringify(without));
  } finally {
    await s?.close();
    await stop(tpm.child);
  }
});

test('a proof from the app, verified by the relying party', async () => {
  const s = await session();
  try {
    pinentry.direct({});
    const proof = await call(s.browser, 'proof');
    assert.equal(proof.ok, true, JSON.stringify(proof));
    const { challenge, proof: p } = proof.value;
    assert.ok(p, JSON.stringify(proof.value));
    assert.equal(p.key.origin, base);
    const response = await fetch(`http://127.0.0.1:${rpPort}/api/verify/assertion`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        credential: { id: p.key.credentialId, publicKey: p.key.publicKeyCose, signCount: 0, userHandle: 'cGFzc2dhdGUtcHJvb2Y' },
        response: p.credential,
        expectedChallenge: challenge,
        expectedOrigins: [p.key.origin],
        expectedRpId: p.key.rpId,
        requireUserVerification: true,
      }),
    });
    const verdict = await response.json();
    assert.equal(response.status, 200, JSON.stringify(verdict));
    assert.equal(verdict.verified, true);
    assert.equal(verdict.verdict.userVerified, true);
    // The same proof against another challenge is refused.
    const forged = await fetch(`http://127.0.0.1:${rpPort}/api/verify/assertion`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        credential: { id: p.key.credentialId, publicKey: p.key.publicKeyCose, signCount: 0, userHandle: 'cGFzc2dhdGUtcHJvb2Y' },
        response: p.credential,
        expectedChallenge: randomBytes(32).toString('base64url'),
        expectedOrigins: [p.key.origin],
        expectedRpId: p.key.rpId,
        requireUserVerification: true,
      }),
    });
    assert.equal(forged.status, 400);
  } finally {
    await s.close();
  }
});

test('passkey sign-up and sign-in against passgate rp, and the vault', async () => {
  const stateDir = join(work, 'state-passkeys');
  const s = await session({ stateDir });
  try {
    pinentry.direct({});
    const username = `alice${Date.now()}`;
    const up = await call(s.browser, 'signUp', username);
    assert.equal(up.ok, true, JSON.stringify(up));
    assert.equal(up.value.user.name, username);
    const signIn = await call(s.browser, 'signIn', username);
    assert.equal(signIn.ok, true, JSON.stringify(signIn));
    assert.equal(signIn.value.user.name, username);
    const vault = await call(s.browser, 'vault');
    assert.deepEqual(vault, { ok: true, value: { lockedAfterLock: true, token: 'secret-token-42', lockedNow: false } });
    await s.browser.$('#vault').click();
    await s.browser.waitUntil(async () => !['', '…'].includes(await s.browser.$('#vault-out').getText()), { timeout: 60_000 });
    await screenshot(s.browser, 'vault');
    assert.match(await s.browser.$('#vault-out').getText(), /secret-token-42/);
  } finally {
    await s.close();
  }
});

test('a page of another origin gets nothing', async () => {
  // The same page from http://127.0.0.1:PORT: neither the app's capability nor the plugin's
  // allowed origins include it.
  const s = await session({ url: `http://127.0.0.1:${rpPort}/index.html` }).catch((e) => ({ error: e }));
  if (s.error) {
    // The page may not even finish loading its module if the IPC is refused early.
    throw s.error;
  }
  try {
    const before = pinentry.dialogs().length;
    const status = await call(s.browser, 'status');
    assert.equal(status.ok, false, JSON.stringify(status));
    const proof = await call(s.browser, 'proof');
    assert.equal(proof.ok, false, JSON.stringify(proof));
    assert.equal(pinentry.dialogs().length, before, 'no prompt was shown');
  } finally {
    await s.close();
  }
});

test('a capability without allow-authenticate: Tauri refuses authenticate', async () => {
  const s = await session({ env: { PASSGATE_EXAMPLE_CAPABILITY: 'no-authenticate' } });
  try {
    const status = await call(s.browser, 'status');
    assert.equal(status.ok, true, JSON.stringify(status));
    const before = pinentry.dialogs().length;
    const auth = await call(s.browser, 'authenticate');
    assert.equal(auth.ok, false);
    assert.match(auth.error.message, /not allowed/i, JSON.stringify(auth));
    assert.equal(pinentry.dialogs().length, before, 'no prompt was shown');
  } finally {
    await s.close();
  }
});

/**
 * The real fprintd on libfprint's virtual sensor, on a private system bus with polkit mocked
 * (ctap-tests/python/fprint_env.py, the python suite's fixture), `fingers` (`ID:NAME`)
 * enrolled for root: { bus, vdev, scan(finger), close() }.
 */
async function fprintd(dir, fingers) {
  const helper = join(root, 'ctap-tests', 'python', 'fprint_env.py');
  const child = spawn('/usr/bin/python3', [helper, dir, ...fingers], { stdio: ['pipe', 'pipe', 'pipe'] });
  const errors = [];
  createInterface({ input: child.stderr }).on('line', (l) => errors.push(l));
  const first = new Promise((ok, fail) => {
    createInterface({ input: child.stdout }).once('line', (l) => ok(JSON.parse(l)));
    child.once('exit', (code) => fail(new Error(`fprint_env.py exited (${code}):\n${errors.join('\n')}`)));
  });
  let env;
  try {
    env = await withTimeout(first, 'fprintd on the virtual sensor', 90_000);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const { connect } = await import('node:net');
  return {
    ...env,
    /** Puts `finger` (a virtual sensor finger ID) on the sensor. */
    scan: (finger) => new Promise((done) => {
      const s = connect(env.vdev, () => s.end(`SCAN ${finger}`));
      s.on('close', done);
      s.on('error', done);
    }),
    async close() {
      child.stdin.end();
      await stop(child, 15_000);
    },
  };
}

/**
 * Runs `example.NAME()` while `finger` is put on the sensor once passgate's scan dialog is
 * up, and again every 2.5 s (a touch before fprintd's verify started is not seen).
 */
async function callWithFinger(s, fp, name, finger, dialogsBefore) {
  let stopped = false;
  const toucher = (async () => {
    await pinentry.waitForDialogs(dialogsBefore + 1, 30_000).catch(() => {});
    for (let i = 0; i < 8 && !stopped; i += 1) {
      await new Promise((r) => setTimeout(r, i === 0 ? 500 : 2_500));
      if (!stopped) await fp.scan(finger);
    }
  })();
  try {
    return await call(s.browser, name);
  } finally {
    stopped = true;
    await toucher;
  }
}

test('fingerprint in the in-process authenticator (real fprintd, virtual sensor): status, a proof by a finger scan the RP verifies, another finger refused', async () => {
  const fp = await fprintd(join(work, `fprintd-${Date.now()}`), ['finger-a:right-index-finger']);
  let s;
  try {
    s = await session({
      env: { DBUS_SYSTEM_BUS_ADDRESS: fp.bus, PASSGATE_USER_VERIFIER: 'fprintd', PASSGATE_FPRINT_USER: 'root' },
    });
    // The official shape: a fingerprint reader (1, as Android reports its sensor), available.
    const status = await call(s.browser, 'status');
    assert.deepEqual(status, { ok: true, value: { isAvailable: true, biometryType: 1, biometryKind: 'Fingerprint' } });

    // A proof over a challenge. Creating the proof key asks for presence (the first dialog,
    // approved); then the fingerprint dialog stays up while the finger is awaited, and the
    // scan of the enrolled finger completes the call. No PIN is ever asked.
    const before = pinentry.dialogs().length;
    pinentry.direct({ script: { CONFIRM: ['ok', { hang: true }] } });
    const proof = await callWithFinger(s, fp, 'proof', 'finger-a', before + 1);
    assert.equal(proof.ok, true, `${JSON.stringify(proof)}\n${s.log.join('\n')}`);
    assert.equal(proof.value.method, 'biometric');
    const shown = pinentry.dialogs().slice(before);
    assert.deepEqual(shown.map((d) => [d.command, d.answer]), [['CONFIRM', 'ok'], ['CONFIRM', 'hang']]);
    assert.equal(shown[1].description,
      `${base} asks you to verify with your fingerprint.\nReason: Confirm the transfer\n\nTouch the fingerprint sensor to confirm it is you.`);
    const { challenge, proof: p } = proof.value;
    const verdict = await verifyProof(p, challenge);
    assert.equal(verdict.status, 200, JSON.stringify(verdict.body));
    assert.equal(verdict.body.verified, true);
    assert.equal(verdict.body.verdict.userVerified, true);

    await s.browser.$('#status').click();
    await s.browser.waitUntil(async () => /Fingerprint/.test(await s.browser.$('#biometric-out').getText()), { timeout: 20_000 });
    await screenshot(s.browser, 'fingerprint-status');

    // Another finger, with the official plugin (one attempt, no PIN): its error code.
    const again = pinentry.dialogs().length;
    pinentry.direct({ script: { CONFIRM: [{ hang: true }] } });
    const refused = await callWithFinger(s, fp, 'fingerOnly', 'finger-b', again);
    assert.equal(refused.ok, false, JSON.stringify(refused));
    assert.equal(refused.error.code, 'authenticationFailed', JSON.stringify(refused));
    assert.deepEqual(pinentry.dialogs().slice(again).map((d) => [d.command, d.title]), [['CONFIRM', 'Wallet']]);
  } finally {
    pinentry.direct({});
    await s?.close();
    await fp.close();
  }
});
