// passgate-app.js — the app-facing APIs for pages in a hybrid app's webview, in the shapes
// their users know:
//
//   biometric  Tauri's biometric plugin: checkStatus(), authenticate(reason, options); with
//              options.challenge the answer carries a proof (a WebAuthn assertion by a
//              device-bound key that any WebAuthn verifier checks).
//   Vault      Ionic Identity Vault: lock/unlock, storeValue/getValue/removeValue/getKeys,
//              isLocked/isInUse, clear, remainingAttempts, onLock/onUnlock/onConfigChanged,
//              VaultError with VaultErrorCodes.
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

/** Identity Vault's AuthMode. */
export const AuthMode = Object.freeze({
  BiometricOnly: 'BiometricOnly',
  BiometricAndPasscode: 'BiometricAndPasscode',
  BiometricOrPasscode: 'BiometricOrPasscode',
  PasscodeOnly: 'PasscodeOnly',
  InMemoryOnly: 'InMemoryOnly',
});

/** Identity Vault's VaultErrorCodes (names, as passgate reports them). */
export const VaultErrorCodes = Object.freeze(Object.fromEntries([
  'Unknown', 'AuthFailed', 'BiometricsNotEnabled', 'BiometricsLockedOut', 'InvalidArguments',
  'InvalidAuthMode', 'InvalidatedCredential', 'KeyNotFound', 'MissingPasscode',
  'PasscodeNotEnabled', 'SecurityNotAvailable', 'TooManyFailedAttempts',
  'UserCanceledInteraction', 'VaultLocked',
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
 * Returns `{ biometric, Vault, soter, request }`.
 */
export function createPassgateApp(channel) {
  if (!channel || typeof channel.request !== 'function') {
    throw new TypeError('createPassgateApp needs a channel with request(message) -> Promise<reply>');
  }
  const vaults = new Map();

  function dispatchEvents(events) {
    for (const event of events || []) {
      const id = event.vaultId ?? event.config?.vaultId;
      const vault = vaults.get(id);
      if (vault) vault._event(event);
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

  class Vault {
    /**
     * `config`: { vaultId, username, authMode?, lockAfter? (ms idle), maxAttempts? }. An
     * existing vault keeps its stored configuration until updateConfig().
     */
    constructor(config) {
      if (!config || typeof config.vaultId !== 'string' || typeof config.username !== 'string') {
        throw new VaultError('InvalidArguments', 'a vault needs vaultId and username');
      }
      if (vaults.has(config.vaultId)) {
        throw new VaultError('InvalidArguments', `vault ${config.vaultId} is already open on this channel`);
      }
      this.vaultId = config.vaultId;
      this._requested = { ...config };
      this._handlers = { lock: new Set(), unlock: new Set(), configChanged: new Set() };
      this._opened = null;
      this._config = null;
      this._timer = null;
      this._unlocked = false;
      vaults.set(this.vaultId, this);
    }

    /** Opens the vault on the host (done by the first call); resolves with its config. */
    open() {
      if (!this._opened) {
        const { vaultId, username, authMode, lockAfter, maxAttempts } = this._requested;
        const message = { type: 'vault.open', vaultId, username };
        if (authMode !== undefined) message.authMode = authMode;
        if (lockAfter !== undefined) message.lockAfter = lockAfter;
        if (maxAttempts !== undefined) message.maxAttempts = maxAttempts;
        this._opened = request(message, vaultError).then((opened) => {
          this._config = opened.config;
          this._unlocked = opened.config.authMode === AuthMode.InMemoryOnly
            || (!opened.isLocked && opened.isInUse);
          return opened;
        }, (e) => { this._opened = null; throw e; });
      }
      return this._opened;
    }

    async _call(type, extra = {}, options = {}) {
      await this.open();
      const result = await request({ type, vaultId: this.vaultId, ...extra }, vaultError, options);
      this._scheduleIdleCheck();
      return result;
    }

    /** The host locks an idle vault itself; this only asks in time to report it promptly. */
    _scheduleIdleCheck() {
      clearTimeout(this._timer);
      const lockAfter = this._config?.lockAfter ?? 0;
      if (lockAfter > 0 && this._unlocked) {
        this._timer = setTimeout(() => {
          request({ type: 'vault.isLocked', vaultId: this.vaultId }, vaultError).catch(() => {});
        }, lockAfter + 100);
        if (typeof this._timer?.unref === 'function') this._timer.unref();
      }
    }

    _event(event) {
      if (event.event === 'lock') {
        this._unlocked = false;
        clearTimeout(this._timer);
        for (const h of this._handlers.lock) h({ timeout: event.timeout === true });
      } else if (event.event === 'unlock') {
        this._unlocked = true;
        for (const h of this._handlers.unlock) h();
      } else if (event.event === 'configChanged') {
        this._config = event.config;
        for (const h of this._handlers.configChanged) h(event.config);
      }
    }

    _on(kind, handler) {
      this._handlers[kind].add(handler);
      return () => this._handlers[kind].delete(handler);
    }

    /** `handler({timeout})` when the vault locks; returns an unsubscribe function. */
    onLock(handler) { return this._on('lock', handler); }
    /** `handler()` when the vault unlocks. */
    onUnlock(handler) { return this._on('unlock', handler); }
    /** `handler(config)` when the configuration changes. */
    onConfigChanged(handler) { return this._on('configChanged', handler); }

    lock() { return this._call('vault.lock'); }
    /** Unlocks with a finger (or the PIN where the auth mode allows it); `signal` aborts. */
    unlock({ usingPasscode = false, signal } = {}) { return this._call('vault.unlock', { usingPasscode }, { signal }); }
    isLocked() { return this._call('vault.isLocked'); }
    isInUse() { return this._call('vault.isInUse'); }
    storeValue(key, value) { return this._call('vault.storeValue', { key, value: value === undefined ? null : value }); }
    getValue(key) { return this._call('vault.getValue', { key }); }
    removeValue(key) { return this._call('vault.removeValue', { key }); }
    getKeys() { return this._call('vault.getKeys'); }
    clear() { return this._call('vault.clear'); }
    remainingAttempts() { return this._call('vault.remainingAttempts'); }
    async getConfig() { this._config = await this._call('vault.getConfig'); return this._config; }
    /** `{authMode, lockAfter?, maxAttempts?}`; a new auth mode re-keys (one verification). */
    async updateConfig(config) {
      const { authMode = this._config?.authMode, lockAfter, maxAttempts } = config || {};
      const message = { authMode };
      if (lockAfter !== undefined) message.lockAfter = lockAfter;
      if (maxAttempts !== undefined) message.maxAttempts = maxAttempts;
      this._config = await this._call('vault.updateConfig', message);
      return this._config;
    }
    /** Locks and forgets the vault on this channel. */
    async close() {
      clearTimeout(this._timer);
      await this._call('vault.close');
      vaults.delete(this.vaultId);
    }
  }

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

  return { biometric, Vault, soter, request };
}

function toBase64Url(bytes) {
  const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  let text = '';
  for (const b of view) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
