// The example's page: each button calls one API and shows its result next to it. The same
// functions are on `window.example` for the WebDriver tests, which check what they return.
import { checkStatus, authenticate } from '@tauri-apps/plugin-biometric';
import { createPassgateApp, webviewChannel, AuthMode } from './passgate-app.js';

const { biometric, Vault } = createPassgateApp(webviewChannel());

function b64u(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function api(path, body) {
  const response = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    credentials: 'same-origin',
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${path}: ${response.status} ${JSON.stringify(data)}`);
  return data;
}

function decodeCreation(json) {
  const d = (t) => Uint8Array.from(atob(t.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  return {
    ...json,
    challenge: d(json.challenge),
    user: { ...json.user, id: d(json.user.id) },
    excludeCredentials: (json.excludeCredentials ?? []).map((c) => ({ ...c, id: d(c.id) })),
  };
}

function decodeRequest(json) {
  const d = (t) => Uint8Array.from(atob(t.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
  return {
    ...json,
    challenge: d(json.challenge),
    allowCredentials: (json.allowCredentials ?? []).map((c) => ({ ...c, id: d(c.id) })),
  };
}

let vault;

export const example = {
  /** The official plugin's checkStatus(). */
  status: () => checkStatus(),
  /** The official plugin's authenticate(): resolves with nothing, or rejects. */
  async authenticate() {
    await authenticate('Open your wallet', {
      allowDeviceCredential: true, title: 'Wallet', subtitle: 'Payments over 100 EUR', cancelTitle: 'Not now', fallbackTitle: 'Use my PIN',
    });
    return 'authenticated';
  },
  /** The official authenticate() with a fingerprint only: one attempt, no PIN fallback. */
  async fingerOnly() {
    await authenticate('Open your wallet', { allowDeviceCredential: false, maxAttemps: 1, title: 'Wallet' });
    return 'authenticated';
  },
  /** passgate's extension: a challenge signed by a device-bound key after verification. */
  async proof() {
    const challenge = b64u(crypto.getRandomValues(new Uint8Array(32)));
    const result = await biometric.authenticate('Confirm the transfer', { challenge, allowDeviceCredential: true });
    return { challenge, ...result };
  },
  async signUp(username) {
    const options = await api('/api/register/options', { username, displayName: username });
    const credential = await navigator.credentials.create({ publicKey: decodeCreation(options) });
    return api('/api/register/verify', credential.toJSON());
  },
  async signIn(username) {
    const options = await api('/api/login/options', { username });
    const credential = await navigator.credentials.get({ publicKey: decodeRequest(options) });
    return api('/api/login/verify', credential.toJSON());
  },
  async vault() {
    // One Vault object per vault and page, as with Identity Vault.
    vault ??= new Vault({ vaultId: 'session', username: 'alice', authMode: AuthMode.BiometricOrPasscode, lockAfter: 60_000 });
    await vault.storeValue('token', 'secret-token-42');
    await vault.lock();
    const lockedAfterLock = await vault.isLocked();
    await vault.unlock();
    const token = await vault.getValue('token');
    return { lockedAfterLock, token, lockedNow: await vault.isLocked() };
  },
};
window.example = example;

function wire(id, out, fn) {
  document.getElementById(id).addEventListener('click', async () => {
    const o = document.getElementById(out);
    o.className = '';
    o.textContent = '…';
    try {
      o.textContent = JSON.stringify(await fn(), null, 2);
    } catch (e) {
      o.className = 'error';
      o.textContent = `${e?.code ? `${e.code}: ` : ''}${e?.message ?? JSON.stringify(e)}`;
    }
  });
}
wire('status', 'biometric-out', example.status);
wire('authenticate', 'biometric-out', example.authenticate);
wire('proof', 'proof-out', example.proof);
wire('sign-up', 'passkey-out', () => example.signUp(document.getElementById('username').value));
wire('sign-in', 'passkey-out', () => example.signIn(document.getElementById('username').value));
wire('vault', 'vault-out', example.vault);
window.exampleReady = true;
