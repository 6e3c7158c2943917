// The demo pages on `passgate demo`, answered by passgate's own authenticator through the
// webview shim (web-demo/site/shim/passgate-webview.js) and the local HTTP bridge: pairing,
// sign-up, sign-in by username and discoverable, rename and delete, an approved action, with
// user verification really performed (the PIN typed into the trusted prompt, here a scripted
// pinentry standing in for the person), cancelled prompts, and every way another origin could
// try to get an assertion for the demo's RP ID.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, verify as verifySignature } from 'node:crypto';
import {
  startDemo, startRelay, launchBrowser, screenshots, pageFetch, captureResponse, attestedFlags,
  assertionFlags, withTimeout, httpRequest, authenticatorOptions, STEP_MS, PASSGATE_AAGUID,
} from './harness.mjs';
import {
  username, goto, statusText, clientData, signUp, signOut, signIn, rename, deletePasskey, approve,
} from './flows.mjs';

const JOURNEY_TIMEOUT_MS = 120_000;
const VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';

let demo;
let browser;
const durations = [];
let registered; // { name, credentialId } from journey 1

before(async () => {
  demo = await startDemo();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.stop();
  await demo?.stop();
  for (const [name, ms] of durations) console.log(`journey shim ${name}: ${ms} ms`);
});

function journey(name, body) {
  test(name, { timeout: JOURNEY_TIMEOUT_MS }, async () => {
    const start = performance.now();
    const shot = screenshots(`shim-${name.split(':')[0]}`);
    demo.pinentry.direct({}); // the person types the PIN and approves, unless a journey says otherwise
    const page = await withTimeout(browser.context.newPage(), 'new page');
    page.setDefaultTimeout(STEP_MS);
    page.setDefaultNavigationTimeout(STEP_MS);
    try {
      await body({ page, shot });
    } catch (e) {
      await shot(page, 'failure').catch(() => {});
      console.log(`demo log (tail):\n${demo.log.slice(-20).join('\n')}`);
      console.log(`pinentry dialogs (tail):\n${JSON.stringify(demo.pinentry.dialogs().slice(-6), null, 1)}`);
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
    { uvpaa: true, conditional: false, channel: 'http' });
  assert.equal(features.capabilities.userVerifyingPlatformAuthenticator, true);
  assert.equal(features.capabilities['extension:prf'], true);

  // Sign up: passgate has no PIN yet, so its prompt asks for a new one twice, then for
  // approval; the RP (UV required) accepts the attestation.
  const name = username('grace');
  const { result: reg, dialogs } = await dialogsDuring(() => signUp(page, demo.base, name, 'Grace Hopper'));
  assert.deepEqual(dialogs.map((d) => [d.command, d.prompt ?? null]), [['GETPIN', 'New PIN:'], ['GETPIN', 'Repeat:'], ['CONFIRM', null]]);
  assert.ok(dialogs[0].description.includes(`${demo.base} wants to create a passkey for “${name}” on localhost.`), dialogs[0].description);
  assert.match(dialogs[0].description, /no PIN yet/);
  assert.match(dialogs[2].description, new RegExp(`^Create a passkey for localhost as “${name}”\\?`));
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

  // Sign in by username: the PIN, then approval, both in the trusted prompt.
  const byName = await dialogsDuring(() => signIn(page, demo.base, name));
  assert.deepEqual(byName.dialogs.map((d) => d.command), ['GETPIN', 'CONFIRM']);
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
  assert.deepEqual(discoverable.dialogs.map((d) => d.command), ['GETPIN', 'CONFIRM']);
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
  assert.match(text, /cancelled or timed out/);
  assert.match(text, /passgate said/);
  assert.equal(verifyCalls, 0);
  const lookup = await pageFetch(page, 'POST', '/api/login/options', { username: name });
  assert.ok(lookup.status >= 400 && lookup.status < 500, JSON.stringify(lookup));
  assert.match(lookup.body.error.code, /unknown_user|no_credentials/);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  await shot(page, 'index-sign-up-cancelled');

  // Sign-in denied at the approval prompt (the PIN was right).
  demo.pinentry.direct({ script: { CONFIRM: ['cancel'] } });
  const denied = await dialogsDuring(async () => {
    const before = demo.pinentry.dialogs().length;
    await page.fill('#signin-username', registered.name);
    await page.click('#signin-button');
    await demo.pinentry.waitForDialogs(before + 2);
    await page.locator('#status', { hasText: 'Approve the sign-in' }).waitFor({ state: 'detached' }).catch(() => {});
    return statusText(page, 'NotAllowedError');
  });
  assert.deepEqual(denied.dialogs.map((d) => [d.command, d.answer]), [['GETPIN', 'pin'], ['CONFIRM', 'cancel']]);
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

  // passgate already holds a passkey for this account: excluded, after the person approved.
  const excluded = await dialogsDuring(async () => {
    await page.click('#add');
    return statusText(page, 'InvalidStateError');
  });
  assert.match(excluded.result, /already registered/);
  assert.deepEqual(excluded.dialogs.map((d) => d.command), ['GETPIN', 'CONFIRM']);
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

  // passgate again: pair once more and delete the browser's passkey, re-authenticating with
  // passgate's.
  await pairThroughPage(page);
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
  const second = added.result.body.credential;
  const removal = await dialogsDuring(() => deletePasskey(page, second.id, second.name));
  assert.equal(removal.result.reauth.status, 200);
  assert.equal(removal.result.reauth.request.id, registered.credentialId);
  assert.equal(assertionFlags(removal.result.reauth.request).uv, true);
  assert.equal(clientData(removal.result.reauth.request).origin, demo.base);
  assert.equal(removal.result.deleted.status, 200);
  assert.deepEqual(removal.result.deleted.body, { deleted: second.id });
  assert.deepEqual(removal.dialogs.map((d) => d.command), ['GETPIN', 'CONFIRM']);
  await statusText(page, `Deleted “${second.name}”`);
  await page.waitForFunction(() => document.querySelectorAll('#passkeys tr').length === 1);
  await shot(page, 'account-after-delete');

  // The last passkey: re-authenticated, then refused by the server.
  const last = await deletePasskey(page, registered.credentialId, 'passgate laptop');
  assert.equal(last.reauth.status, 200);
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
  assert.deepEqual(dialogs.map((d) => d.command), ['GETPIN', 'CONFIRM']);
  const signed = approved.body.receipt;
  const receipt = JSON.parse(signed.receiptJson);
  assert.equal(receipt.payload, payload);
  assert.equal(receipt.userVerified, true);
  assert.equal(receipt.userName, registered.name);
  assert.equal(receipt.credentialId, registered.credentialId);
  assert.equal(receipt.origin, demo.base);
  assert.equal(receipt.payloadSha256, createHash('sha256').update(payload).digest('base64url'));
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
    await shot(page, 'relay-stolen-token-refused');
    r = await httpRequest(message, { headers: { ...json, origin: relay.base, authorization: `Bearer ${token}` }, body: { type: 'isUvpaa', requestId: 1 } });
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'origin_not_allowed');
  } finally {
    await relay.stop();
  }

  // (c) A non-browser client forging the demo's Origin: without pairing, with a made-up token,
  // with a wrong code — refused.
  r = await httpRequest(message, { headers: { ...json, origin: demo.base }, body: { type: 'get', requestId: 1, options: { challenge: 'AAAA' } } });
  assert.deepEqual([r.status, r.body.error.code], [401, 'pairing_required']);
  r = await httpRequest(message, { headers: { ...json, origin: demo.base, authorization: `Bearer ${Buffer.alloc(32).toString('base64url')}` }, body: { type: 'get', requestId: 1, options: { challenge: 'AAAA' } } });
  assert.deepEqual([r.status, r.body.error.code], [401, 'pairing_invalid']);
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
