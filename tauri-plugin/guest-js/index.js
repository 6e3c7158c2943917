// tauri-plugin-passgate's JavaScript API. It keeps the official @tauri-apps/plugin-biometric
// shapes (checkStatus, authenticate, BiometryType) and adds what the official one lacks:
//   - authenticate(reason, {challenge}) resolves with a proof any WebAuthn verifier checks;
//   - passkeys: navigator.credentials.create/get work in WebKitGTK (the plugin injects
//     passgate's shim at document start; install() is here for pages that opt out of that);
//   - the vault (Ionic Identity Vault's shape) and SOTER-style signing, from passgate-app.js.
// The caller's origin is the webview's URL, read by the plugin: nothing here can name it.
import { invoke } from '@tauri-apps/api/core';
import { createPassgateApp, webviewChannel } from './passgate-app.js';

export { AuthMode, VaultErrorCodes, VaultError, createPassgateApp, webviewChannel } from './passgate-app.js';

/** The official numbering; a fingerprint reader is TouchID (1), as Android reports it. */
export const BiometryType = Object.freeze({ None: 0, TouchID: 1, FaceID: 2, Iris: 3 });

let app;
function passgateApp() {
  if (!app) app = createPassgateApp(webviewChannel());
  return app;
}

/** The official `checkStatus()`: `{isAvailable, biometryType, error?, errorCode?}` (+ `biometryKind`). */
export async function checkStatus() {
  return invoke('plugin:biometric|status');
}

/**
 * The official `authenticate(reason, options)`. Without `options.challenge` it resolves with
 * nothing, as the official one does; with a base64url challenge it resolves with
 * `{method, proof}`: an assertion by the app's device-bound key over that challenge.
 */
export async function authenticate(reason, options = {}) {
  if (options.challenge === undefined) {
    await invoke('plugin:biometric|authenticate', { reason, ...options });
    return undefined;
  }
  return passgateApp().biometric.authenticate(reason, options);
}

/** The public key proofs are signed with (register it with your backend once). */
export async function getProofKey() {
  return passgateApp().biometric.getProofKey();
}

/** The vault class (Identity Vault's `new Vault(config)`). */
export function Vault(config) {
  return new (passgateApp().Vault)(config);
}

/** WeChat SOTER's calls (`checkIsSupportSoterAuthentication`, `startSoterAuthentication`, ...). */
export function soter() {
  return passgateApp().soter;
}

/** Installs the passkeys shim on the Tauri channel (the plugin already does at document start). */
export function installPasskeys() {
  const shim = globalThis.passgateWebview;
  if (!shim) throw new Error('passgate: the webview shim is not loaded (Builder::inject_shim(false)?)');
  if (!shim.channel) shim.install({ channel: 'tauri' });
  return shim.channel;
}
