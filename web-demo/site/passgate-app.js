// passgate-app.js — the app-facing APIs for pages in a hybrid app's webview, in the shapes
// their users know:
//
//   biometric  Tauri's biometric plugin: checkStatus(), authenticate(reason, options); with
//              options.challenge the answer carries a proof (a WebAuthn assertion by a
//              device-bound key that any WebAuthn verifier checks).
//   Vault      Ionic Identity Vault 3.0's IdentityVault: lock/unlock(usingPasscode, passcode),
//              storeValue/getValue/removeValue/getKeys, getToken/storeToken, getUsername,
//              isLocked/isInUse, clear, remainingAttempts, getBiometricType,
//              isBiometricsAvailable, is/setBiometricsEnabled, is/setPasscodeEnabled,
//              isPasscodeSetupNeeded, setPasscode, getConfig/config, events (onLock/onUnlock/
//              onConfig, also as PluginOptions handlers), VaultError with VaultErrorCodes.
//   IonicIdentityVaultUser, DefaultSession  Identity Vault's session layer (identity-vault.js).
//   soter      WeChat SOTER: checkIsSupportSoterAuthentication, checkIsSoterEnrolledInDevice,
//              startSoterAuthentication (promises, and wx-style success/fail/complete).
//
// Everything goes through a host channel: any object with `request(message, {signal}) ->
// Promise<reply>`. `webviewChannel()` makes one from the webview shim
// (shim/passgate-webview.js: Tauri invoke, WKScriptMessageHandler, an Android interface, the
// local HTTP bridge), which carries these messages next to WebAuthn's. The host — not this
// page — tells passgate who is calling (the page's origin), so a page cannot reach another
// origin's vaults or keys. Messages are `{type: "<api>.<call>", ...}`; replies are `{result}`
// or `{error}`, plus `events` when a vault locked, unlocked or changed configuration.
//
// Identity Vault code imports IonicIdentityVaultUser, AuthMode, VaultErrorCodes from this module
// as they are (bound to the webview shim's channel); for another channel:
//
//   import { createPassgateApp, webviewChannel, AuthMode } from './passgate-app.js';
//   const { biometric, Vault, soter } = createPassgateApp(webviewChannel());
//   const vault = new Vault({ vaultId: 'session', username: 'alice',
//                             authMode: AuthMode.BiometricOnly, lockAfter: 60_000 });
//   vault.onLock(({ timeout }) => showLockScreen(timeout));
//   await vault.storeValue('token', token);

/** Tauri's BiometryType (plus Fingerprint for desktop readers). */
export const BiometryType = Object.freeze({
  None: 'None', TouchID: 'TouchID', FaceID: 'FaceID', Iris: 'Iris', Fingerprint: 'Fingerprint',
});

import { DefaultSession, makeIdentityVaultUser } from './identity-vault.js';

export { DefaultSession };

/** Identity Vault's AuthMode (the default is BiometricAndPasscode). */
export const AuthMode = Object.freeze({
  BiometricOnly: 'BiometricOnly',
  BiometricAndPasscode: 'BiometricAndPasscode',
  BiometricOrPasscode: 'BiometricOrPasscode',
  PasscodeOnly: 'PasscodeOnly',
  InMemoryOnly: 'InMemoryOnly',
});

/**
 * Identity Vault 3.0's VaultErrorCodes (names, as passgate reports them), plus
 * BiometricsLockedOut (an extension: the sensor is locked out, the PIN unlocks it).
 */
export const VaultErrorCodes = Object.freeze(Object.fromEntries([
  'Unknown', 'AuthFailed', 'BiometricsNotEnabled', 'BiometricsLockedOut', 'InvalidArguments',
  'InvalidAuthMode', 'InvalidatedCredential', 'KeyNotFound', 'MismatchedPasscode',
  'MissingPasscode', 'PasscodeNotEnabled', 'SecurityNotAvailable', 'TooManyFailedAttempts',
  'UserCanceledInteraction', 'VaultLocked', 'VaultUnavailable',
].map((name) => [name, name])));

/** A rejected biometric call: `code` is the mobile error code (`biometryNotEnrolled`, ...). */
export class BiometricError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'BiometricError';
    this.code = code;
  }
}

/** A rejected vault call: `code` is one of VaultErrorCodes. */
export class VaultError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'VaultError';
    this.code = code;
  }
}

/** A failed channel exchange or a malformed request (`code`: invalidRequest, unknownType, ...). */
export class ChannelError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ChannelError';
    this.code = code;
  }
}

const VAULT_CODES = new Set(Object.keys(VaultErrorCodes));

/** How long one call may wait for the host: PIN and approval prompts included. */
export const DEFAULT_TIMEOUT_MS = 310_000;

/**
 * The host channel of the webview shim (`shim/passgate-webview.js`, installed on any of its
 * channels): `request(message, {signal})` sends `message` as the shim message of its `type`;
 * the host's channel reply carries the app router's reply (`{result} | {error}`, `events`) as
 * its result. A `signal` that aborts makes the shim send `cancel` (passgate closes its prompt)
 * and rejects with the signal's AbortError.
 */
export function webviewChannel(shim = globalThis.passgateWebview, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  if (!shim || typeof shim.request !== 'function') {
    throw new TypeError('webviewChannel needs the webview shim (load shim/passgate-webview.js first)');
  }
  return {
    name: 'webview',
    request(message, { signal } = {}) {
      const { type, ...body } = message;
      return shim.request(type, body, { signal, timeoutMs });
    },
  };
}

/**
 * The app APIs on `channel` (`{ request(message) -> Promise<reply> }`).
 * Returns `{ biometric, Vault, soter, request, IonicIdentityVaultUser, IonicNativeAuthPlugin }`.
 */
export function createPassgateApp(channel) {
  if (!channel || typeof channel.request !== 'function') {
    throw new TypeError('createPassgateApp needs a channel with request(message) -> Promise<reply>');
  }
  const vaults = new Map();

  function dispatchEvents(events) {
    for (const event of events || []) {
      const id = event.vaultId ?? event.config?.vaultId;
      const username = event.username ?? event.config?.username;
      for (const vault of vaults.values()) {
        if (vault.vaultId === id && (username === undefined || vault.username === username)) vault._event(event);
      }
    }
  }

  /**
   * Sends one message; resolves with `result`, rejects with the mapped error (or, when
   * `signal` aborted it, with the signal's AbortError, as fetch does).
   */
  async function request(message, toError = (e) => new ChannelError(e.code, e.message), { signal } = {}) {
    let reply;
    try {
      reply = await (signal ? channel.request(message, { signal }) : channel.request(message));
    } catch (e) {
      if (signal?.aborted || e?.name === 'AbortError') throw e;
      throw new ChannelError('channelFailed', `the host channel failed: ${e?.message ?? e}`);
    }
    if (typeof reply === 'string') reply = JSON.parse(reply);
    if (!reply || typeof reply !== 'object') {
      throw new ChannelError('channelFailed', 'the host channel answered something that is not a reply');
    }
    dispatchEvents(reply.events);
    if (reply.error) {
      const e = reply.error;
      if (e.code === 'invalidRequest' || e.code === 'unknownType') {
        throw new ChannelError(e.code, e.message);
      }
      throw toError(e);
    }
    return reply.result;
  }

  const biometricError = (e) => new BiometricError(e.code, e.message);

  const biometric = {
    /** `{isAvailable, biometryType, error?, errorCode?}`. */
    checkStatus: () => request({ type: 'biometric.checkStatus' }, biometricError),
    /**
     * Verifies the user. `options`: allowDeviceCredential, title, subtitle, cancelTitle,
     * fallbackTitle, confirmationRequired, maxAttempts, challenge (base64url), and `signal`
     * (an AbortSignal: aborting closes passgate's prompt). Resolves with `{method, proof?}`;
     * rejects with a BiometricError.
     */
    authenticate(reason, options = {}) {
      const { signal, ...opts } = options;
      if (opts.maxAttemps !== undefined && opts.maxAttempts === undefined) {
        opts.maxAttempts = opts.maxAttemps; // Tauri's spelling
      }
      delete opts.maxAttemps;
      if (opts.challenge instanceof Uint8Array || opts.challenge instanceof ArrayBuffer) {
        opts.challenge = toBase64Url(opts.challenge);
      }
      return request({ type: 'biometric.authenticate', reason, options: opts }, biometricError, { signal });
    },
    /** The key that signs proofs: `{credentialId, publicKey, publicKeyCose, rpId, origin}`. */
    getProofKey: () => request({ type: 'biometric.getProofKey' }, biometricError),
  };

  const vaultError = (e) => new VaultError(VAULT_CODES.has(e.code) ? e.code : 'Unknown', e.message);
  const vaultKey = (vaultId, username) => `${vaultId}\u0000${username}`;

  // lockAfter counts time in the background when the host hears about visibility: the page
  // tells it, once a vault is open.
  let visibilityReported = false;
  function reportVisibility() {
    if (visibilityReported || typeof document === 'undefined' || typeof document.addEventListener !== 'function') return;
    visibilityReported = true;
    const send = () => request({ type: 'vault.setVisibility', hidden: document.visibilityState === 'hidden' }, vaultError).catch(() => {});
    document.addEventListener('visibilitychange', send);
    send();
  }

  class Vault {
    /**
     * `config`: { vaultId, username, authMode? (default BiometricAndPasscode), lockAfter? (ms
     * in the background, or idle when the host cannot tell), maxAttempts?,
     * hideScreenOnBackground?, customPasscode? } and Identity Vault's PluginOptions handlers
     * onReady(vault), onLock(event), onUnlock(config), onConfig(config), onError(error). An
     * existing vault keeps its stored configuration until updateConfig(). A vault is
     * (this page's origin, vaultId, username).
     */
    constructor(config) {
      if (!config || typeof config.vaultId !== 'string' || typeof config.username !== 'string') {
        throw new VaultError('InvalidArguments', 'a vault needs vaultId and username');
      }
      const key = vaultKey(config.vaultId, config.username);
      if (vaults.has(key)) {
        throw new VaultError('InvalidArguments', `vault ${config.vaultId} of ${config.username} is already open on this channel`);
      }
      this.vaultId = config.vaultId;
      this.username = config.username;
      this._key = key;
      this._requested = { ...config };
      this._handlers = { lock: new Set(), unlock: new Set(), configChanged: new Set() };
      for (const [option, kind] of [['onLock', 'lock'], ['onUnlock', 'unlock'], ['onConfig', 'configChanged']]) {
        if (typeof config[option] === 'function') this._handlers[kind].add(config[option]);
      }
      this._opened = null;
      /** The current configuration (Identity Vault's `config`), once open. */
      this.config = undefined;
      this._timer = null;
      this._unlocked = false;
      vaults.set(key, this);
      if (typeof config.onReady === 'function' || typeof config.onError === 'function') {
        this.open().then(() => config.onReady?.(this), (e) => config.onError?.(e));
      }
    }

    /** Opens the vault on the host (done by the first call); resolves with its state. */
    open() {
      if (!this._opened) {
        const { vaultId, username, authMode, lockAfter, maxAttempts, hideScreenOnBackground, customPasscode } = this._requested;
        const message = { type: 'vault.open', vaultId, username };
        if (authMode !== undefined) message.authMode = authMode;
        if (lockAfter !== undefined) message.lockAfter = lockAfter;
        if (maxAttempts !== undefined) message.maxAttempts = maxAttempts;
        if (hideScreenOnBackground !== undefined) message.hideScreenOnBackground = hideScreenOnBackground;
        if (customPasscode !== undefined) message.customPasscode = customPasscode;
        this._opened = request(message, vaultError).then((opened) => {
          this.config = opened.config;
          this._unlocked = opened.config.authMode === AuthMode.InMemoryOnly
            || (!opened.isLocked && opened.isInUse);
          reportVisibility();
          return opened;
        }, (e) => { this._opened = null; throw e; });
      }
      return this._opened;
    }

    async _call(type, extra = {}, options = {}) {
      await this.open();
      const message = { type, vaultId: this.vaultId, username: this.username, ...extra };
      const result = await request(message, vaultError, options);
      this._scheduleIdleCheck();
      return result;
    }

    /** The host locks the vault itself; this only asks in time to report it promptly. */
    _scheduleIdleCheck() {
      clearTimeout(this._timer);
      const lockAfter = this.config?.lockAfter ?? 0;
      if (lockAfter > 0 && this._unlocked) {
        this._timer = setTimeout(() => {
          request({ type: 'vault.isLocked', vaultId: this.vaultId, username: this.username }, vaultError).catch(() => {});
        }, lockAfter + 100);
        if (typeof this._timer?.unref === 'function') this._timer.unref();
      }
    }

    _event(event) {
      if (event.event === 'lock') {
        this._unlocked = false;
        clearTimeout(this._timer);
        const lockEvent = { timeout: event.timeout === true, saved: event.saved === true };
        for (const h of this._handlers.lock) h(lockEvent);
      } else if (event.event === 'unlock') {
        this._unlocked = true;
        if (event.config) this.config = event.config;
        for (const h of this._handlers.unlock) h(this.config);
      } else if (event.event === 'configChanged') {
        this.config = event.config;
        for (const h of this._handlers.configChanged) h(event.config);
      }
    }

    _on(kind, handler) {
      this._handlers[kind].add(handler);
      return () => this._handlers[kind].delete(handler);
    }

    /** `handler({timeout, saved})` when the vault locks; returns an unsubscribe function. */
    onLock(handler) { return this._on('lock', handler); }
    /** `handler(config)` when the vault unlocks. */
    onUnlock(handler) { return this._on('unlock', handler); }
    /** `handler(config)` when the configuration changes. */
    onConfig(handler) { return this._on('configChanged', handler); }
    /** passgate's earlier name for onConfig. */
    onConfigChanged(handler) { return this._on('configChanged', handler); }
    /** Stops every handler (Identity Vault's unsubscribe). */
    async unsubscribe() { for (const set of Object.values(this._handlers)) set.clear(); }

    lock() { return this._call('vault.lock'); }
    /**
     * Identity Vault's unlock(usingPasscode?, passcode?): a finger, or the passcode where the
     * auth mode allows it (first when `usingPasscode`); `passcode` is the app passcode of a
     * vault that has one. The older form unlock({usingPasscode, passcode, signal}) is accepted.
     */
    unlock(usingPasscode = false, passcode = undefined) {
      let signal;
      if (usingPasscode !== null && typeof usingPasscode === 'object') {
        ({ usingPasscode = false, passcode, signal } = usingPasscode);
      }
      const extra = { usingPasscode: usingPasscode === true };
      if (typeof passcode === 'string') extra.passcode = passcode;
      return this._call('vault.unlock', extra, { signal });
    }
    isLocked() { return this._call('vault.isLocked'); }
    isInUse() { return this._call('vault.isInUse'); }
    storeValue(key, value) { return this._call('vault.storeValue', { key, value: value === undefined ? null : value }); }
    getValue(key) { return this._call('vault.getValue', { key }); }
    removeValue(key) { return this._call('vault.removeValue', { key }); }
    getKeys() { return this._call('vault.getKeys'); }
    /** The `token` slot: storeValue('token', token). */
    storeToken(token) { return this.storeValue('token', token); }
    /** The `token` slot: getValue('token'). */
    getToken() { return this.getValue('token'); }
    async getUsername() { return this.username; }
    clear() { return this._call('vault.clear'); }
    remainingAttempts() { return this._call('vault.remainingAttempts'); }
    async getConfig() { this.config = await this._call('vault.getConfig'); return this.config; }
    /** `{authMode, lockAfter?, maxAttempts?, hideScreenOnBackground?}`; a new auth mode re-keys (one verification). */
    async updateConfig(config) {
      const { authMode = this.config?.authMode, lockAfter, maxAttempts, hideScreenOnBackground } = config || {};
      const message = { authMode };
      if (lockAfter !== undefined) message.lockAfter = lockAfter;
      if (maxAttempts !== undefined) message.maxAttempts = maxAttempts;
      if (hideScreenOnBackground !== undefined) message.hideScreenOnBackground = hideScreenOnBackground;
      this.config = await this._call('vault.updateConfig', message);
      return this.config;
    }
    /** Identity Vault 3.0's BiometricType: 'touchID' for a fingerprint reader, 'faceID', or 'none'. */
    async getBiometricType() {
      const { biometryType } = await biometric.checkStatus();
      if (biometryType === BiometryType.FaceID) return 'faceID';
      if (biometryType === BiometryType.TouchID || biometryType === BiometryType.Fingerprint) return 'touchID';
      return 'none';
    }
    /** Identity Vault 4's getAvailableHardware: ['fingerprint'], ['face'], ['iris'] or []. */
    async getAvailableHardware() {
      const { biometryType } = await biometric.checkStatus();
      return ({ [BiometryType.TouchID]: ['fingerprint'], [BiometryType.Fingerprint]: ['fingerprint'],
        [BiometryType.FaceID]: ['face'], [BiometryType.Iris]: ['iris'] })[biometryType] ?? [];
    }
    /** Whether a finger can be verified now (a sensor with an enrolled finger, not locked out). */
    async isBiometricsAvailable() { await this.open(); return request({ type: 'vault.isBiometricsAvailable' }, vaultError); }
    async isBiometricsEnabled() { return (await this.getConfig()).isBiometricsEnabled; }
    async isPasscodeEnabled() { return (await this.getConfig()).isPasscodeEnabled; }
    async isPasscodeSetupNeeded() { return (await this.getConfig()).isPasscodeSetupNeeded; }
    /** Turns biometrics on or off (a new auth mode: one verification to re-key). */
    async setBiometricsEnabled(enabled) { this.config = await this._call('vault.setBiometricsEnabled', { enabled: enabled === true }); }
    /** Turns the passcode on or off (a new auth mode: one verification to re-key). */
    async setPasscodeEnabled(enabled) { this.config = await this._call('vault.setPasscodeEnabled', { enabled: enabled === true }); }
    /**
     * Sets the app passcode (argon2id-stretched and combined with the authenticator's
     * verification), or with no passcode makes passgate's trusted PIN prompt the passcode
     * again. `confirmation` (an extension): MismatchedPasscode when it differs.
     */
    async setPasscode(passcode, confirmation) {
      const extra = {};
      if (typeof passcode === 'string') extra.passcode = passcode;
      if (typeof confirmation === 'string') extra.confirmation = confirmation;
      this.config = await this._call('vault.setPasscode', extra);
    }
    /** Locks and forgets the vault on this channel. */
    async close() {
      clearTimeout(this._timer);
      await this._call('vault.close');
      vaults.delete(this._key);
    }
  }

  /** Identity Vault's IonicNativeAuthPlugin: getVault(PluginOptions). */
  const plugin = { getVault: (options) => new Vault(options) };
  const IonicIdentityVaultUser = makeIdentityVaultUser({ Vault, AuthMode, VaultError });
  IonicIdentityVaultUser.prototype.getPlugin = function getPlugin() { return plugin; };

  const soterError = (e) => Object.assign(new Error(e.errMsg || e.message), {
    errCode: e.errCode ?? 90007, errMsg: e.errMsg || e.message, detail: e.detail,
  });

  // wx-style: returns a promise, and also calls success/fail/complete when given.
  function wx(type, params = {}) {
    const { success, fail, complete, signal, ...rest } = params;
    const promise = request({ type, ...rest }, soterError, { signal });
    promise.then((r) => { success?.(r); complete?.(r); }, (e) => { fail?.(e); complete?.(e); });
    return promise;
  }

  const soter = {
    checkIsSupportSoterAuthentication: (params) => wx('soter.checkIsSupportSoterAuthentication', params),
    /** `{checkAuthMode: 'fingerPrint'}` → `{isEnrolled}`. */
    checkIsSoterEnrolledInDevice: (params) => wx('soter.checkIsSoterEnrolledInDevice', params),
    /** `{challenge, requestAuthModes, authContent}` → `{authMode, resultJSON, resultJSONSignature}`. */
    startSoterAuthentication: (params) => wx('soter.startSoterAuthentication', params),
    /** Creates the device key (one verification) → `{keyJson, keyJsonSignature}` to register. */
    prepareAuthKey: (params) => wx('soter.prepareAuthKey', params),
    getAuthKey: (params) => wx('soter.getAuthKey', params),
  };

  return { biometric, Vault, soter, request, IonicIdentityVaultUser, IonicNativeAuthPlugin: plugin };
}

function toBase64Url(bytes) {
  const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  let text = '';
  for (const b of view) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// The app APIs on the webview shim's channel, made on first use, for code written against
// Identity Vault's own module (`import { IonicIdentityVaultUser } from ...`).
let shimApp;
function defaultApp() {
  shimApp ??= createPassgateApp(webviewChannel());
  return shimApp;
}

/**
 * Identity Vault's IonicIdentityVaultUser on the webview shim's channel: subclass it as Identity
 * Vault's documentation does. (createPassgateApp(channel).IonicIdentityVaultUser for another
 * channel.)
 */
export class IonicIdentityVaultUser {
  constructor(platform, options, descriptor) {
    const Bound = defaultApp().IonicIdentityVaultUser;
    // The subclass's methods (onVaultLocked, onPasscodeRequest, ...) stay on top.
    Object.setPrototypeOf(IonicIdentityVaultUser.prototype, Bound.prototype);
    return Reflect.construct(Bound, [platform, options, descriptor], new.target);
  }
}

/** Identity Vault's IonicNativeAuthPlugin on the webview shim's channel. */
export const IonicNativeAuthPlugin = Object.freeze({
  getVault: (options) => defaultApp().IonicNativeAuthPlugin.getVault(options),
});
