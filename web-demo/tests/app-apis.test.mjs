// The app APIs page (site/app-apis.html) on `passgate demo`, through the webview shim and the
// local bridge — the same channel, pairing and trusted prompt as the passkeys — in headless
// Chromium: biometric status, a proof checked by the relying party and independently here,
// a vault stored, locked and unlocked with the PIN typed in passgate's prompt (a scripted
// pinentry standing in for the person), cancelled prompts and a page abort with the codes apps
// expect, a page of another origin that cannot reach the first origin's vault, and a forged
// origin in page script that changes nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createPublicKey, verify as verifySignature } from 'node:crypto';
import {
  startDemo, startRelay, launchBrowser, screenshots, withTimeout, httpRequest, freePort, STEP_MS,
} from './harness.mjs';
import { goto, statusText } from './flows.mjs';

const JOURNEY_TIMEOUT_MS = 120_000;
const VAULT = 'journey-vault';

let demo;
let relay;
let browser;
const durations = [];

before(async () => {
  // A second origin the bridge pairs (its own app, say): a relay on http://localhost:RELAY in
  // front of the demo's pages.
  const relayPort = await freePort();
  demo = await startDemo({ extraArgs: ['--bridge-allow-origin', `http://localhost:${relayPort}`] });
  relay = await startRelay(demo.port, relayPort);
  browser = await launchBrowser();
});

after(async () => {
  await browser?.stop();
  await relay?.stop();
  await demo?.stop();
  for (const [name, ms] of durations) console.log(`journey app-apis ${name}: ${ms} ms`);
});

function journey(name, body) {
  test(name, { timeout: JOURNEY_TIMEOUT_MS }, async () => {
    const start = performance.now();
    const shot = screenshots(`app-apis-${name.split(':')[0]}`);
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
      console.log(`journey "app-apis ${name}" took ${ms} ms`);
    }
  });
}

/** The pinentry dialogs shown while `action` runs. */
async function dialogsDuring(action) {
  const before = demo.pinentry.dialogs().length;
  const result = await action();
  return { result, dialogs: demo.pinentry.dialogs().slice(before) };
}

/** Pairs the page (of any allowed origin) through its "Use passgate's authenticator" dialog. */
async function pair(page) {
  if ((await page.getAttribute('#authenticator-choice', 'data-kind')) === 'passgate') return;
  await page.click('#use-passgate');
  await page.locator('#pair-dialog[open]').waitFor();
  await page.fill('#pair-url', demo.bridgeUrl);
  await page.fill('#pair-code', demo.pairingCode);
  await page.click('#pair-submit');
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
}

async function openPage(page, base = demo.base) {
  await goto(page, `${base}/app-apis.html`);
  await pair(page);
  await page.fill('#api-token', demo.apiToken);
}

const sha256 = (data) => createHash('sha256').update(data).digest();

/** Runs page code that uses passgate-app.js over the shim's channel, with a timeout. */
function inPage(page, what, fn, arg, ms = STEP_MS) {
  return withTimeout(page.evaluate(fn, arg), what, ms);
}

journey('1-status-proof: checkStatus, authenticate with a proof verified by the relying party and here', async ({ page, shot }) => {
  await goto(page, `${demo.base}/app-apis.html`);
  assert.equal(await page.getAttribute('#authenticator-choice', 'data-kind'), 'browser');
  await statusText(page, 'pair this page');
  assert.equal(await page.innerText('#caller'), demo.base);
  await shot(page, 'app-apis-unpaired');
  await openPage(page);

  await page.click('#bio-status');
  await statusText(page, 'not available here');
  assert.deepEqual(
    [await page.innerText('#bio-available'), await page.innerText('#bio-type'), await page.innerText('#bio-error-code')],
    ['no', 'None', 'biometryNotAvailable'],
  );
  assert.match(await page.innerText('#status'), /biometryNotAvailable: no biometric sensor is available\)\. The PIN can stand in for it\./);
  await shot(page, 'app-apis-status');

  // authenticate: the proof key is made on first use (presence approved in the prompt); no
  // sensor and no PIN yet, so passgate's prompt asks for a new PIN, twice, then for approval.
  const { dialogs } = await dialogsDuring(async () => {
    await page.click('#bio-authenticate');
    await statusText(page, 'Verified by your PIN');
  });
  assert.deepEqual(dialogs.map((d) => [d.command, d.prompt ?? null, d.answer]), [
    ['CONFIRM', null, 'ok'], ['GETPIN', 'New PIN:', 'pin'], ['GETPIN', 'Repeat:', 'pin'], ['CONFIRM', null, 'ok'],
  ]);
  const rpId = `passgate-app:${demo.base}`;
  assert.ok(dialogs[0].description.startsWith(`The page ${demo.base} asks to create a key as “proof key” for its biometric checks or vault. Create it?`), dialogs[0].description);
  assert.ok(dialogs[1].description.startsWith(`${demo.base} asks for your passgate PIN.\nReason: Sign in to the demo`), dialogs[1].description);
  assert.match(dialogs[1].description, /passgate has no PIN yet/);
  assert.ok(dialogs[3].description.startsWith(`The page ${demo.base} asks to use its key as “proof key” (a biometric check or opening its vault). Allow?`), dialogs[3].description);
  assert.ok(!dialogs.some((d) => (d.description ?? '').includes('passgate-app:')), 'no prompt shows the internal RP ID');
  const verdict = await page.innerText('#bio-verified');
  assert.equal(verdict, `verified by the relying party: user verified yes, origin ${demo.base}`);
  assert.equal(await page.innerText('#bio-method'), 'your PIN');
  await page.click('#bio-proof-details summary');
  await shot(page, 'app-apis-proof-verified');

  // The same proof, checked here without passgate's code: ES256 over authenticatorData ||
  // SHA-256(clientDataJSON) with the SPKI key, UV set, the caller's origin and RP ID.
  const proof = JSON.parse(await page.textContent('#bio-proof'));
  const challenge = await page.innerText('#bio-challenge');
  const r = proof.credential.response;
  const authData = Buffer.from(r.authenticatorData, 'base64url');
  const clientDataJSON = Buffer.from(r.clientDataJSON, 'base64url');
  assert.deepEqual(JSON.parse(clientDataJSON), { type: 'webauthn.get', challenge, origin: demo.base, crossOrigin: false });
  assert.equal(proof.key.rpId, rpId);
  assert.equal(proof.key.origin, demo.base);
  assert.deepEqual(authData.subarray(0, 32), sha256(rpId));
  assert.equal(authData[32] & 0x05, 0x05, 'UP and UV');
  const key = createPublicKey({ key: Buffer.from(proof.key.publicKey, 'base64url'), format: 'der', type: 'spki' });
  const signed = Buffer.concat([authData, sha256(clientDataJSON)]);
  const signature = Buffer.from(r.signature, 'base64url');
  assert.equal(verifySignature('sha256', signed, key, signature), true);
  const tampered = Buffer.from(signed);
  tampered[33] ^= 1;
  assert.equal(verifySignature('sha256', tampered, key, signature), false);

  // The relying party's check fails when it should: another challenge, no token.
  const body = {
    credential: { id: proof.key.credentialId, publicKey: proof.key.publicKeyCose, signCount: 0, userHandle: r.userHandle },
    response: proof.credential,
    expectedChallenge: Buffer.alloc(32, 7).toString('base64url'),
    expectedOrigins: [demo.base],
    expectedRpId: rpId,
  };
  const json = { 'content-type': 'application/json' };
  let res = await httpRequest(`${demo.base}/api/verify/assertion`, { headers: { ...json, authorization: `Bearer ${demo.apiToken}` }, body });
  assert.equal(res.status, 400, JSON.stringify(res.body));
  assert.equal(res.body.error.code, 'challenge_mismatch');
  res = await httpRequest(`${demo.base}/api/verify/assertion`, { headers: json, body: { ...body, expectedChallenge: challenge } });
  assert.deepEqual([res.status, res.body.error.code], [401, 'invalid_api_token']);
  res = await httpRequest(`${demo.base}/api/verify/assertion`, { headers: { ...json, authorization: `Bearer ${demo.apiToken}` }, body: { ...body, expectedChallenge: challenge } });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  assert.equal(res.body.verdict.userVerified, true);
});

journey('2-vault: store, lock, unlock with the PIN in passgate\'s prompt, the value back', async ({ page, shot }) => {
  await openPage(page);
  await page.fill('#vault-id', VAULT);
  await page.selectOption('#vault-mode', 'BiometricAndPasscode');
  await page.fill('#vault-key', 'refreshToken');
  await page.fill('#vault-value', '{"token": "r-2f9c1e", "expires": 3600}');

  // The first write makes the vault key: the PIN (set in journey 1), then approval.
  const stored = await dialogsDuring(async () => {
    await page.click('#vault-store');
    await statusText(page, `Stored “refreshToken” in the vault ${VAULT}`);
  });
  assert.deepEqual(stored.dialogs.map((d) => [d.command, d.prompt ?? null]), [['GETPIN', 'PIN:'], ['CONFIRM', null]]);
  assert.ok(stored.dialogs[0].description.startsWith(`${demo.base} asks for your passgate PIN.\nReason: open the vault “${VAULT}” of demo`), stored.dialogs[0].description);
  assert.equal(await page.innerText('#vault-locked'), 'no');
  assert.equal(await page.innerText('#vault-keys'), 'refreshToken');
  await shot(page, 'app-apis-vault-stored');

  await page.click('#vault-lock');
  await statusText(page, 'is locked');
  assert.equal(await page.innerText('#vault-locked'), 'yes');
  assert.equal(await page.innerText('#vault-keys'), 'hidden while locked');
  assert.deepEqual((await page.locator('#vault-events li').allInnerTexts()).map((t) => t.replace(/^.*?: /, '')),
    [`${VAULT} unlocked`, `${VAULT} locked`]);
  await page.click('#vault-get');
  const refused = await statusText(page, 'VaultLocked');
  assert.match(refused, /The vault is locked: unlock it first/);
  await shot(page, 'app-apis-vault-locked');

  const unlocked = await dialogsDuring(async () => {
    await page.click('#vault-unlock');
    await statusText(page, `The vault ${VAULT} is unlocked`);
  });
  assert.deepEqual(unlocked.dialogs.map((d) => [d.command, d.prompt ?? null, d.answer]), [['GETPIN', 'PIN:', 'pin'], ['CONFIRM', null, 'ok']]);
  await page.click('#vault-get');
  await statusText(page, 'Read “refreshToken”');
  assert.deepEqual(JSON.parse(await page.innerText('#vault-read')), { token: 'r-2f9c1e', expires: 3600 });
  assert.equal(await page.innerText('#vault-attempts'), '5');
  await shot(page, 'app-apis-vault-unlocked');
});

journey('3-cancelled: a cancelled or denied prompt is UserCanceledInteraction / userCancel; an abort closes the prompt', async ({ page, shot }) => {
  await openPage(page);
  await page.fill('#vault-id', VAULT);
  await page.click('#vault-lock');
  await statusText(page, 'is locked');

  // Cancel at the PIN prompt.
  demo.pinentry.direct({ script: { GETPIN: ['cancel'] } });
  await page.click('#vault-unlock');
  let text = await statusText(page, 'UserCanceledInteraction');
  assert.match(text, /The vault refused: The request was cancelled in passgate’s prompt/);
  assert.equal(await page.innerText('#vault-locked'), 'yes');
  await shot(page, 'app-apis-vault-unlock-cancelled');
  // The right PIN, then "Deny" at the approval.
  demo.pinentry.direct({ script: { CONFIRM: ['cancel'] } });
  const denied = await dialogsDuring(async () => {
    await page.click('#vault-unlock');
    return statusText(page, 'UserCanceledInteraction');
  });
  assert.deepEqual(denied.dialogs.map((d) => [d.command, d.answer]), [['GETPIN', 'pin'], ['CONFIRM', 'cancel']]);
  // Neither counted as a failed unlock.
  await page.click('#vault-get');
  await statusText(page, 'VaultLocked');
  assert.equal(await page.innerText('#vault-attempts'), '5');

  // A biometric check cancelled in the prompt.
  demo.pinentry.direct({ script: { GETPIN: ['cancel'] } });
  await page.click('#bio-authenticate');
  text = await statusText(page, 'userCancel');
  assert.match(text, /The biometric check failed: The request was cancelled in passgate’s prompt/);
  await shot(page, 'app-apis-biometric-cancelled');

  // The page aborts while the prompt waits: AbortError at once, and passgate closes the prompt.
  demo.pinentry.direct({ script: { GETPIN: [{ hang: true }] } });
  const before = demo.pinentry.dialogs().length;
  const aborted = page.evaluate(async () => {
    const { createPassgateApp, webviewChannel } = await import('/passgate-app.js');
    const { biometric } = createPassgateApp(webviewChannel());
    const controller = new AbortController();
    globalThis.abortTheCheck = () => controller.abort();
    const started = performance.now();
    try {
      await biometric.authenticate('Abort me', { allowDeviceCredential: true, signal: controller.signal });
      return { ok: true };
    } catch (e) {
      return { ok: false, name: e.name, ms: performance.now() - started };
    }
  });
  const dialogs = await demo.pinentry.waitForDialogs(before + 1);
  const { pid } = dialogs[before];
  await inPage(page, 'abort', () => globalThis.abortTheCheck());
  const result = await withTimeout(aborted, 'aborted authenticate');
  assert.deepEqual({ ok: result.ok, name: result.name }, { ok: false, name: 'AbortError' });
  const deadline = Date.now() + 5_000;
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  while (alive()) {
    if (Date.now() > deadline) throw new Error(`the pinentry (pid ${pid}) was not closed after the abort`);
    await new Promise((r) => setTimeout(r, 25));
  }

  // And the vault opens again with the PIN.
  demo.pinentry.direct({});
  await page.click('#vault-unlock');
  await statusText(page, `The vault ${VAULT} is unlocked`);
  await page.click('#vault-get');
  await statusText(page, 'Read “refreshToken”');
  assert.deepEqual(JSON.parse(await page.innerText('#vault-read')), { token: 'r-2f9c1e', expires: 3600 });
});

journey('4-other-origin: another origin cannot reach the first origin\'s vault or keys', async ({ page, shot }) => {
  // (a) An origin the bridge does not allow (the demo's own server as http://127.0.0.1:PORT):
  // pairing is refused, so none of its app calls reach passgate.
  await goto(page, `${demo.ipBase}/app-apis.html`);
  await page.click('#use-passgate');
  await page.fill('#pair-url', demo.bridgeUrl);
  await page.fill('#pair-code', demo.pairingCode);
  await page.click('#pair-submit');
  await page.locator('#pair-error', { hasText: 'Pairing failed' }).waitFor();
  await shot(page, 'ip-origin-pairing-refused');
  const json = { 'content-type': 'application/json' };
  let r = await httpRequest(`${demo.bridgeUrl}/v1/message`, { headers: { ...json, origin: demo.ipBase }, body: { type: 'vault.getKeys', vaultId: VAULT } });
  assert.deepEqual([r.status, r.body.error.code], [403, 'origin_not_allowed']);

  // (b) An origin the bridge pairs (the relay, allowed with --bridge-allow-origin): its own
  // vaults. The same vault ID is another vault, with nothing in it.
  await goto(page, `${demo.base}/app-apis.html`);
  const demoToken = await inPage(page, 'token', () => JSON.parse(localStorage.getItem('passgate.localBridge')).token);
  const before = demo.pinentry.dialogs().length;
  await openPage(page, relay.base);
  assert.equal(await page.innerText('#caller'), relay.base);
  await page.fill('#vault-id', VAULT);
  await page.fill('#vault-key', 'refreshToken');
  await page.click('#vault-get');
  await statusText(page, `The vault ${VAULT} holds no “refreshToken”`);
  assert.equal(await page.innerText('#vault-read'), 'no such value');
  assert.equal(await page.innerText('#vault-keys'), 'none');
  assert.equal(await page.innerText('#vault-locked'), 'no');
  await shot(page, 'relay-origin-own-empty-vault');
  // Its page script cannot name the first origin as the caller, nor use its token.
  const attempts = await inPage(page, 'forged callers', async ([first, vaultId, token, bridge]) => {
    const forged = [];
    for (const member of ['origin', 'caller']) {
      forged.push(await globalThis.passgateWebview.request('vault.getKeys', { vaultId, [member]: first }));
    }
    const key = await globalThis.passgateWebview.request('biometric.getProofKey', {});
    const stolen = await fetch(`${bridge}/v1/message`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ type: 'vault.getKeys', requestId: 's', vaultId }),
    });
    return { forged, key: key.result, stolen: { status: stolen.status, body: await stolen.json() } };
  }, [demo.base, VAULT, demoToken, demo.bridgeUrl]);
  for (const reply of attempts.forged) assert.equal(reply.error.code, 'invalidRequest', JSON.stringify(reply));
  assert.equal(attempts.key.origin, relay.base);
  assert.equal(attempts.key.rpId, `passgate-app:${relay.base}`);
  assert.deepEqual([attempts.stolen.status, attempts.stolen.body.error.code], [401, 'pairing_invalid']);
  assert.deepEqual(demo.pinentry.dialogs().slice(before).map((d) => d.command), ['CONFIRM'],
    'only the relay\'s own proof key was made (presence approved); nothing asked for the first origin\'s vault');

  // The first origin's vault is as it was.
  await openPage(page);
  await page.fill('#vault-id', VAULT);
  await page.click('#vault-get');
  await statusText(page, 'Read “refreshToken”');
  assert.deepEqual(JSON.parse(await page.innerText('#vault-read')), { token: 'r-2f9c1e', expires: 3600 });
});

journey('5-forged-origin: an origin named in page script, or a forged Origin header, is ignored', async ({ page, shot }) => {
  await openPage(page);
  const outcome = await inPage(page, 'forged origins', async ([other, bridge]) => {
    const named = await globalThis.passgateWebview.request('biometric.getProofKey', { origin: other });
    const { token } = JSON.parse(localStorage.getItem('passgate.localBridge'));
    // Origin is a forbidden header: the browser sends the page's own.
    const response = await fetch(`${bridge}/v1/message`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, origin: other },
      body: JSON.stringify({ type: 'biometric.getProofKey', requestId: 'direct' }),
    });
    return { named, direct: await response.json() };
  }, [relay.base, demo.bridgeUrl]);
  assert.equal(outcome.named.error.code, 'invalidRequest');
  assert.match(outcome.named.error.message, /unknown field `origin`/);
  assert.equal(outcome.direct.ok, true, JSON.stringify(outcome.direct));
  assert.equal(outcome.direct.result.result.origin, demo.base);
  assert.equal(outcome.direct.result.result.rpId, `passgate-app:${demo.base}`);
  // A non-browser client can forge Origin, but has no token.
  const json = { 'content-type': 'application/json' };
  let r = await httpRequest(`${demo.bridgeUrl}/v1/message`, { headers: { ...json, origin: demo.base }, body: { type: 'vault.getKeys', vaultId: VAULT } });
  assert.deepEqual([r.status, r.body.error.code], [401, 'pairing_required']);
  r = await httpRequest(`${demo.bridgeUrl}/v1/message`, { headers: { ...json, origin: demo.base, authorization: `Bearer ${Buffer.alloc(32).toString('base64url')}` }, body: { type: 'vault.getKeys', vaultId: VAULT } });
  assert.deepEqual([r.status, r.body.error.code], [401, 'pairing_stale']);
  await shot(page, 'app-apis-forged-origin-ignored');
});

journey('6-soter: without a fingerprint sensor SOTER says so (90001); the RP\'s SOTER API takes the demo token only', async ({ page, shot }) => {
  await openPage(page);
  await page.locator('#soter-support', { hasText: 'no:' }).waitFor();
  await page.click('#soter-start');
  const text = await statusText(page, 'errCode 90001');
  assert.match(text, /SOTER failed: passgate said: “startSoterAuthentication:fail not support soter”/);
  await shot(page, 'app-apis-soter-unsupported');
  const json = { 'content-type': 'application/json' };
  let r = await httpRequest(`${demo.base}/api/soter/challenge`, { headers: json, body: { uid: demo.base } });
  assert.deepEqual([r.status, r.body.error.code], [401, 'invalid_api_token']);
  r = await httpRequest(`${demo.base}/api/soter/challenge`, { headers: { ...json, authorization: `Bearer ${demo.apiToken}` }, body: { uid: demo.base } });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(Buffer.from(r.body.challenge, 'base64url').length, 32);
});
