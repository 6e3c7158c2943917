/*
 * passgate-webview.js: WebAuthn for pages in a hybrid app's webview (or any page, through the
 * local HTTP bridge), answered by passgate.
 *
 * Inject it at document start (Tauri initialization script, WKUserScript at
 * .atDocumentStart, Android's WebViewCompat.addDocumentStartJavaScript), or load it as a
 * classic script or module. It replaces navigator.credentials.create/get (for `publicKey`
 * requests), PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable,
 * isConditionalMediationAvailable and getClientCapabilities. Options are sent as WebAuthn
 * Level 3 JSON over a host channel; the reply is rebuilt into a PublicKeyCredential-like
 * object (ArrayBuffers, response getters, getClientExtensionResults(), toJSON()), so page
 * code written for the browser's API works unchanged.
 *
 * The page never names its origin: the host knows it (the webview's committed navigation, the
 * HTTP Origin header) and passgate builds clientDataJSON from that. Anything this script puts
 * in a message is a request, not a claim.
 *
 * Signed actions: navigator.credentials.get({publicKey, payload}) sends `payload` (the action's
 * text, whose SHA-256 ends the challenge) beside the options; passgate's prompt shows it.
 *
 * Each create and get carries `tab`, the document's title: the prompt names the tab it is for.
 *
 * Passkey autofill: when the host channel offers it (getClientCapabilities().conditionalGet),
 * a get with mediation 'conditional' is armed at the host and stays pending, silently, until
 * the person focuses (or types in, or clicks) a field whose autocomplete has the "webauthn"
 * token; then this script sends the host an "autofill" hint and passgate's trusted prompt,
 * not the page, shows the accounts and verifies the person. The hint is this page's word and
 * the host treats it as no more than that: it only lets the prompt open, as an immediate get
 * would. Nothing about accounts comes back until the person has picked one.
 *
 * Host channel (see web-demo/README.md): messages {type, requestId, ...} and replies
 * {requestId, ok, result | error: {name, message}}; {type: "cancel", requestId, target}
 * aborts a request. Channels, picked in this order by install({channel: 'auto'}):
 *   tauri    window.__TAURI_INTERNALS__.invoke / window.__TAURI__.core.invoke
 *            ('plugin:passgate|message', {message}) -> reply
 *   webkit   window.webkit.messageHandlers.passgate.postMessage(message) -> Promise<reply>
 *            (a WKScriptMessageHandlerWithReply)
 *   android  window.PassgateAndroid.postMessage(JSON text); replies arrive as JSON text in
 *            PassgateAndroid.onmessage events (androidx.webkit WebMessageListener)
 *   http     POST {url}/v1/message with Authorization: Bearer {token} (the local bridge)
 */
(function passgateWebviewShim(global) {
  'use strict';

  if (global.passgateWebview) return;
  // WebKitGTK (Tauri and other webviews on Linux) has no WebAuthn at all: no
  // navigator.credentials, no PublicKeyCredential. Give the page both, answering nothing until
  // install() puts passgate behind them, so code written for browsers finds the API it expects.
  const notSupported = () => Promise.reject(new DOMException('passgate: no host channel is installed', 'NotSupportedError'));
  if (global.navigator && !global.navigator.credentials) {
    Object.defineProperty(global.navigator, 'credentials', {
      value: { create: notSupported, get: notSupported, store: notSupported, preventSilentAccess: () => Promise.resolve() },
      configurable: true, enumerable: true, writable: false,
    });
  }
  if (typeof global.PublicKeyCredential !== 'function') {
    const PublicKeyCredential = function PublicKeyCredential() { throw new TypeError('Illegal constructor'); };
    PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable = () => Promise.resolve(false);
    PublicKeyCredential.isConditionalMediationAvailable = () => Promise.resolve(false);
    Object.defineProperty(global, 'PublicKeyCredential', { value: PublicKeyCredential, configurable: true, writable: true });
  }
  const credentials = global.navigator && global.navigator.credentials;
  const PKC = global.PublicKeyCredential;

  // What the browser had, restored by uninstall().
  const original = {
    create: credentials && credentials.create,
    get: credentials && credentials.get,
    isUvpaa: PKC && Object.getOwnPropertyDescriptor(PKC, 'isUserVerifyingPlatformAuthenticatorAvailable'),
    isConditional: PKC && Object.getOwnPropertyDescriptor(PKC, 'isConditionalMediationAvailable'),
    capabilities: PKC && Object.getOwnPropertyDescriptor(PKC, 'getClientCapabilities'),
  };

  const GRACE_MS = 10000;
  const DEFAULT_TIMEOUT_MS = 300000;
  const MIN_TIMEOUT_MS = 1000;
  const MAX_TIMEOUT_MS = 600000;
  const QUERY_TIMEOUT_MS = 5000;
  // A conditional request's host answers each wait within its window (25 s) with
  // {pending: true}; this bounds one wait, not the request (which has no timeout, as in
  // browsers).
  const WAIT_TIMEOUT_MS = 25000 + GRACE_MS;
  const ARM_TIMEOUT_MS = 15000;
  const MAX_REARMS = 3;

  // ---- base64url ------------------------------------------------------------------------------

  function toBase64url(bytes) {
    let s = '';
    for (let i = 0; i < bytes.length; i += 1) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function fromBase64url(text) {
    if (typeof text !== 'string' || !/^[A-Za-z0-9_-]*$/.test(text)) {
      throw new TypeError('passgate: the reply holds malformed base64url');
    }
    const std = text.replace(/-/g, '+').replace(/_/g, '/');
    const s = atob(std + '='.repeat((4 - (std.length % 4)) % 4));
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i += 1) out[i] = s.charCodeAt(i);
    return out.buffer;
  }

  function bytesOf(source) {
    if (source instanceof ArrayBuffer) return new Uint8Array(source);
    if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    return null;
  }

  /**
   * The Level 3 JSON form of options: every BufferSource becomes base64url (that is exactly how
   * the JSON forms are defined), everything else is copied; functions and signals are dropped.
   */
  function toJSONForm(value, depth) {
    if (depth > 16) throw new TypeError('passgate: the options nest too deeply');
    const bytes = bytesOf(value);
    if (bytes) return toBase64url(bytes);
    if (Array.isArray(value)) return value.map((v) => toJSONForm(v, depth + 1));
    if (value && typeof value === 'object') {
      if (typeof AbortSignal !== 'undefined' && value instanceof AbortSignal) return undefined;
      const out = {};
      for (const key of Object.keys(value)) {
        const v = toJSONForm(value[key], depth + 1);
        if (v !== undefined && typeof v !== 'function') out[key] = v;
      }
      return out;
    }
    if (typeof value === 'function' || typeof value === 'symbol') return undefined;
    return value;
  }

  // ---- errors -------------------------------------------------------------------------------

  const DOM_NAMES = new Set(['NotAllowedError', 'InvalidStateError', 'SecurityError', 'NotSupportedError',
    'AbortError', 'TimeoutError', 'SyntaxError', 'ConstraintError', 'UnknownError', 'NetworkError']);

  function errorFrom(error) {
    const name = error && typeof error.name === 'string' ? error.name : 'UnknownError';
    const message = error && typeof error.message === 'string' ? error.message : 'passgate bridge error';
    if (name === 'TypeError') return new TypeError(message);
    return new DOMException(message, DOM_NAMES.has(name) ? name : 'UnknownError');
  }

  function abortReason(signal) {
    return signal.reason !== undefined ? signal.reason : new DOMException('The operation was aborted.', 'AbortError');
  }

  // ---- credentials ----------------------------------------------------------------------------

  function readonly(target, name, get) {
    Object.defineProperty(target, name, { get, enumerable: true, configurable: true });
  }

  function method(target, name, fn) {
    Object.defineProperty(target, name, { value: fn, enumerable: false, configurable: true, writable: true });
  }

  /** getClientExtensionResults(): prf outputs as ArrayBuffers, the rest as sent. */
  function extensionResults(json) {
    const out = {};
    for (const [key, value] of Object.entries(json || {})) {
      if (key === 'prf' && value && typeof value === 'object') {
        const prf = { ...value };
        if (value.results) {
          prf.results = { first: fromBase64url(value.results.first) };
          if (value.results.second !== undefined) prf.results.second = fromBase64url(value.results.second);
        }
        out.prf = prf;
      } else {
        out[key] = JSON.parse(JSON.stringify(value));
      }
    }
    return out;
  }

  /** A PublicKeyCredential-like object from its toJSON() form. */
  function credentialFrom(json, ceremony) {
    if (!json || typeof json.id !== 'string' || !json.response || typeof json.response.clientDataJSON !== 'string') {
      throw new DOMException('passgate: the reply holds no credential', 'UnknownError');
    }
    const r = json.response;
    const proto = (name) => (global[name] && global[name].prototype) || Object.prototype;
    const response = Object.create(proto(ceremony === 'create' ? 'AuthenticatorAttestationResponse' : 'AuthenticatorAssertionResponse'));
    const clientDataJSON = fromBase64url(r.clientDataJSON);
    readonly(response, 'clientDataJSON', () => clientDataJSON);
    if (ceremony === 'create') {
      const attestationObject = fromBase64url(r.attestationObject);
      const authenticatorData = r.authenticatorData === undefined ? null : fromBase64url(r.authenticatorData);
      const publicKey = r.publicKey === undefined ? null : fromBase64url(r.publicKey);
      const transports = Array.isArray(r.transports) ? r.transports.slice() : [];
      readonly(response, 'attestationObject', () => attestationObject);
      method(response, 'getTransports', () => transports.slice());
      method(response, 'getAuthenticatorData', () => authenticatorData);
      method(response, 'getPublicKey', () => publicKey);
      method(response, 'getPublicKeyAlgorithm', () => (typeof r.publicKeyAlgorithm === 'number' ? r.publicKeyAlgorithm : -7));
    } else {
      const authenticatorData = fromBase64url(r.authenticatorData);
      const signature = fromBase64url(r.signature);
      const userHandle = r.userHandle === undefined || r.userHandle === null ? null : fromBase64url(r.userHandle);
      readonly(response, 'authenticatorData', () => authenticatorData);
      readonly(response, 'signature', () => signature);
      readonly(response, 'userHandle', () => userHandle);
    }
    method(response, 'toJSON', () => JSON.parse(JSON.stringify(r)));

    const credential = Object.create(PKC ? PKC.prototype : Object.prototype);
    const rawId = fromBase64url(json.rawId || json.id);
    readonly(credential, 'id', () => json.id);
    readonly(credential, 'rawId', () => rawId);
    readonly(credential, 'type', () => 'public-key');
    readonly(credential, 'authenticatorAttachment', () => json.authenticatorAttachment || null);
    readonly(credential, 'response', () => response);
    method(credential, 'getClientExtensionResults', () => extensionResults(json.clientExtensionResults));
    method(credential, 'toJSON', () => JSON.parse(JSON.stringify(json)));
    return credential;
  }

  // ---- channels -------------------------------------------------------------------------------

  /** Tauri: a command handler `plugin:passgate|message` (or a name of the app's choosing). */
  function tauriChannel(command) {
    const invoke = (global.__TAURI_INTERNALS__ && global.__TAURI_INTERNALS__.invoke)
      || (global.__TAURI__ && global.__TAURI__.core && global.__TAURI__.core.invoke);
    if (typeof invoke !== 'function') return null;
    return { name: 'tauri', send: (message) => Promise.resolve(invoke(command || 'plugin:passgate|message', { message })) };
  }

  /** WKWebView: a WKScriptMessageHandlerWithReply registered as "passgate". */
  function webkitChannel() {
    const handler = global.webkit && global.webkit.messageHandlers && global.webkit.messageHandlers.passgate;
    if (!handler || typeof handler.postMessage !== 'function') return null;
    return {
      name: 'webkit',
      send: (message) => Promise.resolve(handler.postMessage(message)).then((reply) => (typeof reply === 'string' ? JSON.parse(reply) : reply)),
    };
  }

  /** Android: a WebMessageListener object "PassgateAndroid" (postMessage / onmessage). */
  function androidChannel() {
    const port = global.PassgateAndroid;
    if (!port || typeof port.postMessage !== 'function') return null;
    const waiting = new Map();
    const receive = (event) => {
      let reply;
      try { reply = JSON.parse(typeof event.data === 'string' ? event.data : String(event.data)); } catch { return; }
      const settle = reply && waiting.get(String(reply.requestId));
      if (settle) { waiting.delete(String(reply.requestId)); settle(reply); }
    };
    if (typeof port.addEventListener === 'function') port.addEventListener('message', receive);
    else port.onmessage = receive;
    return {
      name: 'android',
      send: (message) => new Promise((resolve) => {
        if (message.requestId !== undefined && message.type !== 'cancel') waiting.set(String(message.requestId), resolve);
        port.postMessage(JSON.stringify(message));
        if (message.type === 'cancel') resolve({ requestId: message.requestId, ok: true, result: {} });
      }),
    };
  }

  /** The local HTTP bridge (`passgate demo`, `passgate bridge local-http`). */
  function httpChannel(config) {
    const base = String(config.url || '').replace(/\/+$/, '');
    if (!/^http:\/\/(127\.0\.0\.1|localhost|\[::1\]):\d+$/.test(base)) {
      throw new TypeError(`passgate: the local bridge must be on a loopback address, not ${config.url}`);
    }
    return {
      name: 'http',
      url: base,
      async send(message, signal) {
        let response;
        try {
          response = await fetch(`${base}/v1/message`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${config.token}` },
            body: JSON.stringify(message),
            signal,
            credentials: 'omit',
            cache: 'no-store',
          });
        } catch (e) {
          if (signal && signal.aborted) throw abortReason(signal);
          throw new DOMException(`passgate: the local bridge at ${base} cannot be reached (is passgate running, and is this page allowed?)`, 'NotAllowedError');
        }
        const body = await response.json().catch(() => null);
        if (response.status === 401) {
          global.dispatchEvent?.(new CustomEvent('passgate-webview-unpaired', { detail: body && body.error }));
          // Not "cancelled or timed out": nothing reached passgate. `passgateCode` says why
          // (pairing_stale: the bridge does not know the token; pairing_invalid: another
          // origin's; pairing_required: none sent), so the page can offer to pair again.
          const e = new DOMException(`passgate: this page is not paired with passgate (${body?.error?.code ?? 'HTTP 401'}): pair again`, 'NotAllowedError');
          e.passgateCode = body?.error?.code ?? 'http_401';
          throw e;
        }
        if (!response.ok || !body) {
          throw new DOMException(`passgate: the local bridge refused the request (${body?.error?.code ?? `HTTP ${response.status}`}: ${body?.error?.message ?? ''})`, 'NotAllowedError');
        }
        return body;
      },
    };
  }

  function pickChannel(config) {
    const wanted = config.channel || 'auto';
    if (typeof wanted === 'object' && typeof wanted.send === 'function') return { name: wanted.name || 'custom', send: wanted.send };
    if (wanted === 'http' || (wanted === 'auto' && config.http)) return httpChannel(config.http || config);
    const finders = { tauri: () => tauriChannel(config.tauriCommand), webkit: webkitChannel, android: androidChannel };
    if (wanted !== 'auto') {
      const found = finders[wanted] && finders[wanted]();
      if (!found) throw new TypeError(`passgate: no ${wanted} host channel in this page`);
      return found;
    }
    for (const find of Object.values(finders)) {
      const found = find();
      if (found) return found;
    }
    return null;
  }

  // ---- requests -----------------------------------------------------------------------------

  let channel = null;
  let counter = 0;

  function randomText(n) {
    return global.crypto && global.crypto.getRandomValues ? toBase64url(global.crypto.getRandomValues(new Uint8Array(n))) : String(Math.random()).slice(2, 10);
  }

  function newRequestId() {
    counter += 1;
    return `pg-${counter}-${randomText(6)}`;
  }

  // Scopes the host's "a newer conditional request replaces the older" to this document
  // (another tab of the same pairing keeps its own). Grants nothing.
  const documentId = `doc-${randomText(9)}`;

  /**
   * Sends {type, ...payload} and resolves with the reply's result. Rejects with the reply's
   * DOMException, with the signal's reason when aborted (and tells the host to cancel), and with
   * NotAllowedError when the host does not answer within `timeoutMs`.
   */
  function request(type, payload, { signal, timeoutMs = DEFAULT_TIMEOUT_MS + GRACE_MS, requestId = newRequestId() } = {}) {
    if (!channel) return Promise.reject(new DOMException('passgate: no host channel is installed', 'NotSupportedError'));
    if (signal && signal.aborted) return Promise.reject(abortReason(signal));
    const used = channel;
    const message = { ...payload, type, requestId };
    // Which tab asks: the prompt names it (as this page's own name for itself) so that a
    // person with two tabs of one site open knows which one a prompt is for.
    if ((type === 'create' || type === 'get') && typeof document !== 'undefined' && document.title) {
      message.tab = document.title.slice(0, 120);
    }
    const transportAbort = typeof AbortController !== 'undefined' ? new AbortController() : null;
    return new Promise((resolve, reject) => {
      let done = false;
      const finish = (fn, value) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (signal) signal.removeEventListener('abort', onAbort);
        fn(value);
      };
      const cancel = () => {
        used.send({ type: 'cancel', requestId: newRequestId(), target: requestId }).catch(() => {});
        transportAbort?.abort();
      };
      const onAbort = () => {
        cancel();
        finish(reject, abortReason(signal));
      };
      const timer = setTimeout(() => {
        cancel();
        finish(reject, new DOMException(`passgate: the host did not answer within ${timeoutMs} ms`, 'NotAllowedError'));
      }, timeoutMs);
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
      Promise.resolve()
        .then(() => used.send(message, transportAbort?.signal))
        .then((reply) => {
          if (!reply || typeof reply !== 'object') throw new DOMException('passgate: the host sent no reply', 'UnknownError');
          if (reply.ok === true) finish(resolve, reply.result);
          else finish(reject, errorFrom(reply.error));
        })
        .catch((e) => finish(reject, e instanceof Error || e instanceof DOMException ? e : errorFrom(e)));
    });
  }

  function ceremonyTimeout(options) {
    const t = Number(options && options.timeout);
    const ms = Number.isFinite(t) && t > 0 ? t : DEFAULT_TIMEOUT_MS;
    return Math.min(MAX_TIMEOUT_MS, Math.max(MIN_TIMEOUT_MS, ms)) + GRACE_MS;
  }

  async function create(options) {
    if (!options || !options.publicKey) return original.create.call(credentials, options);
    const json = toJSONForm(options.publicKey, 0);
    const result = await request('create', { options: json }, { signal: options.signal, timeoutMs: ceremonyTimeout(json) });
    return credentialFrom(result, 'create');
  }

  // ---- passkey autofill (conditional mediation) ---------------------------------------------

  let conditionalSupport = null; // Promise<boolean> for the installed channel
  let activeConditional = null; // this document's armed conditional request

  /** Whether the host channel offers conditional requests (asked once per install). */
  function hostConditional() {
    if (!channel) return Promise.resolve(false);
    if (!conditionalSupport) {
      const asking = request('getClientCapabilities', {}, { timeoutMs: QUERY_TIMEOUT_MS })
        .then((c) => Boolean(c && c.conditionalGet === true));
      conditionalSupport = asking;
      // A host that did not answer is asked again next time.
      asking.catch(() => { if (conditionalSupport === asking) conditionalSupport = null; });
    }
    return conditionalSupport.catch(() => false);
  }

  /** A request that only the page's abort ends: a host without conditional requests. */
  function pendingUntilAborted(signal) {
    return new Promise((_, reject) => {
      if (!signal) return;
      if (signal.aborted) reject(abortReason(signal));
      else signal.addEventListener('abort', () => reject(abortReason(signal)), { once: true });
    });
  }

  /** A field whose autocomplete has the "webauthn" token (e.g. "username webauthn"). */
  function isPasskeyField(element) {
    if (!element || typeof element.getAttribute !== 'function') return false;
    if (element.tagName !== 'INPUT' && element.tagName !== 'TEXTAREA') return false;
    const tokens = String(element.getAttribute('autocomplete') || '').toLowerCase().split(/\s+/);
    return tokens.includes('webauthn');
  }

  /**
   * The person at a passkey field: the first focus or keystroke offers the passkeys once;
   * after that only a click on the field offers them again (so that dismissing passgate's
   * prompt, the window regaining focus, or typing a username does not bring it back).
   */
  function onFieldEvent(event) {
    const active = activeConditional;
    if (!active || active.done) return;
    const path = typeof event.composedPath === 'function' ? event.composedPath() : [];
    if (!isPasskeyField(path[0] || event.target)) return;
    if (event.type === 'pointerdown' || !active.offered) {
      active.offered = true;
      active.hint();
    }
  }

  const FIELD_EVENTS = ['focusin', 'input', 'pointerdown'];
  let listening = false;

  function listen(on) {
    const doc = global.document;
    if (!doc || listening === on) return;
    listening = on;
    for (const type of FIELD_EVENTS) {
      if (on) doc.addEventListener(type, onFieldEvent, true);
      else doc.removeEventListener(type, onFieldEvent, true);
    }
  }

  function endConditional(reason) {
    if (activeConditional) activeConditional.end(new DOMException(reason, 'AbortError'));
  }

  /**
   * A conditional get: armed at the host, then waited for window after window. Settles with
   * the credential the person picked in passgate's prompt, the page's abort reason, or
   * AbortError when a newer conditional request of this page replaces it.
   */
  function conditionalGet(json, signal) {
    endConditional('passgate: a newer conditional request replaced this one');
    const used = channel;
    return new Promise((resolve, reject) => {
      const entry = {
        id: newRequestId(), armed: false, offered: false, hintWaiting: false, done: false,
        transport: typeof AbortController !== 'undefined' ? new AbortController() : null,
      };
      const onAbort = () => entry.end(abortReason(signal));
      entry.hint = () => {
        if (entry.done) return;
        if (!entry.armed) { entry.hintWaiting = true; return; }
        request('autofill', { target: entry.id }, { timeoutMs: QUERY_TIMEOUT_MS }).catch(() => {});
      };
      entry.end = (error, credential) => {
        if (entry.done) return;
        entry.done = true;
        if (activeConditional === entry) activeConditional = null;
        if (signal) signal.removeEventListener('abort', onAbort);
        if (error) {
          entry.transport?.abort();
          used.send({ type: 'cancel', requestId: newRequestId(), target: entry.id }).catch(() => {});
          reject(error);
        } else {
          resolve(credential);
        }
      };
      if (signal) signal.addEventListener('abort', onAbort, { once: true });
      activeConditional = entry;
      const transportSignal = entry.transport?.signal;
      const arm = () => request('get', { mediation: 'conditional', documentId, options: json },
        { requestId: entry.id, signal: transportSignal, timeoutMs: ARM_TIMEOUT_MS });
      (async () => {
        let reply = await arm();
        entry.armed = true;
        if (entry.hintWaiting) entry.hint();
        let rearms = 0;
        while (!entry.done) {
          if (!reply || reply.pending !== true) {
            entry.end(null, credentialFrom(reply, 'get'));
            return;
          }
          try {
            reply = await request('wait', { target: entry.id }, { signal: transportSignal, timeoutMs: WAIT_TIMEOUT_MS });
            rearms = 0;
          } catch (e) {
            // The host dropped it (this page was frozen longer than the host waits for a
            // request nobody waits for): arm it again, it is still the page's request.
            if (entry.done || !e || e.name !== 'InvalidStateError' || rearms >= MAX_REARMS) throw e;
            rearms += 1;
            entry.armed = false;
            entry.id = newRequestId();
            reply = await arm();
            entry.armed = true;
          }
        }
      })().catch((e) => entry.end(e instanceof Error || e instanceof DOMException ? e : errorFrom(e)));
    });
  }

  async function get(options) {
    if (!options || !options.publicKey) return original.get.call(credentials, options);
    if (options.mediation === 'conditional') {
      if (options.signal && options.signal.aborted) throw abortReason(options.signal);
      const json = toJSONForm(options.publicKey, 0);
      if (!(await hostConditional())) {
        // No autofill here: like a browser whose person never picks a suggestion, the
        // request waits until the page aborts it.
        return pendingUntilAborted(options.signal);
      }
      if (options.signal && options.signal.aborted) throw abortReason(options.signal);
      return conditionalGet(json, options.signal);
    }
    const json = toJSONForm(options.publicKey, 0);
    const message = { options: json };
    // A signed action's text (what you see is what you sign): passgate shows it in its own
    // prompt after checking that the challenge ends with SHA-256 of exactly this text, and
    // refuses the request otherwise. The browser's own get() ignores the member.
    if (options.payload !== undefined) {
      if (typeof options.payload !== 'string') throw new TypeError('passgate: payload must be the action\'s text, a string');
      message.payload = options.payload;
    }
    const result = await request('get', message, { signal: options.signal, timeoutMs: ceremonyTimeout(json) });
    return credentialFrom(result, 'get');
  }

  function define(target, name, value) {
    Object.defineProperty(target, name, { value, configurable: true, writable: true, enumerable: false });
  }

  function restore(target, name, descriptor) {
    if (descriptor) Object.defineProperty(target, name, descriptor);
    else delete target[name];
  }

  const api = {
    version: '1',
    /** The channel in use ('tauri', 'webkit', 'android', 'http', 'custom'), or null. */
    get channel() { return channel ? channel.name : null; },
    /**
     * Replaces the page's WebAuthn entry points with passgate's. config.channel: 'auto'
     * (default), 'tauri', 'webkit', 'android', 'http' (with config.http = {url, token}) or an
     * object {name, send(message, signal) -> Promise<reply>}.
     */
    install(config = {}) {
      const picked = pickChannel(config);
      if (!picked) throw new TypeError('passgate: no host channel found (no Tauri, WKWebView or Android bridge, no local bridge configured)');
      endConditional('passgate: the host channel changed');
      channel = picked;
      conditionalSupport = null;
      listen(true);
      if (credentials) {
        define(credentials, 'create', create);
        define(credentials, 'get', get);
      }
      if (PKC) {
        define(PKC, 'isUserVerifyingPlatformAuthenticatorAvailable',
          () => request('isUvpaa', {}, { timeoutMs: QUERY_TIMEOUT_MS }).then((r) => r === true, () => false));
        define(PKC, 'isConditionalMediationAvailable', () => hostConditional());
        define(PKC, 'getClientCapabilities',
          () => request('getClientCapabilities', {}, { timeoutMs: QUERY_TIMEOUT_MS }).catch(() => ({})));
      }
      return channel.name;
    },
    /** Gives the page the browser's own WebAuthn back. */
    uninstall() {
      endConditional('passgate: the shim was uninstalled');
      listen(false);
      channel = null;
      conditionalSupport = null;
      if (credentials) {
        define(credentials, 'create', original.create);
        define(credentials, 'get', original.get);
      }
      if (PKC) {
        restore(PKC, 'isUserVerifyingPlatformAuthenticatorAvailable', original.isUvpaa);
        restore(PKC, 'isConditionalMediationAvailable', original.isConditional);
        restore(PKC, 'getClientCapabilities', original.capabilities);
      }
    },
    /** Any message type the host handles (app-facing APIs share the channel). */
    request,
    /**
     * Pairs this page with the local bridge at `url` using the code passgate shows in its own
     * terminal; resolves with the token for install({channel: 'http', http: {url, token}}).
     */
    async pair(url, code) {
      const base = httpChannel({ url, token: '' }).url;
      let response;
      try {
        response = await fetch(`${base}/v1/pair`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ code }),
          credentials: 'omit', cache: 'no-store',
        });
      } catch {
        throw new DOMException(`passgate: the local bridge at ${base} cannot be reached (is passgate running, and is this page's origin allowed?)`, 'NetworkError');
      }
      const body = await response.json().catch(() => null);
      if (!response.ok || !body || typeof body.token !== 'string') {
        const e = new DOMException(body?.error?.message ?? `pairing failed (HTTP ${response.status})`, 'NotAllowedError');
        e.passgateCode = body?.error?.code ?? `http_${response.status}`;
        throw e;
      }
      return body.token;
    },
  };

  Object.defineProperty(global, 'passgateWebview', { value: api, configurable: false, writable: false, enumerable: false });

  // A native host announces itself by being there; a page (or host) may also preconfigure.
  try {
    const preset = global.passgateWebviewConfig;
    if (preset) api.install(preset);
    else if (tauriChannel() || webkitChannel() || androidChannel()) api.install({ channel: 'auto' });
  } catch (e) {
    if (global.console) global.console.warn('passgate-webview:', e.message);
  }
}(globalThis));
