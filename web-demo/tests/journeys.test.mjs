// The demo's journeys in headless Chromium against `passgate rp`: each test clicks through the
// real pages with a CDP virtual authenticator, asserts on what the page shows and what the
// server answered, and writes a full-page screenshot of every page it visits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, verify as verifySignature } from 'node:crypto';
import {
  startRp, startRelay, launchBrowser, newJourneyPage, addAuthenticator, screenshots, pageFetch,
  captureResponse, attestedFlags, assertionFlags, withTimeout, STEP_MS,
} from './harness.mjs';

const JOURNEY_TIMEOUT_MS = 90_000;
// Chromium's virtual authenticator (ctap2, internal) reports this AAGUID.
const VIRTUAL_AAGUID = '01020304-0506-0708-0102-030405060708';

let rp;
let browser;
const durations = [];

before(async () => {
  rp = await startRp();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.stop();
  await rp?.stop();
  for (const [name, ms] of durations) console.log(`journey ${name}: ${ms} ms`);
});

/** One journey: a test with its own timeout, page and authenticator; timed; server log on failure. */
function journey(name, options, body) {
  test(name, { timeout: JOURNEY_TIMEOUT_MS }, async () => {
    const start = performance.now();
    const slug = name.split(':')[0];
    const shot = screenshots(slug);
    const session = await newJourneyPage(browser.context, options);
    try {
      await body({ ...session, shot });
    } catch (e) {
      await shot(session.page, 'failure').catch(() => {});
      console.log(`server log (tail):\n${rp.log.slice(-15).join('\n')}`);
      throw e;
    } finally {
      await withTimeout(session.page.close(), 'close page').catch(() => {});
      const ms = Math.round(performance.now() - start);
      durations.push([name, ms]);
      console.log(`journey "${name}" took ${ms} ms`);
    }
  });
}

let users = 0;
function username(prefix) {
  users += 1;
  return `${prefix}-${users}-${Date.now().toString(36)}`;
}

async function statusText(page, pattern) {
  await page.locator('#status').filter({ hasText: pattern }).waitFor({ timeout: STEP_MS });
  return page.locator('#status').innerText();
}

async function goto(page, url) {
  await withTimeout(page.goto(url, { waitUntil: 'load' }), `goto ${url}`);
}

/** Signs up on the index page; returns the register/verify exchange. */
async function signUp(page, base, name, displayName, { keyboard = false } = {}) {
  await goto(page, `${base}/`);
  let submit;
  if (keyboard) {
    // Keyboard only: focus the field, type, Tab to the next field, Enter submits the form.
    await page.focus('#signup-username');
    await page.keyboard.type(name);
    await page.keyboard.press('Tab');
    assert.equal(await withTimeout(page.evaluate(() => document.activeElement.id), 'active element'), 'signup-display');
    await page.keyboard.type(displayName);
    submit = () => page.keyboard.press('Enter');
  } else {
    await page.fill('#signup-username', name);
    await page.fill('#signup-display', displayName);
    submit = () => page.click('#signup-button');
  }
  const exchange = await captureResponse(page, 'POST', '/api/register/verify', submit);
  assert.equal(exchange.status, 200, JSON.stringify(exchange.body));
  await statusText(page, `Welcome, ${displayName}`);
  await page.waitForURL(`${base}/account.html`, { timeout: STEP_MS });
  await page.locator('#passkeys tr').first().waitFor();
  return exchange;
}

async function signOut(page, base) {
  await page.click('#signout');
  await page.waitForURL(`${base}/`, { timeout: STEP_MS });
  await page.locator('#signup-button').waitFor();
}

function cellText(page, row, cls) {
  return page.locator('#passkeys tr').nth(row).locator(`td.${cls}`).innerText();
}

journey('1-sign-up: with the virtual authenticator (ctap2/internal, resident key, UV)', {}, async ({ page, cdp, authenticatorId, shot }) => {
  const name = username('ada');
  await goto(page, `${rp.base}/`);
  assert.equal(await page.getAttribute('#signin-username', 'autocomplete'), 'username webauthn');
  await shot(page, 'index');

  const reg = await signUp(page, rp.base, name, 'Ada Lovelace', { keyboard: true });
  // What the authenticator said in the attestation the page sent.
  const flags = attestedFlags(reg.request);
  assert.deepEqual({ up: flags.up, uv: flags.uv, be: flags.be, bs: flags.bs, at: flags.at },
    { up: true, uv: true, be: false, bs: false, at: true });
  assert.equal(reg.request.clientExtensionResults.credProps.rk, true);
  assert.deepEqual(reg.request.response.transports, ['internal']);
  // What the server recorded.
  assert.equal(reg.body.verified, true);
  assert.equal(reg.body.user.name, name);
  assert.equal(reg.body.user.displayName, 'Ada Lovelace');
  const c = reg.body.credential;
  assert.equal(c.backupEligible, false);
  assert.equal(c.backupState, false);
  assert.equal(c.deviceType, 'singleDevice');
  assert.equal(c.aaguid, VIRTUAL_AAGUID);
  assert.equal(flags.aaguid, VIRTUAL_AAGUID);
  assert.deepEqual(c.transports, ['internal']);
  assert.equal(c.algorithm, -7);
  assert.equal(c.lastUsedAt, null);
  assert.ok(c.authenticator.length > 0);
  const setCookie = reg.headers['set-cookie'] ?? '';
  assert.match(setCookie, /passgate_session=.+; HttpOnly; SameSite=Strict/);
  assert.match(setCookie, /Secure/);

  // The account page lists exactly that one passkey.
  assert.match(await page.innerText('#who'), new RegExp(`Signed in as Ada Lovelace \\(${name}\\)`));
  assert.equal(await page.locator('#passkeys tr').count(), 1);
  assert.equal(await page.innerText('#count'), '(1)');
  assert.equal(await cellText(page, 0, 'kind'), 'device-bound (not backed up)');
  assert.equal(await cellText(page, 0, 'transports'), 'internal');
  assert.match(await cellText(page, 0, 'authenticator'), new RegExp(`${c.authenticator}\\s+AAGUID ${VIRTUAL_AAGUID}`));
  assert.equal(await cellText(page, 0, 'last-used'), 'never');
  assert.equal(await page.locator('#authenticator dd[data-field="aaguid"]').innerText(), VIRTUAL_AAGUID);
  const list = await pageFetch(page, 'GET', '/api/credentials');
  assert.equal(list.status, 200);
  assert.equal(list.body.credentials.length, 1);
  assert.equal(list.body.credentials[0].id, c.id);
  assert.equal(list.body.credentials[0].current, true);
  await shot(page, 'account');

  // The authenticator holds one resident credential for RP ID localhost.
  const held = await withTimeout(cdp.send('WebAuthn.getCredentials', { authenticatorId }), 'getCredentials');
  assert.equal(held.credentials.length, 1);
  assert.equal(held.credentials[0].isResidentCredential, true);
  assert.equal(held.credentials[0].rpId, 'localhost');
  assert.equal(Buffer.from(held.credentials[0].credentialId, 'base64').toString('base64url'), c.id);
});

journey('2-username-sign-in: by username after signing out', { autofill: false }, async ({ page, shot }) => {
  const name = username('grace');
  const reg = await signUp(page, rp.base, name, 'Grace Hopper');
  await signOut(page, rp.base);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  await shot(page, 'index-signed-out');

  await page.fill('#signin-username', name);
  const options = page.waitForResponse((r) => r.url().endsWith('/api/login/options'));
  const login = await captureResponse(page, 'POST', '/api/login/verify', () => page.click('#signin-button'));
  const optionsResponse = await options;
  assert.deepEqual(JSON.parse(optionsResponse.request().postData()), { username: name });
  const optionsBody = await withTimeout(optionsResponse.json(), 'login options body');
  assert.equal(optionsBody.userVerification, 'required');
  assert.deepEqual(optionsBody.allowCredentials.map((a) => a.id), [reg.body.credential.id]);

  assert.equal(login.status, 200, JSON.stringify(login.body));
  assert.equal(login.body.verified, true);
  assert.equal(login.body.user.name, name);
  assert.equal(login.body.credential.id, reg.body.credential.id);
  assert.equal(login.body.verdict.userVerified, true);
  assert.equal(login.body.verdict.userPresent, true);
  assert.equal(login.body.verdict.origin, rp.base);
  assert.ok(login.body.credential.signCount > reg.body.credential.signCount);
  assert.deepEqual(assertionFlags(login.request), { up: true, uv: true, be: false, bs: false });
  assert.match(await statusText(page, `Signed in as ${name}`), /with your username and passkey, verified on your device/);
  assert.equal(await page.locator('#authenticator dd[data-field="user-verified"]').innerText(), 'yes');
  await shot(page, 'index-signed-in');

  await page.waitForURL(`${rp.base}/account.html`, { timeout: STEP_MS });
  await page.locator('#passkeys tr').first().waitFor();
  assert.notEqual(await cellText(page, 0, 'last-used'), 'never');
  const session = await pageFetch(page, 'GET', '/api/session');
  assert.equal(session.status, 200);
  assert.equal(session.body.user.name, name);
  assert.equal(session.body.credentialId, reg.body.credential.id);
  await shot(page, 'account');
});

journey('3-autofill-sign-in: by passkey autofill (conditional UI, discoverable, no username)', { spyMediation: true }, async ({ page, shot }) => {
  const name = username('alan');
  const reg = await signUp(page, rp.base, name, 'Alan Turing');
  await shot(page, 'account-after-sign-up');
  // Signing out lands on the sign-in page, which arms a conditional request; Chromium's virtual
  // environment answers it with the device's passkey as if it were picked from the suggestions.
  const optionsBodies = [];
  page.on('request', (r) => { if (r.url().endsWith('/api/login/options')) optionsBodies.push(r.postData()); });
  const login = await captureResponse(page, 'POST', '/api/login/verify', () => signOut(page, rp.base));
  assert.equal(login.status, 200, JSON.stringify(login.body));
  assert.deepEqual(optionsBodies, ['{}']);
  const gets = await withTimeout(page.evaluate(() => window.__credentialGets), 'read spy');
  assert.deepEqual(gets.map((g) => g.mediation), ['conditional']);
  assert.equal(await page.inputValue('#signin-username'), '');
  assert.equal(login.body.user.name, name);
  assert.equal(login.body.credential.id, reg.body.credential.id);
  assert.equal(login.request.response.userHandle, reg.body.user.id);
  assert.equal(login.body.verdict.userHandle, reg.body.user.id);
  assert.equal(login.body.verdict.userVerified, true);
  assert.match(await statusText(page, `Signed in as ${name}`), /with a passkey from autofill/);
  await shot(page, 'index-autofill-signed-in');
  await page.waitForURL(`${rp.base}/account.html`, { timeout: STEP_MS });
  await page.locator('#passkeys tr').first().waitFor();
  assert.equal((await pageFetch(page, 'GET', '/api/session')).body.user.name, name);
  await shot(page, 'account');
});

journey('4-manage-passkeys: rename, add a second, delete after re-auth, last one refused', {}, async ({ page, cdp, shot }) => {
  const name = username('hedy');
  const reg = await signUp(page, rp.base, name, 'Hedy Lamarr');
  const firstId = reg.body.credential.id;

  // Rename: a blank name is refused by the server, a real one is kept.
  await page.click(`button[aria-label="Rename ${reg.body.credential.name}"]`);
  await page.fill('#rename-input', '   ');
  const blank = await captureResponse(page, 'PATCH', `/api/credentials/${firstId}`, () => page.click('#rename-save'));
  assert.equal(blank.status, 400);
  assert.equal(blank.body.error.code, 'invalid_name');
  assert.match(await statusText(page, 'invalid_name'), new RegExp(blank.body.error.message));
  await page.click(`button[aria-label="Rename ${reg.body.credential.name}"]`);
  await page.fill('#rename-input', 'Work laptop');
  const renamed = await captureResponse(page, 'PATCH', `/api/credentials/${firstId}`, () => page.click('#rename-save'));
  assert.equal(renamed.status, 200);
  assert.deepEqual(renamed.body, { id: firstId, name: 'Work laptop' });
  await statusText(page, 'to “Work laptop”');
  assert.equal(await page.locator('#passkeys .name').first().innerText(), 'Work laptop');
  await shot(page, 'account-renamed');

  // Adding a passkey on the same authenticator: it already holds one (excludeCredentials).
  await page.click('#add');
  assert.match(await statusText(page, 'InvalidStateError'), /already registered/);
  await shot(page, 'account-already-registered');

  // A second authenticator (a USB security key) registers the second passkey.
  await addAuthenticator(cdp, { transport: 'usb' });
  const added = await captureResponse(page, 'POST', '/api/register/verify', () => page.click('#add'));
  assert.equal(added.status, 200, JSON.stringify(added.body));
  assert.deepEqual(added.body.credential.transports, ['usb']);
  assert.equal(added.headers['set-cookie'], undefined);
  await statusText(page, 'Added');
  await page.locator('#passkeys tr').nth(1).waitFor();
  assert.equal(await page.locator('#passkeys tr').count(), 2);
  assert.equal((await pageFetch(page, 'GET', '/api/credentials')).body.credentials.length, 2);
  await shot(page, 'account-two-passkeys');

  // Delete "Work laptop": confirm in the dialog, re-authenticate with a passkey, then DELETE.
  const order = [];
  page.on('response', (r) => {
    const path = new URL(r.url()).pathname;
    if (path.startsWith('/api/reauth/') || r.request().method() === 'DELETE') order.push(`${r.request().method()} ${path} ${r.status()}`);
  });
  // Escape closes the dialog and nothing happens.
  await page.click('button[aria-label="Delete Work laptop"]');
  await page.locator('#delete-dialog[open]').waitFor();
  assert.equal(await withTimeout(page.evaluate(() => document.activeElement.textContent), 'focus'), 'Keep it');
  await page.keyboard.press('Escape');
  await page.locator('#delete-dialog').waitFor({ state: 'hidden' });
  assert.deepEqual(order, []);
  assert.equal(await page.locator('#passkeys tr').count(), 2);
  await page.click('button[aria-label="Delete Work laptop"]');
  assert.match(await page.innerText('#delete-text'), /Work laptop/);
  await shot(page, 'account-delete-dialog');
  const deleted = await captureResponse(page, 'DELETE', `/api/credentials/${firstId}`, () => page.click('#delete-confirm'));
  assert.equal(deleted.status, 200);
  assert.deepEqual(deleted.body, { deleted: firstId });
  assert.deepEqual(order, ['POST /api/reauth/options 200', 'POST /api/reauth/verify 200', `DELETE /api/credentials/${firstId} 200`]);
  await statusText(page, 'Deleted “Work laptop”');
  await page.waitForFunction(() => document.querySelectorAll('#passkeys tr').length === 1);
  const session = await pageFetch(page, 'GET', '/api/session');
  assert.equal(session.body.recentlyVerified, true);
  await shot(page, 'account-after-delete');

  // The last passkey: refused by the server before any re-authentication (no passkey prompt).
  const lastName = added.body.credential.name;
  await page.click(`button[aria-label="Delete ${lastName}"]`);
  assert.match(await page.innerText('#delete-text'), /only passkey/);
  const refused = await captureResponse(page, 'DELETE', `/api/credentials/${added.body.credential.id}`, () => page.click('#delete-confirm'));
  assert.equal(refused.status, 409);
  assert.equal(refused.body.error.code, 'last_credential');
  const text = await statusText(page, 'last_credential');
  assert.ok(text.includes(`“${refused.body.error.message}”`), text);
  assert.equal(await page.locator('#passkeys tr').count(), 1);
  assert.equal((await pageFetch(page, 'GET', '/api/credentials')).body.credentials.length, 1);
  await shot(page, 'account-last-refused');
});

journey('5-approve-action: approve an action and verify its receipt', {}, async ({ page, shot }) => {
  const name = username('joan');
  const reg = await signUp(page, rp.base, name, 'Joan Clarke');
  await goto(page, `${rp.base}/approve.html`);
  const key = await pageFetch(page, 'GET', '/api/receipts/key');
  assert.equal(key.status, 200);
  await page.locator('#key-jwk', { hasText: '"kty"' }).waitFor();
  assert.deepEqual(JSON.parse(await page.innerText('#key-jwk')), key.body.jwk);
  assert.equal(await page.innerText('#key-id'), key.body.keyId);
  await shot(page, 'approve');

  const payload = '{"pay": "Bletchley Park Trust", "amount": "42.00", "currency": "GBP"}';
  await page.fill('#payload', payload);
  const options = page.waitForResponse((r) => r.url().endsWith('/api/actions/options'));
  const approved = await captureResponse(page, 'POST', '/api/actions/verify', () => page.click('#approve'));
  const actionOptions = await withTimeout((await options).json(), 'action options body');
  assert.equal(actionOptions.payload, payload);
  assert.equal(actionOptions.publicKey.userVerification, 'required');
  // The challenge ends with SHA-256(payload).
  const payloadHash = createHash('sha256').update(payload).digest();
  assert.deepEqual(Buffer.from(actionOptions.publicKey.challenge, 'base64url').subarray(16), payloadHash);
  assert.equal(approved.status, 200, JSON.stringify(approved.body));

  const signed = approved.body.receipt;
  await statusText(page, 'Approved');
  await page.locator('#receipt-valid', { hasText: 'valid' }).waitFor();
  assert.equal(await page.innerText('#receipt-valid'), 'valid');
  assert.equal(await page.innerText('#receipt-payload'), payload);
  assert.match(await page.innerText('#receipt-uv'), /^yes/);
  assert.equal(await page.innerText('#receipt-user'), name);
  assert.equal(await page.innerText('#receipt-origin'), rp.base);
  assert.match(await page.innerText('#check-result'), /^valid/);
  const receipt = JSON.parse(await page.inputValue('#check-json'));
  assert.equal(receipt.type, 'passgate.action-receipt.v1');
  assert.equal(receipt.payload, payload);
  assert.equal(receipt.userVerified, true);
  assert.equal(receipt.userName, name);
  assert.equal(receipt.credentialId, reg.body.credential.id);
  assert.equal(receipt.payloadSha256, payloadHash.toString('base64url'));
  assert.equal(receipt.origin, rp.base);
  assert.equal(await page.locator('#authenticator dd[data-field="aaguid"]').innerText(), VIRTUAL_AAGUID);

  // The server says valid; so does an independent check with the published JWK.
  const check = await pageFetch(page, 'POST', '/api/receipts/verify', { receiptJson: signed.receiptJson, signature: signed.signature });
  assert.deepEqual(check, { status: 200, body: { valid: true, keyId: key.body.keyId } });
  assert.equal(verifySignature('sha256', Buffer.from(signed.receiptJson),
    { key: key.body.jwk, format: 'jwk', dsaEncoding: 'der' }, Buffer.from(signed.signature, 'base64url')), true);
  const stored = await pageFetch(page, 'GET', `/api/receipts/${encodeURIComponent(receipt.id)}`);
  assert.equal(stored.status, 200);
  assert.equal(stored.body.receiptJson, signed.receiptJson);
  await shot(page, 'approve-receipt');

  // One byte changed (42.00 -> 43.00): invalid, on the page and from the server.
  const tampered = signed.receiptJson.replace('42.00', '43.00');
  assert.equal(tampered.length, signed.receiptJson.length);
  assert.equal([...tampered].filter((ch, i) => ch !== signed.receiptJson[i]).length, 1);
  await page.fill('#check-json', tampered);
  const tamperedCheck = await captureResponse(page, 'POST', '/api/receipts/verify', () => page.click('#check-button'));
  assert.equal(tamperedCheck.status, 200);
  assert.equal(tamperedCheck.body.valid, false);
  assert.equal(tamperedCheck.request.receiptJson, tampered);
  assert.match(await page.innerText('#check-result'), /^INVALID/);
  assert.match(await statusText(page, 'NOT valid'), /changed/);
  await shot(page, 'approve-tampered');
});

journey('6-no-uv: sign-in refused when the authenticator does not verify the user', { autofill: false }, async ({ page, cdp, authenticatorId, shot }) => {
  const name = username('barbara');
  await signUp(page, rp.base, name, 'Barbara Liskov');
  await signOut(page, rp.base);
  // From now on the authenticator answers without user verification (isUserVerified=false).
  await withTimeout(cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false }), 'setUserVerified');
  let verifyCalls = 0;
  page.on('request', (r) => { if (r.url().endsWith('/api/login/verify')) verifyCalls += 1; });

  // The server asks for userVerification "required": Chromium refuses before anything is sent.
  await page.fill('#signin-username', name);
  await page.click('#signin-button');
  assert.match(await statusText(page, 'NotAllowedError'), /could not verify you/);
  assert.equal(verifyCalls, 0);
  await shot(page, 'index-refused-by-browser');

  // A client that ignores the requirement (options rewritten to "discouraged") gets an assertion
  // with UV clear: the server refuses it.
  await page.route('**/api/login/options', async (route) => {
    const response = await route.fetch({ timeout: STEP_MS });
    const json = await withTimeout(response.json(), 'rewritten options body');
    await route.fulfill({ response, json: { ...json, userVerification: 'discouraged' } });
  });
  const refused = await captureResponse(page, 'POST', '/api/login/verify', () => page.click('#signin-button'));
  assert.equal(assertionFlags(refused.request).uv, false);
  assert.equal(refused.status, 400);
  assert.equal(refused.body.error.code, 'user_verification_missing');
  assert.equal(refused.headers['set-cookie'], undefined);
  const text = await statusText(page, 'user_verification_missing');
  assert.match(text, /did not verify you/);
  assert.ok(text.includes(refused.body.error.message), text);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  assert.equal(page.url(), `${rp.base}/`);
  await shot(page, 'index-refused-by-server');
});

journey('7-other-origin: a page on another origin cannot sign in', { autofill: false }, async ({ page, shot }) => {
  const name = username('radia');
  await signUp(page, rp.base, name, 'Radia Perlman');
  await signOut(page, rp.base);

  // http://127.0.0.1:PORT is the same server but not the RP ID's host: the browser refuses.
  const ipOrigin = `http://127.0.0.1:${rp.port}`;
  await goto(page, `${ipOrigin}/`);
  await page.fill('#signin-username', name);
  await page.click('#signin-button');
  assert.match(await statusText(page, 'SecurityError'), new RegExp(`\\(${ipOrigin.replaceAll('.', '\\.')}\\) is not allowed`));
  await shot(page, 'ip-origin-refused-by-browser');

  // A relay on http://localhost:RELAY forwards everything to the relying party (a phishing
  // proxy). The RP ID "localhost" fits that host, so the browser signs, and the assertion
  // names the relay's origin: the server refuses it.
  const relay = await startRelay(rp.port);
  try {
    await goto(page, `${relay.base}/`);
    await page.fill('#signin-username', name);
    const refused = await captureResponse(page, 'POST', '/api/login/verify', () => page.click('#signin-button'));
    const clientData = JSON.parse(Buffer.from(refused.request.response.clientDataJSON, 'base64url').toString());
    assert.equal(clientData.origin, relay.base);
    assert.equal(clientData.type, 'webauthn.get');
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'origin_not_allowed');
    assert.ok(refused.body.error.message.includes(relay.base), refused.body.error.message);
    assert.equal(refused.headers['set-cookie'], undefined);
    const text = await statusText(page, 'origin_not_allowed');
    assert.match(text, /not the real site/);
    await shot(page, 'relay-origin-refused-by-server');
  } finally {
    await relay.stop();
  }
  await goto(page, `${rp.base}/account.html`);
  await statusText(page, 'Sign in first');
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  await shot(page, 'account-still-signed-out');
});

journey('8-no-json-helpers: sign up and sign in through the base64url fallback', { autofill: false, noJsonHelpers: true }, async ({ page, shot }) => {
  const name = username('katherine');
  await goto(page, `${rp.base}/`);
  assert.deepEqual(await withTimeout(page.evaluate(() => [typeof PublicKeyCredential.parseCreationOptionsFromJSON,
    typeof PublicKeyCredential.parseRequestOptionsFromJSON, typeof PublicKeyCredential.prototype.toJSON]), 'probe'),
  ['undefined', 'undefined', 'undefined']);
  const reg = await signUp(page, rp.base, name, 'Katherine Johnson');
  assert.equal(reg.body.credential.id, reg.request.id);
  assert.equal(reg.request.rawId, reg.request.id);
  assert.deepEqual(reg.request.response.transports, ['internal']);
  assert.equal(attestedFlags(reg.request).uv, true);
  await shot(page, 'account');
  await signOut(page, rp.base);
  await page.fill('#signin-username', name);
  const login = await captureResponse(page, 'POST', '/api/login/verify', () => page.click('#signin-button'));
  assert.equal(login.status, 200, JSON.stringify(login.body));
  assert.equal(login.body.user.name, name);
  assert.equal(login.request.response.userHandle, reg.body.user.id);
  assert.equal(login.body.verdict.userVerified, true);
  await statusText(page, `Signed in as ${name}`);
  await shot(page, 'index-signed-in');
});
