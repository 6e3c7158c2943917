// passgate-app.js against the real Rust side: `passgate app serve` (the JSON host channel) on an
// authenticator with presence only (no fingerprint sensor here; the fingerprint flows run with
// the real fprintd in ctap-tests/python/test_app_api.py). Once from Node, once from a page in
// headless Chromium whose host binding — not the page — names the caller by the frame's origin.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { binary, startRp, launchBrowser, withTimeout } from './harness.mjs';
import {
  createPassgateApp, AuthMode, BiometryType, BiometricError, ChannelError, VaultError,
  VaultErrorCodes, DefaultSession,
} from '../site/passgate-app.js';

/** `passgate app serve` as a host: `forCaller(origin)` gives a channel for that caller. */
async function startHost() {
  const state = mkdtempSync(join(tmpdir(), 'passgate-app-host-'));
  const child = spawn(binary, ['app', 'serve', '--state-dir', state, '--presence', 'auto'], {
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true, // a new session: no controlling terminal for a PIN prompt to reach
    env: { ...process.env, PASSGATE_LOG: 'warn' },
  });
  const log = [];
  createInterface({ input: child.stderr }).on('line', (l) => { log.push(l); if (log.length > 100) log.shift(); });
  const lines = createInterface({ input: child.stdout });
  const waiting = [];
  let ready;
  const started = new Promise((ok) => { ready = ok; });
  lines.on('line', (line) => {
    const value = JSON.parse(line);
    if (value.ready) { ready(value); return; }
    waiting.shift()?.(value);
  });
  const hello = await withTimeout(started, 'passgate app serve start', 20_000);
  let queue = Promise.resolve();
  const exchange = (caller, message) => {
    const next = queue.then(() => new Promise((resolve) => {
      waiting.push(resolve);
      child.stdin.write(`${JSON.stringify({ caller, message })}\n`);
    }));
    queue = next.catch(() => {});
    return withTimeout(next, `reply to ${message.type}`, 20_000);
  };
  return {
    hello,
    log,
    forCaller: (caller) => ({ request: (message) => exchange(caller, message) }),
    exchange,
    async stop() {
      child.stdin.end();
      await new Promise((done) => { child.once('exit', done); setTimeout(() => child.kill('SIGKILL'), 5000); });
      rmSync(state, { recursive: true, force: true });
    },
  };
}

let host;
before(async () => { host = await startHost(); });
after(async () => { await host?.stop(); });

test('the module speaks every message type the host routes', () => {
  for (const type of ['biometric.checkStatus', 'vault.storeValue', 'soter.startSoterAuthentication']) {
    assert.ok(host.hello.messageTypes.includes(type), type);
  }
  assert.throws(() => createPassgateApp({}), TypeError);
});

test('biometric: status and rejections with the mobile error codes', async () => {
  const { biometric } = createPassgateApp(host.forCaller('com.example.node'));
  const status = await biometric.checkStatus();
  assert.deepEqual(status, {
    isAvailable: false, biometryType: BiometryType.None,
    error: 'no biometric sensor is available', errorCode: 'biometryNotAvailable',
  });
  await assert.rejects(biometric.authenticate('Sign in', { maxAttemps: 1 }), (e) => {
    assert.ok(e instanceof BiometricError);
    assert.equal(e.code, 'biometryNotAvailable');
    return true;
  });
  await assert.rejects(biometric.authenticate(''), (e) => e instanceof BiometricError && e.code === 'invalidContext');
  await assert.rejects(biometric.authenticate('x', { unknownOption: 1 }), (e) => e instanceof ChannelError && e.code === 'invalidRequest');
  const key = await biometric.getProofKey();
  assert.equal(key.rpId, 'passgate-app:com.example.node');
  assert.equal(key.origin, 'com.example.node');
  assert.equal(key.publicKeyAlgorithm, -7);
});

test('vault: InMemoryOnly values, lock clears them, events fire; others reject with VaultErrorCodes', async () => {
  const { Vault } = createPassgateApp(host.forCaller('com.example.node'));
  const vault = new Vault({ vaultId: 'mem', username: 'alice', authMode: AuthMode.InMemoryOnly, lockAfter: 400 });
  const locks = [];
  vault.onLock((event) => locks.push(event));
  assert.equal(await vault.isInUse(), false);
  await vault.storeValue('session', { token: 't-1', expires: 3600 });
  await vault.storeValue('empty', undefined);
  assert.deepEqual(await vault.getValue('session'), { token: 't-1', expires: 3600 });
  assert.equal(await vault.getValue('empty'), null);
  assert.deepEqual((await vault.getKeys()).sort(), ['empty', 'session']);
  await vault.removeValue('empty');
  assert.deepEqual(await vault.getKeys(), ['session']);
  assert.equal(await vault.isLocked(), false);
  // Idle for lockAfter: the host clears it, and the module reports the lock by itself.
  await new Promise((r) => setTimeout(r, 900));
  assert.deepEqual(locks, [{ timeout: true, saved: false }]);
  assert.equal(await vault.getValue('session'), null, 'InMemoryOnly: locking cleared it');
  await vault.storeValue('again', 1);
  await vault.lock();
  assert.deepEqual(locks, [{ timeout: true, saved: false }, { timeout: false, saved: false }]);
  assert.deepEqual(await vault.getKeys(), []);

  const bio = new Vault({ vaultId: 'bio', username: 'alice', authMode: AuthMode.BiometricOnly });
  await assert.rejects(bio.storeValue('k', 'v'), (e) => {
    assert.ok(e instanceof VaultError);
    assert.equal(e.code, 'BiometricsNotEnabled');
    return true;
  });
  const pin = new Vault({ vaultId: 'pin', username: 'alice', authMode: AuthMode.PasscodeOnly });
  await assert.rejects(pin.unlock(), (e) => e instanceof VaultError && e.code === 'MissingPasscode');
  await assert.rejects(bio.unlock({ usingPasscode: true }), (e) => e.code === 'PasscodeNotEnabled');
  const odd = new Vault({ vaultId: 'odd', username: 'alice', authMode: 'FaceOnly' });
  await assert.rejects(odd.isLocked(), (e) => e instanceof VaultError && e.code === 'InvalidAuthMode');
  assert.throws(() => new Vault({ vaultId: 'mem', username: 'alice' }), (e) => e.code === 'InvalidArguments');
  await vault.close();
});

test('Identity Vault 3.0: IonicIdentityVaultUser, DefaultSession, the IdentityVault methods and events', async () => {
  const { IonicIdentityVaultUser } = createPassgateApp(host.forCaller('com.example.iv'));
  const log = [];
  class IdentityService extends IonicIdentityVaultUser {
    constructor(platform) {
      super(platform, {
        authMode: AuthMode.InMemoryOnly, restoreSessionOnReady: false, unlockOnReady: false,
        unlockOnAccess: true, lockAfter: 5000, hideScreenOnBackground: true,
      });
    }
    onVaultReady(config) { log.push(['ready', config.authMode, config.lockAfter, config.hideScreenOnBackground, config.descriptor]); }
    onVaultLocked(event) { log.push(['locked', event]); }
    onSessionRestored(session) { log.push(['restored', session]); }
  }
  let platformReady = false;
  const service = new IdentityService({ ready: async () => { platformReady = true; } });
  await service.ready();
  assert.ok(platformReady, 'setup waits for platform.ready()');
  assert.deepEqual(log, [['ready', 'InMemoryOnly', 5000, true, { username: '_lastUser', vaultId: 'default' }]]);
  assert.equal(await service.hasStoredSession(), false);
  const session = new DefaultSession({ username: 'alice', token: 't-1' });
  await service.saveSession(session);
  assert.deepEqual({ ...(await service.getSession()) }, { username: 'alice', token: 't-1' });
  assert.equal(await service.hasStoredSession(), true);
  const vault = await service.getVault();
  assert.equal(await vault.getToken(), null);
  await vault.storeToken('tok');
  assert.equal(await vault.getToken(), 'tok');
  assert.equal(await vault.getValue('token'), 'tok', 'getToken is getValue("token")');
  assert.equal(await vault.getUsername(), '_lastUser');
  assert.equal(await vault.getBiometricType(), 'none');
  assert.deepEqual(await vault.getAvailableHardware(), []);
  assert.equal(await service.isBiometricsAvailable(), false);
  assert.equal(await service.isBiometricsEnabled(), false);
  assert.equal(await service.isPasscodeEnabled(), false);
  assert.equal(await vault.isPasscodeSetupNeeded(), false);
  assert.equal(await service.getAuthMode(), AuthMode.InMemoryOnly);
  await service.lockOut();
  assert.deepEqual(log.at(-1), ['locked', { timeout: false, saved: false }]);
  assert.equal(await service.restoreSession(), undefined, 'InMemoryOnly: locking cleared it');
  await service.saveSession(session);
  assert.equal(await service.restoreSession().then((s) => s.token), 't-1');
  assert.deepEqual(log.at(-1), ['restored', { username: 'alice', token: 't-1' }]);
  await service.logout();
  assert.equal(await service.hasStoredSession(), false);

  // The default auth mode is Identity Vault's, BiometricAndPasscode; positional unlock(true)
  // asks for the passcode (here no PIN can be asked for: nothing is created or counted).
  const plain = new IonicIdentityVaultUser(undefined, {}, { username: 'bob', vaultId: 'plain' });
  const raw = await plain.getVault();
  const config = await raw.getConfig();
  assert.equal(config.authMode, AuthMode.BiometricAndPasscode);
  assert.deepEqual([config.isBiometricsEnabled, config.isPasscodeEnabled], [true, true]);
  await assert.rejects(raw.unlock(true), (e) => e instanceof VaultError && e.code === VaultErrorCodes.MissingPasscode);
  assert.equal(await raw.isInUse(), false);
  await assert.rejects(raw.setPasscode('1234', '1235'), (e) => e.code === VaultErrorCodes.MismatchedPasscode);
  await assert.rejects(raw.setBiometricsEnabled(true), (e) => e.code === VaultErrorCodes.BiometricsNotEnabled);
  await raw.setPasscodeEnabled(false);
  assert.equal((await raw.getConfig()).authMode, AuthMode.BiometricOnly);
  assert.equal(await raw.isPasscodeEnabled(), false);
  await assert.rejects(raw.unlock(true, '1234'), (e) => e.code === VaultErrorCodes.PasscodeNotEnabled);

  // A setup error reaches onSetupError, and ready() rejects with it.
  const errors = [];
  class Broken extends IonicIdentityVaultUser {
    onSetupError(error) { errors.push(error.code); }
  }
  const broken = new Broken(undefined, { authMode: 'FaceOnly' }, { username: 'c', vaultId: 'broken' });
  await assert.rejects(broken.ready(), (e) => e.code === VaultErrorCodes.InvalidAuthMode);
  assert.deepEqual(errors, ['InvalidAuthMode']);
});

test('soter: wx-style promises and callbacks, errCode on failure', async () => {
  const { soter } = createPassgateApp(host.forCaller('com.example.node'));
  const support = await soter.checkIsSupportSoterAuthentication();
  assert.deepEqual(support.supportMode, []);
  const calls = [];
  await assert.rejects(soter.startSoterAuthentication({
    challenge: 'order-1', requestAuthModes: ['fingerPrint'], authContent: 'Pay',
    success: () => calls.push('success'), fail: (e) => calls.push(`fail ${e.errCode}`), complete: () => calls.push('complete'),
  }), (e) => {
    assert.equal(e.errCode, 90001);
    assert.equal(e.errMsg, 'startSoterAuthentication:fail not support soter');
    return true;
  });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(calls, ['fail 90001', 'complete']);
  await assert.rejects(soter.startSoterAuthentication({ challenge: '', requestAuthModes: ['fingerPrint'] }),
    (e) => e.errCode === 90004);
  await assert.rejects(soter.checkIsSoterEnrolledInDevice({ checkAuthMode: 'iris' }), (e) => e.errCode === 90003);
});

test('in a page: the host binding names the caller from the frame, not the page', async () => {
  const rp = await startRp();
  const browser = await launchBrowser();
  try {
    const seen = [];
    await browser.context.exposeBinding('passgateHost', async (source, message) => {
      // The host derives the caller from the frame that called, whatever the page claims.
      const origin = new URL(source.frame.url()).origin;
      seen.push(origin);
      return host.exchange(origin, message);
    });
    const page = await browser.context.newPage();
    await withTimeout(page.goto(`${rp.base}/index.html`, { waitUntil: 'load' }), 'goto');
    const outcome = await withTimeout(page.evaluate(async () => {
      const { createPassgateApp, AuthMode } = await import('/passgate-app.js');
      const honest = createPassgateApp({ request: (message) => window.passgateHost(message) });
      // A page that claims another caller gains nothing: the member is refused, not trusted.
      const forging = createPassgateApp({
        request: (message) => window.passgateHost({ ...message, caller: 'https://bank.example' }),
      });
      const forged = await forging.biometric.getProofKey().catch((e) => ({ failed: e.code }));
      const status = await honest.biometric.checkStatus();
      const key = await honest.biometric.getProofKey();
      const vault = new honest.Vault({ vaultId: 'page', username: 'p', authMode: AuthMode.InMemoryOnly });
      await vault.storeValue('k', 'from the page');
      return { forged, status, key, value: await vault.getValue('k') };
    }), 'page flow', 30_000);
    assert.deepEqual(outcome.forged, { failed: 'invalidRequest' });
    assert.equal(outcome.status.isAvailable, false);
    assert.equal(outcome.key.origin, rp.base);
    assert.equal(outcome.key.rpId, `passgate-app:${rp.base}`);
    assert.equal(outcome.value, 'from the page');
    assert.ok(seen.every((o) => o === rp.base), seen.join(','));
  } finally {
    await browser.stop();
    await rp.stop();
  }
});
