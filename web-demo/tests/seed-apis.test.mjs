// The seed APIs' documented snippets, unchanged but for their import line, in headless
// Chromium through the webview shim and the local bridge of `passgate demo` — its real
// authenticator, the PIN typed at passgate's trusted prompt (a scripted pinentry standing in
// for the person):
//
// - site/seed/identity-vault.html: Identity Vault 3.0's getting-started IdentityService
//   (IonicIdentityVaultUser, BiometricAndPasscode, unlockOnAccess, lockAfter,
//   hideScreenOnBackground, onPasscodeRequest returning undefined → the native prompt, which
//   is passgate's), driven through its session layer;
// - site/seed/soter.html: WeChat's and Taro's SOTER snippets. This machine's demo has no
//   fingerprint sensor, so the documented results are those of a device without SOTER support:
//   supportMode [], isEnrolled false, and fail with errCode 90001. (With a sensor, the same
//   page runs against the real fprintd in ctap-tests/python/test_seed_soter_fingerprint.py.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDemo, launchBrowser, screenshots, withTimeout, STEP_MS } from './harness.mjs';
import { goto } from './flows.mjs';

const TIMEOUT_MS = 120_000;

let demo;
let browser;

before(async () => {
  demo = await startDemo();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.stop();
  await demo?.stop();
});

/** A page of the demo's origin, paired with passgate's local bridge. */
async function pairedPage() {
  const page = await withTimeout(browser.context.newPage(), 'new page');
  page.setDefaultTimeout(STEP_MS);
  await goto(page, `${demo.base}/app-apis.html`);
  if ((await page.getAttribute('#authenticator-choice', 'data-kind')) !== 'passgate') {
    await page.click('#use-passgate');
    await page.locator('#pair-dialog[open]').waitFor();
    await page.fill('#pair-url', demo.bridgeUrl);
    await page.fill('#pair-code', demo.pairingCode);
    await page.click('#pair-submit');
    await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
  }
  return page;
}

/** The pinentry dialogs shown while `action` runs: [command, prompt]. */
async function dialogsDuring(action) {
  const start = demo.pinentry.dialogs().length;
  const result = await action();
  return { result, dialogs: demo.pinentry.dialogs().slice(start).map((d) => [d.command, d.prompt ?? null]) };
}

test('Identity Vault 3.0: the getting-started IdentityService, saved, locked out, restored with the PIN, logged out', { timeout: TIMEOUT_MS }, async () => {
  demo.pinentry.direct({});
  const shot = screenshots('seed-identity-vault');
  const page = await pairedPage();
  try {
    await goto(page, `${demo.base}/seed/identity-vault.html`);
    await page.waitForFunction(() => window.seed !== undefined);
    const eval_ = (what, fn, arg) => withTimeout(page.evaluate(fn, arg), what, 60_000);

    // ready(): onVaultReady with the snippet's configuration.
    const ready = await eval_('ready', async () => {
      const { IdentityService } = window.seed;
      window.log = [];
      class Observed extends IdentityService {
        onVaultReady(config) { window.log.push(['ready', config.authMode, config.lockAfter, config.hideScreenOnBackground, config.descriptor]); }
        onVaultUnlocked(config) { window.log.push(['unlocked', config.authMode]); }
        onVaultLocked(event) { window.log.push(['locked', event]); }
        onSessionRestored(session) { window.log.push(['restored', session]); }
      }
      window.service = new Observed(undefined, undefined, { ready: () => Promise.resolve() });
      await window.service.ready();
      return { log: window.log, stored: await window.service.hasStoredSession() };
    });
    assert.deepEqual(ready, {
      log: [['ready', 'BiometricAndPasscode', 5000, true, { username: '_lastUser', vaultId: 'default' }]],
      stored: false,
    });

    // saveSession: the native passcode prompt is passgate's; the demo's authenticator has no
    // PIN yet, so the person chooses one (twice) and approves.
    const saved = await dialogsDuring(() => eval_('saveSession', async () => {
      await window.service.saveSession({ username: 'alice', token: 'session-token-1' });
      return { session: await window.service.getSession(), stored: await window.service.hasStoredSession() };
    }));
    assert.deepEqual(saved.result, { session: { username: 'alice', token: 'session-token-1' }, stored: true });
    assert.deepEqual(saved.dialogs, [['GETPIN', 'New PIN:'], ['GETPIN', 'Repeat:'], ['CONFIRM', null]]);
    await shot(page, 'saved');

    // lockOut: onVaultLocked({timeout: false, saved: true}); the session stays stored.
    const locked = await eval_('lockOut', async () => {
      await window.service.lockOut();
      const vault = await window.service.getVault();
      return { last: window.log.at(-1), isLocked: await vault.isLocked(), stored: await window.service.hasStoredSession() };
    });
    assert.deepEqual(locked, { last: ['locked', { timeout: false, saved: true }], isLocked: true, stored: true });

    // getSession with unlockOnAccess: unlocked with the PIN, the session restored.
    const restored = await dialogsDuring(() => eval_('getSession', async () => {
      const session = await window.service.getSession();
      return { session, log: window.log.slice(-2) };
    }));
    assert.deepEqual(restored.result.session, { username: 'alice', token: 'session-token-1' });
    assert.deepEqual(restored.result.log, [['unlocked', 'BiometricAndPasscode'], ['restored', { username: 'alice', token: 'session-token-1' }]]);
    assert.deepEqual(restored.dialogs, [['GETPIN', 'PIN:'], ['CONFIRM', null]]);

    // A cancelled prompt: VaultErrorCodes.UserCanceledInteraction, not counted.
    await eval_('lock again', () => window.service.lockOut());
    demo.pinentry.direct({ script: { GETPIN: ['cancel'] } });
    const cancelled = await eval_('cancelled restore', async () => {
      const { VaultErrorCodes } = window.seed;
      try {
        await window.service.restoreSession();
        return { ok: true };
      } catch (e) {
        const vault = await window.service.getVault();
        return { code: e.code, expected: VaultErrorCodes.UserCanceledInteraction, remaining: await vault.remainingAttempts() };
      }
    });
    assert.deepEqual(cancelled, { code: 'UserCanceledInteraction', expected: 'UserCanceledInteraction', remaining: 5 });
    demo.pinentry.direct({});

    // logout: the vault is cleared.
    const loggedOut = await eval_('logout', async () => {
      await window.service.logout();
      return { stored: await window.service.hasStoredSession(), none: (await window.service.restoreSession()) === undefined };
    });
    assert.deepEqual(loggedOut, { stored: false, none: true });
    await shot(page, 'logged-out');
  } finally {
    await page.close().catch(() => {});
  }
});

test('WeChat SOTER and Taro: the documented snippets on a device without SOTER support', { timeout: TIMEOUT_MS }, async () => {
  const page = await pairedPage();
  try {
    const logged = [];
    page.on('console', (m) => logged.push(m.text()));
    await goto(page, `${demo.base}/seed/soter.html`);
    await page.waitForFunction(() => window.snippets !== undefined && window.wx !== undefined && window.Taro !== undefined);
    // Each snippet runs unchanged; the test watches its callbacks by wrapping the API (outside
    // the snippet) and reports what was called with what.
    const outcome = await withTimeout(page.evaluate(async () => {
      const seen = {};
      for (const ns of ['wx', 'Taro']) {
        for (const api of ['checkIsSupportSoterAuthentication', 'checkIsSoterEnrolledInDevice', 'startSoterAuthentication']) {
          const original = window[ns][api];
          window[ns][api] = (options) => {
            const calls = [];
            // The snippet's call (the first); later calls of this test are checked apart.
            if (seen[`${ns}.${api}`]) return original(options);
            seen[`${ns}.${api}`] = calls;
            const spy = (kind, own) => (res) => { calls.push([kind, res]); own?.(res); };
            const promise = original({
              ...options,
              success: spy('success', options.success),
              fail: spy('fail', options.fail),
              complete: spy('complete', options.complete),
            });
            seen[`${ns}.${api}.promise`] = promise.then((r) => ['resolved', r], (r) => ['rejected', r]);
            return promise;
          };
        }
      }
      for (const name of Object.keys(window.snippets)) window.snippets[name]();
      for (const key of Object.keys(seen)) if (key.endsWith('.promise')) seen[key] = await seen[key];
      await new Promise((r) => setTimeout(r, 50));
      // A malformed request is an errCode too, not an exception.
      const invalid = await window.wx.startSoterAuthentication({ requestAuthModes: ['fingerPrint'] })
        .then((r) => ['resolved', r], (r) => ['rejected', r]);
      const badMode = await window.Taro.checkIsSoterEnrolledInDevice({ checkAuthMode: 'retina' })
        .then((r) => ['resolved', r], (r) => ['rejected', r]);
      return { seen, invalid, badMode };
    }), 'snippets', 60_000);

    for (const ns of ['wx', 'Taro']) {
      const support = { errMsg: 'checkIsSupportSoterAuthentication:ok', supportMode: [] };
      assert.deepEqual(outcome.seen[`${ns}.checkIsSupportSoterAuthentication`], [['success', support], ['complete', support]], ns);
      const enrolled = { errMsg: 'checkIsSoterEnrolledInDevice:ok', isEnrolled: false };
      assert.deepEqual(outcome.seen[`${ns}.checkIsSoterEnrolledInDevice`], [['success', enrolled], ['complete', enrolled]], ns);
      const failed = { errCode: 90001, errMsg: 'startSoterAuthentication:fail not support soter' };
      assert.deepEqual(outcome.seen[`${ns}.startSoterAuthentication`], [['fail', failed], ['complete', failed]], ns);
      assert.deepEqual(outcome.seen[`${ns}.startSoterAuthentication.promise`], ['rejected', failed], ns);
      assert.deepEqual(outcome.seen[`${ns}.checkIsSupportSoterAuthentication.promise`], ['resolved', support], ns);
    }
    assert.equal(logged.filter((t) => t === 'false').length, 2, `the enrolled snippets log isEnrolled: ${logged.join(' | ')}`);
    assert.equal(outcome.invalid[0], 'rejected');
    assert.equal(outcome.invalid[1].errCode, 90004);
    assert.match(outcome.invalid[1].errMsg, /^startSoterAuthentication:fail challenge error/);
    assert.deepEqual(outcome.badMode[0], 'rejected');
    assert.equal(outcome.badMode[1].errCode, 90003);
  } finally {
    await page.close().catch(() => {});
  }
});
