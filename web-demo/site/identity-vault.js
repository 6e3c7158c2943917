// identity-vault.js — Ionic Identity Vault 3.0's session layer (IonicIdentityVaultUser,
// DefaultSession) on passgate's vault (passgate-app.js). passgate-app.js re-exports what this
// makes, bound to the webview shim's channel, so a page written for Identity Vault changes
// only its import line:
//
//   import { IonicIdentityVaultUser, AuthMode, VaultErrorCodes } from '/passgate-app.js';
//
//   class IdentityService extends IonicIdentityVaultUser {
//     constructor(platform) {
//       super(platform, { authMode: AuthMode.BiometricAndPasscode, unlockOnAccess: true,
//                         lockAfter: 5000, hideScreenOnBackground: true });
//     }
//     onVaultLocked(event) { showLogin(event.timeout); }
//   }
//
// What each member does is Identity Vault 3.0's documented behaviour; where passgate differs
// (the "native" passcode prompt is passgate's trusted PIN prompt; an app passcode is added to
// the authenticator's verification, never instead of it) docs/src/app-apis/parity.md says so.

/** The session the vault stores under `session` (Identity Vault's `DefaultSession`). */
export class DefaultSession {
  constructor({ username, token } = {}) {
    if (username !== undefined) this.username = username;
    if (token !== undefined) this.token = token;
  }
}

/** The descriptor IonicIdentityVaultUser uses when none is given (Identity Vault's own). */
export const DEFAULT_DESCRIPTOR = Object.freeze({ username: '_lastUser', vaultId: 'default' });

const SESSION_KEY = 'session';

/**
 * Makes the IonicIdentityVaultUser class for one app (`{ Vault, AuthMode, VaultError }` from
 * createPassgateApp).
 */
export function makeIdentityVaultUser({ Vault, AuthMode, VaultError }) {
  class IonicIdentityVaultUser {
    /**
     * `platform`: anything with `ready(): Promise` (Ionic's Platform), or nothing.
     * `options`: Identity Vault's VaultOptions — authMode (default BiometricAndPasscode),
     * lockAfter, hideScreenOnBackground, restoreSessionOnReady, unlockOnReady,
     * unlockOnAccess — plus maxAttempts (an extension).
     * `descriptor`: { username, vaultId } (default { username: '_lastUser', vaultId: 'default' }).
     */
    constructor(platform, options = {}, descriptor = DEFAULT_DESCRIPTOR) {
      this.platform = platform;
      this.options = { ...options };
      this.descriptor = { ...DEFAULT_DESCRIPTOR, ...descriptor };
      this.config = undefined;
      this._session = undefined;
      this._vault = undefined;
      const platformReady = platform && typeof platform.ready === 'function'
        ? Promise.resolve().then(() => platform.ready())
        : Promise.resolve();
      this._ready = platformReady.then(() => this._setup());
      // ready() reports a failed setup; nobody awaiting it is not an unhandled rejection.
      this._ready.catch(() => {});
    }

    /** Whether the app implements onPasscodeRequest (Identity Vault's custom passcode). */
    _customPasscode() {
      return this.onPasscodeRequest !== IonicIdentityVaultUser.prototype.onPasscodeRequest;
    }

    async _setup() {
      const { authMode = AuthMode.BiometricAndPasscode, lockAfter, hideScreenOnBackground, maxAttempts } = this.options;
      const vault = new Vault({
        ...this.descriptor,
        authMode,
        lockAfter,
        hideScreenOnBackground,
        maxAttempts,
        customPasscode: this._customPasscode(),
        onLock: (event) => { this._session = undefined; this.onVaultLocked(event); },
        onUnlock: (config) => { this.config = config; this.onVaultUnlocked(config); },
        onConfig: (config) => { this.config = config; this.onConfigChange(config); },
      });
      try {
        this.config = await vault.getConfig();
      } catch (e) {
        vault.unsubscribe();
        this.onSetupError(e);
        throw e;
      }
      this._vault = vault;
      this.onVaultReady(this.config);
      const { restoreSessionOnReady, unlockOnReady, unlockOnAccess } = this.options;
      try {
        if (restoreSessionOnReady && await vault.isInUse()) {
          // Locked and allowed to unlock on access: unlocked now, as Identity Vault does.
          if (!(await vault.isLocked()) || unlockOnAccess) await this.restoreSession();
        } else if (unlockOnReady && await vault.isLocked()) {
          await this.unlock();
        }
      } catch (e) {
        // A declined unlock on ready leaves the vault locked; the app learns it from
        // onVaultLocked / isLocked, as with Identity Vault.
        if (!(e instanceof VaultError)) throw e;
      }
    }

    /** Resolves when the vault is ready; rejects with the setup error. */
    ready() { return this._ready; }

    /** The underlying vault (Identity Vault's IdentityVault). */
    async getVault() { await this._ready; return this._vault; }

    async getAuthMode() { return (await this.getVault()).getConfig().then((c) => c.authMode); }

    /** Changes the auth mode (the vault must be unlocked; re-keys under a new credential). */
    async setAuthMode(authMode) { await (await this.getVault()).updateConfig({ authMode }); }

    async getBiometricType() { return (await this.getVault()).getBiometricType(); }
    async isBiometricsAvailable() { return (await this.getVault()).isBiometricsAvailable(); }
    async isBiometricsEnabled() { return (await this.getVault()).isBiometricsEnabled(); }
    async isPasscodeEnabled() { return (await this.getVault()).isPasscodeEnabled(); }
    async setBiometricsEnabled(enabled) { await (await this.getVault()).setBiometricsEnabled(enabled); }

    /** Enables or disables the passcode; asks onPasscodeRequest(true) when one must be set. */
    async setPasscodeEnabled(enabled) {
      const vault = await this.getVault();
      await vault.setPasscodeEnabled(enabled);
      if (enabled && await vault.isPasscodeSetupNeeded()) await this.setPasscode();
    }

    /**
     * Sets the passcode: onPasscodeRequest(true) supplies it, or (undefined) passgate's
     * trusted prompt's PIN stands as the passcode.
     */
    async setPasscode() {
      const vault = await this.getVault();
      const passcode = await this.onPasscodeRequest(true);
      await vault.setPasscode(typeof passcode === 'string' ? passcode : undefined);
    }

    /** Unlocks with the vault's mode, or `authMode` for this unlock (PasscodeOnly: the passcode). */
    async unlock(authMode) {
      const vault = await this.getVault();
      const config = await vault.getConfig();
      const mode = authMode ?? config.authMode;
      const usingPasscode = mode === AuthMode.PasscodeOnly;
      let passcode;
      if (config.hasAppPasscode && (usingPasscode || config.authMode === AuthMode.PasscodeOnly)) {
        const answer = await this.onPasscodeRequest(false);
        if (typeof answer === 'string') passcode = answer;
      }
      await vault.unlock(usingPasscode || passcode !== undefined, passcode);
    }

    /** Stores the session (setting the passcode first when the vault needs one). */
    async saveSession(session) {
      const vault = await this.getVault();
      if (await vault.isPasscodeSetupNeeded()) await this.setPasscode();
      await vault.storeValue(SESSION_KEY, session);
      this._session = session;
    }

    /** Identity Vault 2's name for saveSession. */
    login(session) { return this.saveSession(session); }

    /** The session from the vault (unlocking it first when unlockOnAccess); undefined if none. */
    async restoreSession() {
      const vault = await this.getVault();
      if (this.options.unlockOnAccess && await vault.isLocked()) await this.unlock();
      const session = await vault.getValue(SESSION_KEY);
      if (session === null || session === undefined) return undefined;
      this._session = session;
      this.onSessionRestored(session);
      return session;
    }

    /** The session in memory, or else from the vault. */
    async getSession() {
      if (this._session !== undefined) return this._session;
      return this.restoreSession();
    }

    /** Whether a session is stored. */
    async hasStoredSession() { return (await this.getVault()).isInUse(); }

    /** Forgets the session: the vault is cleared. */
    async logout() {
      this._session = undefined;
      await (await this.getVault()).clear();
    }

    /** Locks the vault, keeping the stored session. */
    async lockOut() {
      this._session = undefined;
      await (await this.getVault()).lock();
    }

    // Identity Vault's hooks: override them.
    onVaultReady(_config) {}
    onSessionRestored(_session) {}
    onSetupError(_error) {}
    onVaultLocked(_event) {}
    onVaultUnlocked(_config) {}
    onConfigChange(_config) {}
    /** A string for the passcode, or undefined for passgate's own (trusted) prompt. */
    async onPasscodeRequest(_isPasscodeSetRequest) { return undefined; }
  }
  return IonicIdentityVaultUser;
}
