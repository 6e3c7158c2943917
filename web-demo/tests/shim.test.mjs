// The demo pages on `passgate demo`, answered by passgate's own authenticator through the
// webview shim (web-demo/site/shim/passgate-webview.js) and the local HTTP bridge: pairing,
// sign-up, sign-in by username, discoverable and by passkey autofill, rename and delete, an
// approved action, with user verification really performed (the PIN typed into the trusted
// prompt, here a scripted pinentry standing in for the person), cancelled prompts, and every
// way another origin could try to get an assertion for the demo's RP ID.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, verify as verifySignature } from 'node:crypto';
import {
  startDemo, startRelay, launchBrowser, screenshots, pageFetch, captureResponse, attestedFlags,
  assertionFlags, withTimeout, httpRequest, authenticatorOptions, STEP_MS, PASSGATE_AAGUID,
} from './harness.mjs';
import {
  username, goto, statusText, clientData, signUp, signOut, signIn, rename, deletePasskey, approve, useLabel,
} from './flows.mjs';

const JOURNEY_TIMEOUT_MS = 120_000;
const VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';

let demo;
let autofillDemo; // a second `passgate demo`, holding no passkey until journey 7 makes two
let browser;
const durations = [];
let registered; // { name, credentialId } from journey 1
let autofillAccounts; // [{ name, displayName, userId, credentialId }] from journey 7

before(async () => {
  demo = await startDemo();
  autofillDemo = await startDemo();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.stop();
  await demo?.stop();
  await autofillDemo?.stop();
  for (const [name, ms] of durations) console.log(`journey shim ${name}: ${ms} ms`);
});

/**
 * Journeys that are not about autofill load the pages without the username field's
 * "webauthn" token: with passgate's shim, focusing that field opens passgate's prompt (a
 * person would dismiss it to type a username; journeys 7 and 8 are about exactly that).
 */
function withoutAutofillToken() {
  document.addEventListener('DOMContentLoaded', () => {
    for (const field of document.querySelectorAll('input[autocomplete~="webauthn"]')) {
      field.setAttribute('autocomplete', field.getAttribute('autocomplete').replace(/\s*\bwebauthn\b/, '') || 'on');
    }
  }, { once: true });
}

function journey(name, body, { on = () => demo, autofill = false } = {}) {
  test(name, { timeout: JOURNEY_TIMEOUT_MS }, async () => {
    const start = performance.now();
    const shot = screenshots(`shim-${name.split(':')[0]}`);
    const host = on();
    host.pinentry.direct({}); // the person types the PIN and approves, unless a journey says otherwise
    const page = await withTimeout(browser.context.newPage(), 'new page');
    page.setDefaultTimeout(STEP_MS);
    page.setDefaultNavigationTimeout(STEP_MS);
    if (!autofill) await withTimeout(page.addInitScript(withoutAutofillToken), 'init script');
    try {
      await body({ page, shot });
    } catch (e) {
      await shot(page, 'failure').catch(() => {});
      console.log(`demo log (tail):\n${host.log.slice(-20).join('\n')}`);
      console.log(`pinentry dialogs (tail):\n${JSON.stringify(host.pinentry.dialogs().slice(-6), null, 1)}`);
      throw e;
    } finally {
      await withTimeout(page.close(), 'close page').catch(() => {});
      const ms = Math.round(performance.now() - start);
      durations.push([name, ms]);
      console.log(`journey "shim ${name}" took ${ms} ms`);
    }
  });
}

/** The pinentry dialogs shown while `action` runs. */
async function dialogsDuring(action) {
  const before = demo.pinentry.dialogs().length;
  const result = await action();
  return { result, dialogs: demo.pinentry.dialogs().slice(before) };
}

/** Pairs the page through its "Use passgate's authenticator" dialog. */
async function pairThroughPage(page, code = demo.pairingCode, url = demo.bridgeUrl) {
  await page.click('#use-passgate');
  await page.locator('#pair-dialog[open]').waitFor();
  await page.fill('#pair-url', url);
  await page.fill('#pair-code', code);
  await page.click('#pair-submit');
}

async function ensurePaired(page) {
  if ((await page.getAttribute('#authenticator-choice', 'data-kind')) === 'passgate') return;
  await pairThroughPage(page);
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
}

function panel(page, field) {
  return page.locator(`#authenticator dd[data-field="${field}"]`).innerText();
}

journey('1-pair-sign-up-sign-in: pair, sign up, sign out, sign in by username and discoverable', async ({ page, shot }) => {
  await goto(page, `${demo.base}/`);
  assert.equal(await page.getAttribute('#authenticator-choice', 'data-kind'), 'browser');
  assert.match(await page.innerText('#choice-label'), /this browser's/);
  await shot(page, 'index-browser-authenticators');

  // A wrong code is refused by the bridge and explained in the dialog.
  await pairThroughPage(page, 'AAAA-BBBB-CCCC');
  await page.locator('#pair-error', { hasText: 'Pairing failed' }).waitFor();
  assert.match(await page.innerText('#pair-error'), /pairing_code_wrong/);
  await shot(page, 'pair-dialog-wrong-code');
  await page.fill('#pair-code', demo.pairingCode.toLowerCase());
  await page.click('#pair-submit');
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
  assert.match(await page.innerText('#choice-label'), new RegExp(`passgate's authenticator through the local bridge at ${demo.bridgeUrl.replaceAll('.', '\\.')}`));
  await statusText(page, 'Paired');
  await shot(page, 'index-paired');

  // The shim answers the feature queries through the bridge.
  const features = await withTimeout(page.evaluate(async () => ({
    uvpaa: await PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable(),
    conditional: await PublicKeyCredential.isConditionalMediationAvailable(),
    capabilities: await PublicKeyCredential.getClientCapabilities(),
    channel: globalThis.passgateWebview.channel,
  })), 'feature queries');
  assert.deepEqual({ uvpaa: features.uvpaa, conditional: features.conditional, channel: features.channel },
    { uvpaa: true, conditional: true, channel: 'http' });
  assert.equal(features.capabilities.conditionalGet, true);
  assert.equal(features.capabilities.userVerifyingPlatformAuthenticator, true);
  assert.equal(features.capabilities['extension:prf'], true);

  // Sign up: passgate has no PIN yet, so its prompt asks for a new one twice (the dialog
  // names the whole request: choosing the PIN there is the approval, no second prompt); the
  // RP (UV required) accepts the attestation.
  const name = username('grace');
  const { result: reg, dialogs } = await dialogsDuring(() => signUp(page, demo.base, name, 'Grace Hopper'));
  assert.deepEqual(dialogs.map((d) => [d.command, d.prompt ?? null]), [['GETPIN', 'New PIN:'], ['GETPIN', 'Repeat:']]);
  assert.ok(dialogs[0].description.includes(`${demo.base} wants to create a passkey for “${name}” on localhost.`), dialogs[0].description);
  assert.match(dialogs[0].description, /no PIN yet/);
  assert.equal(dialogs[0].title, 'passgate: create a passkey');
  const flags = attestedFlags(reg.request);
  assert.deepEqual({ up: flags.up, uv: flags.uv, at: flags.at, be: flags.be }, { up: true, uv: true, at: true, be: false });
  assert.equal(flags.aaguid, PASSGATE_AAGUID);
  assert.equal(clientData(reg.request).origin, demo.base);
  assert.equal(clientData(reg.request).type, 'webauthn.create');
  assert.deepEqual(reg.request.response.transports, ['internal']);
  assert.equal(reg.request.authenticatorAttachment, 'platform');
  assert.equal(reg.request.clientExtensionResults.credProps.rk, true);
  assert.equal(reg.body.verified, true);
  assert.equal(reg.body.credential.aaguid, PASSGATE_AAGUID);
  assert.equal(reg.body.credential.authenticator, 'passgate');
  assert.equal(await page.locator('#passkeys td.authenticator').first().innerText().then((t) => t.split('\n')[0]), 'passgate');
  await shot(page, 'account-after-sign-up');
  const credentialId = reg.body.credential.id;

  await signOut(page, demo.base);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);

  // Sign in by username: one prompt, the PIN typed in the trusted prompt that names the
  // request (the authenticator takes that approval as presence).
  const byName = await dialogsDuring(() => signIn(page, demo.base, name));
  assert.deepEqual(byName.dialogs.map((d) => d.command), ['GETPIN']);
  assert.equal(byName.dialogs[0].title, 'passgate: sign in');
  assert.equal(byName.dialogs[0].ok, 'Sign in');
  assert.ok(byName.dialogs[0].description.includes(`${demo.base} wants to sign in with your passkey for localhost.`));
  assert.equal(byName.dialogs[0].prompt, 'PIN:');
  const login = byName.result;
  assert.equal(login.body.credential.id, credentialId);
  assert.equal(login.body.verdict.userVerified, true);
  assert.equal(login.body.verdict.userPresent, true);
  assert.equal(login.body.verdict.origin, demo.base);
  assert.deepEqual(assertionFlags(login.request), { up: true, uv: true, be: false, bs: false });
  assert.equal(await panel(page, 'authenticator'), 'passgate');
  assert.equal(await panel(page, 'aaguid'), PASSGATE_AAGUID);
  assert.match(await panel(page, 'requests-go-through'), /passgate's local bridge/);
  await shot(page, 'account-signed-in-by-username');

  // Discoverable: no username, the one account of this RP ID answers.
  await signOut(page, demo.base);
  const discoverable = await dialogsDuring(() => signIn(page, demo.base, ''));
  assert.deepEqual(discoverable.dialogs.map((d) => d.command), ['GETPIN']);
  assert.equal(discoverable.result.body.user.name, name);
  assert.equal(discoverable.result.request.response.userHandle, reg.body.user.id);
  assert.equal(discoverable.result.body.verdict.userVerified, true);
  await shot(page, 'account-signed-in-discoverable');
  registered = { name, credentialId, userId: reg.body.user.id };
});

journey('2-cancelled-prompt: a cancelled or denied prompt is NotAllowedError and stores nothing; abort closes the prompt', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);
  let verifyCalls = 0;
  page.on('request', (r) => { if (/\/api\/(register|login)\/verify$/.test(new URL(r.url()).pathname)) verifyCalls += 1; });

  // Sign-up cancelled at the PIN prompt.
  const name = username('mallory-never');
  demo.pinentry.direct({ script: { GETPIN: ['cancel'] } });
  await page.fill('#signup-username', name);
  await page.fill('#signup-display', 'Never Stored');
  await page.click('#signup-button');
  const text = await statusText(page, 'NotAllowedError');
  assert.match(text, /^You declined on passgate's prompt \(the PIN was not entered\)\./);
  assert.equal(verifyCalls, 0);
  const lookup = await pageFetch(page, 'POST', '/api/login/options', { username: name });
  // No account: the relying party answers a name nobody has like a known one (decoy
  // credentials, so names cannot be enumerated), and no verify call ever stored it.
  assert.equal(lookup.status, 200, JSON.stringify(lookup));
  assert.ok(lookup.body.allowCredentials.length >= 1, JSON.stringify(lookup));
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  await shot(page, 'index-sign-up-cancelled');

  // Sign-in declined in the prompt (the one dialog, which asks for the PIN).
  demo.pinentry.direct({ script: { GETPIN: ['cancel'] } });
  const denied = await dialogsDuring(async () => {
    const before = demo.pinentry.dialogs().length;
    await page.fill('#signin-username', registered.name);
    await page.click('#signin-button');
    await demo.pinentry.waitForDialogs(before + 1);
    return statusText(page, 'NotAllowedError');
  });
  assert.match(denied.result, /^You declined on passgate's prompt/);
  assert.deepEqual(denied.dialogs.map((d) => [d.command, d.answer]), [['GETPIN', 'cancel']]);
  assert.equal(verifyCalls, 0);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  await shot(page, 'index-sign-in-denied');

  // The page aborts while the prompt waits: AbortError at once, and the prompt is closed.
  demo.pinentry.direct({ script: { GETPIN: [{ hang: true }] } });
  const before = demo.pinentry.dialogs().length;
  const options = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
  const aborted = page.evaluate(async (pk) => {
    const controller = new AbortController();
    const request = navigator.credentials.get({ signal: controller.signal, publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(pk) });
    globalThis.abortTheRequest = () => controller.abort();
    const started = performance.now();
    try { await request; return { ok: true }; } catch (e) { return { ok: false, name: e.name, ms: performance.now() - started }; }
  }, options.body);
  const dialogs = await demo.pinentry.waitForDialogs(before + 1);
  const pid = dialogs[before].pid;
  await withTimeout(page.evaluate(() => globalThis.abortTheRequest()), 'abort');
  const result = await withTimeout(aborted, 'aborted get');
  assert.deepEqual({ ok: result.ok, name: result.name }, { ok: false, name: 'AbortError' });
  const deadline = Date.now() + 5_000;
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  while (alive()) {
    if (Date.now() > deadline) throw new Error(`the pinentry (pid ${pid}) was not closed after the abort`);
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.equal(verifyCalls, 0);

  // And the next sign-in works.
  demo.pinentry.direct({});
  const login = await signIn(page, demo.base, registered.name);
  assert.equal(login.body.verdict.userVerified, true);
  await shot(page, 'account-after-abort');
});

journey('3-manage-passkeys: rename, add (excluded), add with the browser\'s authenticator, delete after re-auth, last refused', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);
  await signIn(page, demo.base, registered.name);
  const first = await pageFetch(page, 'GET', '/api/credentials');
  const mine = first.body.credentials.find((c) => c.id === registered.credentialId);
  await rename(page, registered.credentialId, mine.name, 'passgate laptop');
  assert.equal(await page.locator('#passkeys .name').first().innerText(), 'passgate laptop');

  // passgate already holds a passkey for this account: found silently, no PIN asked, one
  // notice the person acknowledges, then InvalidStateError.
  const excluded = await dialogsDuring(async () => {
    await page.click('#add');
    return statusText(page, 'InvalidStateError');
  });
  assert.match(excluded.result, /already registered/);
  assert.deepEqual(excluded.dialogs.map((d) => [d.command, d.title]), [['CONFIRM', 'passgate: passkey already here']]);
  await shot(page, 'account-already-registered');

  // Back to the browser's authenticators (a CDP virtual authenticator here) for a second passkey.
  await page.click('#use-browser');
  await page.locator('#authenticator-choice[data-kind="browser"]').waitFor();
  const cdp = await withTimeout(browser.context.newCDPSession(page), 'CDP session');
  await withTimeout(cdp.send('WebAuthn.enable'), 'WebAuthn.enable');
  await withTimeout(cdp.send('WebAuthn.addVirtualAuthenticator', { options: authenticatorOptions() }), 'add virtual authenticator');
  const added = await dialogsDuring(() => captureResponse(page, 'POST', '/api/register/verify', () => page.click('#add')));
  assert.equal(added.result.status, 200, JSON.stringify(added.result.body));
  assert.equal(added.dialogs.length, 0, 'passgate was not asked');
  assert.equal(added.result.body.credential.aaguid, VIRTUAL_AAGUID);
  await page.locator('#passkeys tr').nth(1).waitFor();
  await shot(page, 'account-two-passkeys');

  // passgate again (the site stayed paired: no code this time) and delete the browser's
  // passkey, re-authenticating with passgate's.
  await page.click('#use-passgate');
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
  assert.equal(await page.locator('#pair-dialog[open]').count(), 0);
  const second = added.result.body.credential;
  const removal = await dialogsDuring(() => deletePasskey(page, second.id, second.name));
  assert.equal(removal.result.reauth.status, 200);
  assert.equal(removal.result.reauth.request.id, registered.credentialId);
  assert.equal(assertionFlags(removal.result.reauth.request).uv, true);
  assert.equal(clientData(removal.result.reauth.request).origin, demo.base);
  assert.equal(removal.result.deleted.status, 200);
  assert.deepEqual(removal.result.deleted.body, { deleted: second.id });
  assert.deepEqual(removal.dialogs.map((d) => d.command), ['GETPIN']);
  await statusText(page, `Deleted “${second.name}”`);
  await page.waitForFunction(() => document.querySelectorAll('#passkeys tr').length === 1);
  await shot(page, 'account-after-delete');

  // The last passkey: refused by the server, with no re-authentication (no prompt).
  const last = await deletePasskey(page, registered.credentialId, 'passgate laptop', { last: true });
  assert.equal(last.reauth, undefined);
  assert.equal(last.deleted.status, 409);
  assert.equal(last.deleted.body.error.code, 'last_credential');
  await statusText(page, 'last_credential');
  assert.equal((await pageFetch(page, 'GET', '/api/credentials')).body.credentials.length, 1);
  await shot(page, 'account-last-refused');
  await withTimeout(cdp.detach(), 'CDP detach').catch(() => {});
});

journey('4-approve-action: a signed action with user verification and a valid receipt', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);
  await signIn(page, demo.base, registered.name);
  const payload = '{"pay": "Computer History Museum", "amount": "64.00", "currency": "USD"}';
  const { result: approved, dialogs } = await dialogsDuring(() => approve(page, demo.base, payload));
  // One prompt, and it shows the text that is signed (pretty-printed).
  assert.deepEqual(dialogs.map((d) => d.command), ['GETPIN']);
  assert.equal(dialogs[0].title, 'passgate: approve an action');
  assert.ok(dialogs[0].description.startsWith(`Approve on ${demo.base} (your passkey for localhost):\n\n    {\n      "amount": "64.00",`), dialogs[0].description);
  assert.ok(dialogs[0].description.includes('"pay": "Computer History Museum"'), dialogs[0].description);
  const signed = approved.body.receipt;
  const receipt = JSON.parse(signed.receiptJson);
  assert.equal(receipt.payload, payload);
  assert.equal(receipt.userVerified, true);
  assert.equal(receipt.userName, registered.name);
  assert.equal(receipt.credentialId, registered.credentialId);
  assert.equal(receipt.origin, demo.base);
  assert.equal(receipt.payloadSha256, createHash('sha256').update(payload).digest('base64url'));
  assert.equal(receipt.payloadShown, true);
  assert.equal(clientData(approved.request).passgatePayloadShown, true);
  assert.match(await page.innerText('#receipt-shown'), /^yes/);
  assert.deepEqual(assertionFlags(approved.request), { up: true, uv: true, be: false, bs: false });
  assert.match(await page.innerText('#receipt-uv'), /^yes/);
  assert.equal(await page.innerText('#receipt-valid'), 'valid');
  assert.equal(await panel(page, 'aaguid'), PASSGATE_AAGUID);
  assert.equal(await panel(page, 'authenticator'), 'passgate');
  const key = await pageFetch(page, 'GET', '/api/receipts/key');
  assert.equal(verifySignature('sha256', Buffer.from(signed.receiptJson),
    { key: key.body.jwk, format: 'jwk', dsaEncoding: 'der' }, Buffer.from(signed.signature, 'base64url')), true);
  await shot(page, 'approve-receipt');
});

/** Tries to pair from `page` (at another origin) with the real code; returns the dialog's error. */
async function pairingRefused(page) {
  await pairThroughPage(page);
  await page.locator('#pair-error', { hasText: 'Pairing failed' }).waitFor();
  const text = await page.innerText('#pair-error');
  assert.equal(await page.getAttribute('#authenticator-choice', 'data-kind'), 'browser');
  return text;
}

journey('5-other-origins: no bridge path gives another origin an assertion for the demo', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  // The demo page's token, to see what another origin could do with a stolen one.
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);
  const token = await withTimeout(page.evaluate(() => JSON.parse(localStorage.getItem('passgate.localBridge')).token), 'token');
  const message = `${demo.bridgeUrl}/v1/message`;
  const json = { 'content-type': 'application/json' };

  // (a) The same server on http://127.0.0.1:PORT: another origin, not allowed by the bridge.
  await goto(page, `${demo.ipBase}/`);
  assert.match(await pairingRefused(page), /cannot be reached/);
  await shot(page, 'ip-origin-pairing-refused');
  let r = await httpRequest(`${demo.bridgeUrl}/v1/pair`, { headers: { ...json, origin: demo.ipBase }, body: { code: demo.pairingCode } });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, 'origin_not_allowed');
  assert.equal(r.headers['access-control-allow-origin'], undefined);

  // (b) A relay on http://localhost:RELAY (RP ID "localhost" fits it): pairing refused, and a
  // stolen token planted in its storage does not help.
  const relay = await startRelay(demo.port);
  try {
    await goto(page, `${relay.base}/`);
    assert.match(await pairingRefused(page), /cannot be reached/);
    await withTimeout(page.evaluate(([url, t]) => localStorage.setItem('passgate.localBridge', JSON.stringify({ url, token: t })), [demo.bridgeUrl, token]), 'plant token');
    await goto(page, `${relay.base}/`);
    assert.equal(await page.getAttribute('#authenticator-choice', 'data-kind'), 'passgate');
    const before = demo.pinentry.dialogs().length;
    await page.fill('#signin-username', registered.name);
    await page.click('#signin-button');
    const text = await statusText(page, 'NotAllowedError');
    assert.match(text, /cannot be reached|refused/);
    assert.equal(demo.pinentry.dialogs().length, before, 'no prompt was shown for the relay');
    // Passkey autofill from the relay: not offered, and a conditional request or an autofill
    // hint sent by hand is refused like everything else.
    const relayAutofill = await withTimeout(page.evaluate(async () => {
      const outcome = (p) => p.then(() => 'resolved', (e) => e.name);
      const shim = globalThis.passgateWebview;
      return {
        offered: await PublicKeyCredential.isConditionalMediationAvailable(),
        conditional: await outcome(shim.request('get', { mediation: 'conditional', options: { challenge: 'AAAA' } }, { timeoutMs: 5000 })),
        hint: await outcome(shim.request('autofill', { target: 'pg-1' }, { timeoutMs: 5000 })),
      };
    }), 'autofill from the relay');
    assert.deepEqual(relayAutofill, { offered: false, conditional: 'NotAllowedError', hint: 'NotAllowedError' });
    assert.equal(demo.pinentry.dialogs().length, before, 'no prompt was shown for the relay');
    await shot(page, 'relay-stolen-token-refused');
    for (const body of [{ type: 'isUvpaa', requestId: 1 }, { type: 'autofill', requestId: 2, target: 'pg-1' },
      { type: 'get', requestId: 3, mediation: 'conditional', options: { challenge: 'AAAA' } }]) {
      r = await httpRequest(message, { headers: { ...json, origin: relay.base, authorization: `Bearer ${token}` }, body });
      assert.equal(r.status, 403, body.type);
      assert.equal(r.body.error.code, 'origin_not_allowed');
    }
  } finally {
    await relay.stop();
  }

  // (c) A non-browser client forging the demo's Origin: without pairing, with a made-up token,
  // with a wrong code — refused.
  r = await httpRequest(message, { headers: { ...json, origin: demo.base }, body: { type: 'get', requestId: 1, options: { challenge: 'AAAA' } } });
  assert.deepEqual([r.status, r.body.error.code], [401, 'pairing_required']);
  r = await httpRequest(message, { headers: { ...json, origin: demo.base, authorization: `Bearer ${Buffer.alloc(32).toString('base64url')}` }, body: { type: 'get', requestId: 1, options: { challenge: 'AAAA' } } });
  assert.deepEqual([r.status, r.body.error.code], [401, 'pairing_stale']);
  r = await httpRequest(`${demo.bridgeUrl}/v1/pair`, { headers: { ...json, origin: demo.base }, body: { code: 'ZZZZ-ZZZZ-ZZZZ' } });
  assert.deepEqual([r.status, r.body.error.code], [401, 'pairing_code_wrong']);
  // A DNS-rebinding name for the bridge is refused whatever the Origin.
  r = await httpRequest(`${demo.bridgeUrl}/v1/message`, { headers: { ...json, origin: demo.base, host: 'rebind.example', authorization: `Bearer ${token}` }, body: { type: 'isUvpaa' } });
  assert.deepEqual([r.status, r.body.error.code], [403, 'host_not_allowed']);

  // (d) The real page naming another origin in its messages, or trying to set Origin itself:
  // ignored, the assertion names the page's true origin.
  await goto(page, `${demo.base}/`);
  const options = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
  const forged = await withTimeout(page.evaluate(async (pk) => {
    const credential = await globalThis.passgateWebview.request('get', { options: pk, origin: 'https://evil.example', topOrigin: 'https://evil.example' });
    return credential;
  }, options.body), 'forged request', 30_000);
  assert.equal(clientData(forged).origin, demo.base);
  assert.equal(clientData(forged).crossOrigin, false);
  assert.equal(clientData(forged).topOrigin, undefined);
  const verified = await pageFetch(page, 'POST', '/api/login/verify', forged);
  assert.equal(verified.status, 200, JSON.stringify(verified.body));
  assert.equal(verified.body.verdict.origin, demo.base);
  assert.equal(verified.body.verdict.userVerified, true);
  const fresh = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
  const direct = await withTimeout(page.evaluate(async ([url, pk]) => {
    const { token: t } = JSON.parse(localStorage.getItem('passgate.localBridge'));
    const response = await fetch(`${url}/v1/message`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t}`, origin: 'https://evil.example' },
      body: JSON.stringify({ type: 'get', requestId: 'direct', origin: 'https://evil.example', options: pk }),
    });
    return response.json();
  }, [demo.bridgeUrl, fresh.body]), 'direct fetch', 30_000);
  assert.equal(direct.ok, true, JSON.stringify(direct));
  assert.equal(clientData(direct.result).origin, demo.base);
  await shot(page, 'index-forged-origin-ignored');
});

/**
 * Stand-ins for the native side of each host channel, defined before the shim loads: each
 * forwards the shim's messages to the real Rust router behind the local bridge (the "native"
 * part here), with the page's true origin in the Origin header, and records what it carried.
 */
function installHostStandIn({ kind, url, token }) {
  globalThis.hostLog = [];
  const forward = async (message) => {
    globalThis.hostLog.push(message);
    const response = await fetch(`${url}/v1/message`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body: JSON.stringify(message),
    });
    return response.json();
  };
  if (kind === 'webkit') {
    // WKScriptMessageHandlerWithReply: postMessage returns a promise of the reply.
    globalThis.webkit = { messageHandlers: { passgate: { postMessage: (message) => forward(message) } } };
  } else if (kind === 'android') {
    // androidx.webkit WebMessageListener: JSON text in, replies as message events.
    const port = {
      onmessage: null,
      postMessage(text) {
        forward(JSON.parse(text)).then((reply) => this.onmessage?.({ data: JSON.stringify(reply) }));
      },
    };
    globalThis.PassgateAndroid = port;
  } else if (kind === 'tauri') {
    globalThis.__TAURI_INTERNALS__ = {
      invoke: (command, args) => {
        if (command !== 'plugin:passgate|message') return Promise.reject(new Error(`unknown command ${command}`));
        return forward(args.message);
      },
    };
  }
}

journey('6-host-channels: the shim over WKWebView, Android and Tauri channels (stand-ins forwarding to the real router)', async ({ shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  const paired = await httpRequest(`${demo.bridgeUrl}/v1/pair`, {
    headers: { 'content-type': 'application/json', origin: demo.base }, body: { code: demo.pairingCode },
  });
  assert.equal(paired.status, 200, JSON.stringify(paired.body));
  // The example page a hybrid app would load (served by the demo, so it is a local page).
  const hostPage = `${demo.base}/shim/example.html`;
  for (const kind of ['webkit', 'android', 'tauri']) {
    const view = await withTimeout(browser.context.newPage(), 'new page');
    try {
      await view.addInitScript(installHostStandIn, { kind, url: demo.bridgeUrl, token: paired.body.token });
      await goto(view, hostPage);
      assert.equal(await withTimeout(view.evaluate(() => globalThis.passgateWebview.channel), 'channel'), kind);
      await view.locator('#uvpaa', { hasText: 'true' }).waitFor();
      assert.equal(await view.innerText('#channel'), kind);
      const direct = await withTimeout(view.evaluate(() => globalThis.passgateWebview.request('isUvpaa', {}).catch((e) => `${e.name}: ${e.message}`)), 'isUvpaa request');
      assert.equal(direct, true, String(direct));
      assert.equal(await withTimeout(view.evaluate(() => PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable()), 'isUVPAA'), true);

      // A sign-in by page code written for the browser's API.
      const options = await pageFetch(view, 'POST', '/api/login/options', { username: registered.name });
      const signed = await withTimeout(view.evaluate(async (json) => {
        const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(json) });
        const r = credential.response;
        return {
          isPkc: credential instanceof PublicKeyCredential,
          isAssertion: r instanceof AuthenticatorAssertionResponse,
          rawIdIsBuffer: credential.rawId instanceof ArrayBuffer,
          authenticatorDataBytes: r.authenticatorData.byteLength,
          signatureIsBuffer: r.signature instanceof ArrayBuffer,
          userHandleIsBuffer: r.userHandle instanceof ArrayBuffer,
          attachment: credential.authenticatorAttachment,
          type: credential.type,
          extensions: credential.getClientExtensionResults(),
          json: credential.toJSON(),
        };
      }, options.body), `get over ${kind}`, 30_000);
      assert.deepEqual({ ...signed, json: undefined, authenticatorDataBytes: signed.authenticatorDataBytes >= 37 },
        { isPkc: true, isAssertion: true, rawIdIsBuffer: true, authenticatorDataBytes: true, signatureIsBuffer: true,
          userHandleIsBuffer: true, attachment: 'platform', type: 'public-key', extensions: {}, json: undefined });
      assert.equal(clientData(signed.json).origin, demo.base);
      const verified = await pageFetch(view, 'POST', '/api/login/verify', signed.json);
      assert.equal(verified.status, 200, JSON.stringify(verified.body));
      assert.equal(verified.body.verdict.userVerified, true);
      const log = await withTimeout(view.evaluate(() => globalThis.hostLog), 'host log');
      const get = log.find((m) => m.type === 'get');
      assert.ok(get && typeof get.requestId === 'string' && get.options.challenge === options.body.challenge, JSON.stringify(log));
      assert.equal(get.origin, undefined, 'the shim never names an origin');

      if (kind === 'webkit') {
        // A sign-up over the channel: the attestation response's getters.
        const name = username('webkit');
        await pageFetch(view, 'POST', '/api/logout', {}); // a new account, not a second passkey
        const reg = await pageFetch(view, 'POST', '/api/register/options', { username: name, displayName: 'WebKit User' });
        const made = await withTimeout(view.evaluate(async (json) => {
          const credential = await navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(json) });
          const r = credential.response;
          return {
            isAttestation: r instanceof AuthenticatorAttestationResponse,
            transports: r.getTransports(),
            algorithm: r.getPublicKeyAlgorithm(),
            spkiBytes: r.getPublicKey().byteLength,
            authDataBytes: r.getAuthenticatorData().byteLength,
            attestationIsBuffer: r.attestationObject instanceof ArrayBuffer,
            credProps: credential.getClientExtensionResults().credProps,
            json: credential.toJSON(),
          };
        }, reg.body), 'create over webkit', 30_000);
        assert.deepEqual({ ...made, json: undefined }, {
          isAttestation: true, transports: ['internal'], algorithm: -7, spkiBytes: 91, authDataBytes: made.authDataBytes,
          attestationIsBuffer: true, credProps: { rk: true }, json: undefined,
        });
        assert.ok(made.authDataBytes > 37 + 16);
        const stored = await pageFetch(view, 'POST', '/api/register/verify', made.json);
        assert.equal(stored.status, 200, JSON.stringify(stored.body));
        assert.equal(stored.body.credential.aaguid, PASSGATE_AAGUID);
      }
      if (kind === 'android') {
        // An abort travels as a cancel message naming the request, and closes the prompt.
        demo.pinentry.direct({ script: { GETPIN: [{ hang: true }] } });
        const before = demo.pinentry.dialogs().length;
        const again = await pageFetch(view, 'POST', '/api/login/options', { username: registered.name });
        const aborted = view.evaluate(async (json) => {
          const controller = new AbortController();
          globalThis.abortIt = () => controller.abort();
          try {
            await navigator.credentials.get({ signal: controller.signal, publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(json) });
            return 'resolved';
          } catch (e) { return e.name; }
        }, again.body);
        await demo.pinentry.waitForDialogs(before + 1);
        await withTimeout(view.evaluate(() => globalThis.abortIt()), 'abort');
        assert.equal(await withTimeout(aborted, 'aborted get'), 'AbortError');
        const sent = await withTimeout(view.evaluate(() => globalThis.hostLog), 'host log');
        const lastGet = sent.filter((m) => m.type === 'get').at(-1);
        const cancel = sent.find((m) => m.type === 'cancel');
        assert.ok(cancel, JSON.stringify(sent));
        assert.equal(cancel.target, lastGet.requestId);
        demo.pinentry.direct({});
      }
      await shot(view, `webview-${kind}`);
    } finally {
      await withTimeout(view.close(), 'close page').catch(() => {});
    }
  }
});

/**
 * Everything the page exchanged with the local bridge's /v1/message, in the order the
 * replies arrived: [{ sent, got }]. What the page could learn is exactly `got`.
 */
function bridgeTraffic(page, bridgeUrl) {
  const seen = [];
  const reading = [];
  page.on('response', (response) => {
    const request = response.request();
    if (request.method() !== 'POST' || response.url() !== `${bridgeUrl}/v1/message`) return;
    const entry = { sent: JSON.parse(request.postData() ?? 'null'), got: undefined };
    seen.push(entry);
    reading.push(response.json().then((b) => { entry.got = b; }, () => { entry.got = null; }));
  });
  return {
    mark: () => seen.length,
    async since(mark) {
      await withTimeout(Promise.all(reading), 'bridge replies');
      return seen.slice(mark);
    },
    /** The first exchange from `mark` on that satisfies `test`, once its reply is read. */
    async waitFor(test, what, mark = 0) {
      const deadline = Date.now() + STEP_MS;
      for (;;) {
        await withTimeout(Promise.all(reading), 'bridge replies');
        const found = seen.slice(mark).find((e) => e.got !== undefined && test(e));
        if (found) return found;
        if (Date.now() > deadline) throw new Error(`no bridge exchange: ${what}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

const isArm = (e) => e.sent?.type === 'get' && e.sent.mediation === 'conditional';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until the pinentry process `pid` has exited. */
async function closed(pid, ms = 5_000) {
  const deadline = Date.now() + ms;
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  while (alive()) {
    if (Date.now() > deadline) throw new Error(`the pinentry (pid ${pid}) is still open`);
    await sleep(25);
  }
}

/** A conditional get started by page script; its outcome lands in globalThis.conditional[key]. */
function startConditional(page, key, options) {
  return withTimeout(page.evaluate(([k, pk]) => {
    globalThis.conditional ??= {};
    const controller = new AbortController();
    const state = { outcome: 'pending', controller };
    globalThis.conditional[k] = state;
    const started = performance.now();
    navigator.credentials.get({ mediation: 'conditional', signal: controller.signal, publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(pk) })
      .then((credential) => { state.outcome = 'credential'; state.json = credential.toJSON(); },
        (e) => { state.outcome = e.name; state.message = e.message; state.ms = performance.now() - started; });
  }, [key, options]), `conditional get ${key}`);
}

function conditionalState(page, key) {
  return withTimeout(page.evaluate((k) => {
    const { outcome, message, ms, json } = globalThis.conditional[k];
    return { outcome, message, ms, json };
  }, key), `state of ${key}`);
}

journey('7-autofill: passkey autofill through the shim: silent without a passkey, the prompt lists both accounts, the second one picked; aborted for a username sign-in', async ({ page, shot }) => {
  const host = autofillDemo;
  const traffic = bridgeTraffic(page, host.bridgeUrl);
  await goto(page, `${host.base}/`);
  await pairThroughPage(page, host.pairingCode, host.bridgeUrl);
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
  const features = await withTimeout(page.evaluate(async () => ({
    conditional: await PublicKeyCredential.isConditionalMediationAvailable(),
    capabilities: await PublicKeyCredential.getClientCapabilities(),
  })), 'feature queries');
  assert.equal(features.conditional, true);
  assert.equal(features.capabilities.conditionalGet, true);

  // Paired, the page arms autofill: one conditional get, answered "pending" at once, with no
  // origin of the page's choosing in it.
  const armed = await traffic.waitFor(isArm, 'the page arms autofill');
  assert.deepEqual(armed.got, { requestId: armed.sent.requestId, ok: true, result: { pending: true } });
  assert.equal(armed.sent.origin, undefined);
  assert.match(armed.sent.documentId, /^doc-/);
  assert.deepEqual(armed.sent.options.allowCredentials ?? [], [], 'a discoverable request');
  await shot(page, 'index-autofill-armed');

  // No passkey for localhost yet: focusing the field sends the hint, the hint's answer is
  // the same empty object as always, and nothing is shown, nothing settles.
  const silentFrom = host.pinentry.dialogs().length;
  const noPasskeyMark = traffic.mark();
  await page.focus('#signin-username');
  const hint = await traffic.waitFor((e) => e.sent?.type === 'autofill', 'the autofill hint', noPasskeyMark);
  assert.deepEqual(hint.sent, { type: 'autofill', target: armed.sent.requestId, requestId: hint.sent.requestId });
  assert.deepEqual(hint.got, { requestId: hint.sent.requestId, ok: true, result: {} });
  await sleep(1_500);
  assert.equal(host.pinentry.dialogs().length, silentFrom, 'no prompt without a passkey');
  // The page stays responsive meanwhile.
  const typedAt = performance.now();
  await page.fill('#signin-username', 'typed-while-pending');
  assert.equal(await page.inputValue('#signin-username'), 'typed-while-pending');
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  const responsiveMs = performance.now() - typedAt;
  assert.ok(responsiveMs < 2_000, `typing and a fetch took ${responsiveMs} ms`);
  assert.notEqual(await page.getAttribute('#status', 'class'), 'error');
  // A conditional request of the page's own (it replaces the armed one) stays pending
  // through a focus too, until the page aborts it.
  const options = await pageFetch(page, 'POST', '/api/login/options', {});
  await startConditional(page, 'own', options.body);
  await page.focus('#signup-username');
  await page.focus('#signin-username');
  await sleep(1_000);
  assert.equal((await conditionalState(page, 'own')).outcome, 'pending');
  assert.equal(host.pinentry.dialogs().length, silentFrom, 'still no prompt');
  await withTimeout(page.evaluate(() => globalThis.conditional.own.controller.abort()), 'abort');
  await page.waitForFunction(() => globalThis.conditional.own.outcome !== 'pending', null, { timeout: STEP_MS });
  const own = await conditionalState(page, 'own');
  assert.equal(own.outcome, 'AbortError');
  assert.ok(own.ms < STEP_MS);
  const silent = await traffic.since(noPasskeyMark);
  const settledWithoutPasskey = silent.filter((e) => e.got?.result?.response || e.got?.result?.id);
  assert.deepEqual(settledWithoutPasskey, [], 'no credential, no account, came back');
  assert.ok(silent.some((e) => e.sent?.type === 'cancel' && e.sent.target && isArm(silent.find((a) => a.sent?.requestId === e.sent.target) ?? {})),
    'the abort cancelled the conditional request at the bridge');
  assert.notEqual(await page.getAttribute('#status', 'class'), 'error');
  await shot(page, 'index-autofill-no-passkey-pending');

  // Two accounts on passgate's authenticator.
  const ada = { name: username('ada'), displayName: 'Ada Lovelace' };
  const grace = { name: username('grace'), displayName: 'Grace Hopper' };
  for (const account of [ada, grace]) {
    const reg = await signUp(page, host.base, account.name, account.displayName);
    account.userId = reg.body.user.id;
    account.credentialId = reg.body.credential.id;
  }
  const signedOutMark = traffic.mark();
  await signOut(page, host.base);

  // Autofill: focus the field; passgate's prompt lists both accounts first (the bridge
  // recorded them when they were made, the newest first), the person picks the second one
  // listed, Ada, then enters the PIN once (the approval).
  const armedAgain = await traffic.waitFor(isArm, 'armed after signing out', signedOutMark);
  const pickFrom = host.pinentry.dialogs().length;
  const pickMark = traffic.mark();
  host.pinentry.direct({ script: { CONFIRM: ['notok'] } });
  const login = await captureResponse(page, 'POST', '/api/login/verify', () => page.focus('#signin-username'));
  assert.equal(login.status, 200, JSON.stringify(login.body));
  await statusText(page, 'from autofill');
  const shown = host.pinentry.dialogs().slice(pickFrom);
  assert.deepEqual(shown.map((d) => [d.command, d.answer]), [['CONFIRM', 'notok'], ['GETPIN', 'pin']]);
  for (const dialog of shown) {
    assert.ok(dialog.description.startsWith(`Passkey autofill: ${host.base} offers to sign you in with a passkey for localhost.`), dialog.description);
  }
  assert.equal(shown[1].prompt, 'PIN:');
  // Two accounts: one dialog with a button for each.
  assert.ok(shown[0].description.endsWith(`passgate has seen 2 accounts of yours on localhost. Which account? You verify once, for that account only, next.\n  • ${grace.displayName} (${grace.name})\n  • ${ada.displayName} (${ada.name})`), shown[0].description);
  assert.equal(shown[0].ok, useLabel(`${grace.displayName} (${grace.name})`));
  assert.equal(shown[0].notok, useLabel(`${ada.displayName} (${ada.name})`));
  assert.equal(login.body.user.name, ada.name);
  assert.equal(login.body.verdict.userVerified, true);
  assert.equal(login.request.id, ada.credentialId);
  assert.equal(login.request.response.userHandle, ada.userId);
  assert.equal(clientData(login.request).origin, host.base);
  assert.deepEqual(assertionFlags(login.request), { up: true, uv: true, be: false, bs: false });
  await page.waitForURL(`${host.base}/account.html`, { timeout: STEP_MS });
  const session = await pageFetch(page, 'GET', '/api/session');
  assert.equal(session.status, 200);
  assert.equal(session.body.user.name, ada.name);
  await page.locator('#passkeys tr').first().waitFor();
  await shot(page, 'account-signed-in-by-autofill');

  // Until the person picked, the page learnt nothing about accounts: every reply was
  // "pending" or the hint's empty object, and the one credential names Ada only.
  const exchanged = await traffic.since(pickMark);
  const secrets = [ada.name, grace.name, ada.displayName, grace.displayName, ada.userId, grace.userId, ada.credentialId, grace.credentialId];
  const credentialReplies = exchanged.filter((e) => e.got?.result?.response);
  assert.equal(credentialReplies.length, 1);
  const conditionalTypes = new Set(['get', 'wait', 'autofill', 'cancel']);
  for (const e of exchanged.filter((x) => !x.got?.result?.response)) {
    const text = JSON.stringify(e.got);
    for (const secret of secrets) assert.ok(!text.includes(secret), `${text} reveals ${secret}`);
    if (conditionalTypes.has(e.sent?.type)) {
      assert.ok([JSON.stringify({ pending: true }), '{}', JSON.stringify({ cancelled: true }), JSON.stringify({ cancelled: false })]
        .includes(JSON.stringify(e.got?.result)), text);
    }
  }
  assert.ok(exchanged.some((e) => e.sent?.type === 'autofill' && e.sent.target === armedAgain.sent.requestId), 'the focus sent the hint');
  const credentialText = JSON.stringify(credentialReplies[0].got);
  for (const secret of [grace.name, grace.userId, grace.credentialId, ada.name]) assert.ok(!credentialText.includes(secret), secret);
  assert.equal(credentialReplies[0].sent.target ?? credentialReplies[0].sent.requestId, armedAgain.sent.requestId);

  // Abort: the prompt is open when the person decides to type a username instead. The page
  // aborts its autofill request (passgate's prompt closes at once) and signs in by username.
  const abortMark = traffic.mark();
  await signOut(page, host.base);
  await traffic.waitFor(isArm, 'armed after signing out', abortMark);
  const abortFrom = host.pinentry.dialogs().length;
  host.pinentry.direct({ script: { CONFIRM: [{ hang: true }] } }); // the choice comes first
  await page.focus('#signin-username');
  const open = await host.pinentry.waitForDialogs(abortFrom + 1);
  assert.ok(open[abortFrom].description.startsWith('Passkey autofill:'), open[abortFrom].description);
  await shot(page, 'index-autofill-prompt-open');
  host.pinentry.direct({});
  const byName = await signIn(page, host.base, grace.name);
  await closed(open[abortFrom].pid);
  const afterAbort = host.pinentry.dialogs().slice(abortFrom);
  assert.deepEqual(afterAbort.map((d) => [d.command, d.answer]), [['CONFIRM', 'hang'], ['GETPIN', 'pin']]);
  assert.ok(afterAbort[1].description.startsWith(`${host.base} wants to sign in with your passkey for localhost.`), afterAbort[1].description);
  assert.equal(byName.body.user.name, grace.name);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).body.user.name, grace.name);
  await shot(page, 'account-signed-in-by-username-after-abort');
  autofillAccounts = [ada, grace];
}, { on: () => autofillDemo, autofill: true });

journey('8-autofill-requests: a newer conditional request replaces the older; an immediate get while one waits; a dismissed prompt keeps it waiting until a click', async ({ page, shot }) => {
  assert.ok(autofillAccounts, 'journey 7 made two accounts');
  const [ada, grace] = autofillAccounts;
  const host = autofillDemo;
  await goto(page, `${host.base}/`);
  await ensurePaired(page);
  await pageFetch(page, 'POST', '/api/logout', {});
  await goto(page, `${host.base}/`); // signed out: the page arms its own autofill request

  // A second conditional request replaces the first (AbortError at once), and the page
  // itself shows no error for it.
  const first = await pageFetch(page, 'POST', '/api/login/options', {});
  await startConditional(page, 'first', first.body);
  const second = await pageFetch(page, 'POST', '/api/login/options', {});
  await startConditional(page, 'second', second.body);
  await page.waitForFunction(() => globalThis.conditional.first.outcome !== 'pending', null, { timeout: STEP_MS });
  const replaced = await conditionalState(page, 'first');
  assert.equal(replaced.outcome, 'AbortError');
  assert.match(replaced.message, /replaced/);
  assert.equal((await conditionalState(page, 'second')).outcome, 'pending');
  assert.notEqual(await page.getAttribute('#status', 'class'), 'error');

  // An immediate get (the username sign-in) while it waits: it runs as usual.
  const immediateFrom = host.pinentry.dialogs().length;
  const byName = await pageFetch(page, 'POST', '/api/login/options', { username: grace.name });
  const immediate = await withTimeout(page.evaluate(async (pk) => {
    const credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(pk) });
    return credential.toJSON();
  }, byName.body), 'immediate get', 30_000);
  assert.equal(immediate.id, grace.credentialId);
  const verified = await pageFetch(page, 'POST', '/api/login/verify', immediate);
  assert.equal(verified.status, 200, JSON.stringify(verified.body));
  assert.equal(verified.body.user.name, grace.name);
  assert.deepEqual(host.pinentry.dialogs().slice(immediateFrom).map((d) => d.command), ['GETPIN']);
  assert.equal((await conditionalState(page, 'second')).outcome, 'pending', 'the conditional request still waits');
  await pageFetch(page, 'POST', '/api/logout', {});

  // The person dismisses the autofill prompt: the request keeps waiting; focusing again
  // (the window regaining focus) or typing does not bring the prompt back; a click does.
  const dismissFrom = host.pinentry.dialogs().length;
  // (Both accounts are in the bridge's record: the prompt is the choice, dismissed there.)
  host.pinentry.direct({ script: { CONFIRM: ['cancel'] } });
  await page.focus('#signin-username');
  await host.pinentry.waitForDialogs(dismissFrom + 1);
  await sleep(500);
  await page.focus('#signup-username');
  await page.focus('#signin-username');
  await page.locator('#signin-username').pressSequentially('ad', { delay: 20 });
  await sleep(800);
  assert.equal(host.pinentry.dialogs().length, dismissFrom + 1, 'no prompt from refocusing or typing');
  assert.equal((await conditionalState(page, 'second')).outcome, 'pending');
  await shot(page, 'index-autofill-dismissed');
  host.pinentry.direct({ script: { CONFIRM: ['ok'] } }); // the first listed: Grace, used last
  await page.click('#signin-username');
  await page.waitForFunction(() => globalThis.conditional.second.outcome !== 'pending', null, { timeout: STEP_MS });
  const picked = await conditionalState(page, 'second');
  assert.equal(picked.outcome, 'credential', JSON.stringify(picked));
  assert.equal(picked.json.response.userHandle, grace.userId);
  assert.deepEqual(host.pinentry.dialogs().slice(dismissFrom).map((d) => [d.command, d.answer]),
    [['CONFIRM', 'cancel'], ['CONFIRM', 'ok'], ['GETPIN', 'pin']]);
  const signedIn = await pageFetch(page, 'POST', '/api/login/verify', picked.json);
  assert.equal(signedIn.status, 200, JSON.stringify(signedIn.body));
  assert.equal(signedIn.body.user.name, grace.name);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).body.user.name, grace.name);
  assert.ok(ada.name !== grace.name);
  await shot(page, 'index-autofill-picked-after-click');
}, { on: () => autofillDemo, autofill: true });
