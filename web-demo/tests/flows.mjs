// Page flows shared by the journeys that use passgate's own authenticator (through the
// extension, or through the webview shim and the local bridge): every step bounded by a timeout.
import assert from 'node:assert/strict';
import { STEP_MS, withTimeout, captureResponse } from './harness.mjs';

let users = 0;
/** A fresh username. */
export function username(prefix) {
  users += 1;
  return `${prefix}-${users}-${Date.now().toString(36)}`;
}

export async function goto(page, url) {
  await withTimeout(page.goto(url, { waitUntil: 'load' }), `goto ${url}`);
}

/** Waits for the status region to show `pattern`; returns its text. */
export async function statusText(page, pattern) {
  await page.locator('#status').filter({ hasText: pattern }).waitFor({ timeout: STEP_MS });
  return page.locator('#status').innerText();
}

export function clientData(response) {
  return JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8'));
}

/** Signs up on the index page of `base`; returns the register/verify exchange. */
export async function signUp(page, base, name, displayName) {
  await goto(page, `${base}/`);
  await page.fill('#signup-username', name);
  await page.fill('#signup-display', displayName);
  const exchange = await captureResponse(page, 'POST', '/api/register/verify', () => page.click('#signup-button'));
  assert.equal(exchange.status, 200, JSON.stringify(exchange.body));
  await statusText(page, `Welcome, ${displayName}`);
  await page.waitForURL(`${base}/account.html`, { timeout: STEP_MS });
  await page.locator('#passkeys tr').first().waitFor();
  return exchange;
}

export async function signOut(page, base) {
  await page.click('#signout');
  await page.waitForURL(`${base}/`, { timeout: STEP_MS });
  await page.locator('#signup-button').waitFor();
}

/** Signs in on the index page (by username, or discoverable with ''); returns the exchange. */
export async function signIn(page, base, name) {
  await page.fill('#signin-username', name);
  const exchange = await captureResponse(page, 'POST', '/api/login/verify', () => page.click('#signin-button'));
  assert.equal(exchange.status, 200, JSON.stringify(exchange.body));
  await page.waitForURL(`${base}/account.html`, { timeout: STEP_MS });
  await page.locator('#passkeys tr').first().waitFor();
  return exchange;
}

/** Renames passkey `from` to `to` on the account page; returns the PATCH exchange. */
export async function rename(page, id, from, to) {
  await page.click(`button[aria-label="Rename ${from}"]`);
  await page.fill('#rename-input', to);
  const renamed = await captureResponse(page, 'PATCH', `/api/credentials/${id}`, () => page.click('#rename-save'));
  assert.equal(renamed.status, 200, JSON.stringify(renamed.body));
  assert.deepEqual(renamed.body, { id, name: to });
  await statusText(page, `to “${to}”`);
  return renamed;
}

/**
 * Deletes passkey `name` (id) on the account page: the dialog, the re-authentication, the
 * DELETE. Returns { reauth, deleted } exchanges. `last`: it is the only passkey, which the
 * page sends without a re-authentication (the server refuses it first); `reauth` is then
 * undefined.
 */
export async function deletePasskey(page, id, name, { last = false } = {}) {
  await page.click(`button[aria-label="Delete ${name}"]`);
  await page.locator('#delete-dialog[open]').waitFor();
  const reauthPaths = [];
  const seen = (r) => { if (new URL(r.url()).pathname.startsWith('/api/reauth/')) reauthPaths.push(new URL(r.url()).pathname); };
  page.on('request', seen);
  const reauth = last ? null : page.waitForResponse((r) => new URL(r.url()).pathname === '/api/reauth/verify', { timeout: STEP_MS * 2 });
  const deleted = await captureResponse(page, 'DELETE', `/api/credentials/${id}`, () => page.click('#delete-confirm'));
  page.off('request', seen);
  if (last) {
    assert.deepEqual(reauthPaths, [], 'no re-authentication for a delete bound to fail');
    return { reauth: undefined, deleted };
  }
  const reauthResponse = await reauth;
  return {
    reauth: { status: reauthResponse.status(), request: JSON.parse(reauthResponse.request().postData()) },
    deleted,
  };
}

/** Approves `payload` on the approve page; returns the actions/verify exchange. */
export async function approve(page, base, payload) {
  await goto(page, `${base}/approve.html`);
  await page.locator('#key-jwk', { hasText: '"kty"' }).waitFor();
  await page.fill('#payload', payload);
  const approved = await captureResponse(page, 'POST', '/api/actions/verify', () => page.click('#approve'));
  assert.equal(approved.status, 200, JSON.stringify(approved.body));
  await statusText(page, 'Approved');
  await page.locator('#receipt-valid', { hasText: 'valid' }).waitFor();
  return approved;
}

/** The label of the button that picks `account` in passgate's two-account choice: "Use NAME",
 * the name cut after 32 characters with an ellipsis (as platform-api's `use_label`). */
export function useLabel(account) {
  const chars = [...account];
  return `Use ${chars.length > 32 ? `${chars.slice(0, 32).join('')}\u2026` : account}`;
}
