// passgate bridge: the browser side of the WebAuthn client.
//
// Chromium hands every navigator.credentials.create()/get() and
// isUserVerifyingPlatformAuthenticatorAvailable() call to this extension once it has called
// chrome.webAuthenticationProxy.attach(). Each request goes to the native-messaging host
// `dev.passgate.bridge` (`passgate bridge native-host`), which builds clientDataJSON, talks CTAP
// 2.1 to the authenticator and answers with PublicKeyCredential.toJSON().
//
// The caller's origin: chrome.webAuthenticationProxy has no origin field of its own. Chromium
// writes the calling frame's origin into the proxied options as
// `extensions.remoteDesktopClientOverride = {origin, sameOriginWithAncestors}` (a page that passes
// that extension itself is refused by Chromium unless enterprise policy allows it, and a request
// that already carries it is not proxied). That value is the only origin used here: nothing a
// page sends can reach this worker any other way (no externally_connectable, no content script).
// A request without it is answered with SecurityError, never guessed from tabs.
//
// The one thing pages may send here (externally_connectable, the demo's origins only): a signed
// action's text, `{type: "payload", challenge, payload}`, which Chromium's proxy cannot carry
// (it forwards the WebAuthn options only). It is keyed by the sender's origin as Chromium
// reports it (`sender.origin`, never the page's word) and the challenge, kept for a minute, and
// attached to the get request of that origin with that challenge. The native host shows it only
// after checking that the challenge's last 32 bytes are SHA-256 of exactly that text, so a page
// cannot show one thing and sign another, and another origin cannot put text on this one's
// request.

const HOST = 'dev.passgate.bridge';
// Bounds on waiting for the native host. Chromium puts the ceremony's timeout into the proxied
// options (it chose 180 s for a page asking 5 s on Chromium 156); the wait is that, clamped, plus
// a grace period. The worker's own console (and tests) may lower them through passgateConfig;
// pages cannot reach it.
const config = {
  defaultTimeoutMs: 120_000, // when the options carry none
  minTimeoutMs: 5_000,
  maxTimeoutMs: 600_000,
  graceMs: 3_000, // after the ceremony's own timeout
  uvpaaTimeoutMs: 5_000,
};
globalThis.passgateConfig = config;
const ATTACH_RETRY_MS = 1_000;

/** Longest action text accepted (the bridge's own limit is the same). */
const MAX_PAYLOAD_BYTES = 8192;
/** How long a page's action text waits for its get request. */
const PAYLOAD_TTL_MS = 60_000;
/** `${origin} ${challenge}` -> { payload, expires } for texts pages announced. */
const payloads = new Map();

function payloadKey(origin, challenge) {
  return `${origin} ${challenge}`;
}

function prunePayloads(now = Date.now()) {
  for (const [key, entry] of payloads) if (entry.expires <= now) payloads.delete(key);
}

/** Takes the text announced for (origin, challenge), if any: one request uses it. */
function takePayload(origin, challenge) {
  prunePayloads();
  const key = payloadKey(origin, challenge);
  const entry = payloads.get(key);
  payloads.delete(key);
  return entry?.payload;
}

/** requestId -> { kind, timer, settle(reply) } for requests the native host has not answered. */
const pending = new Map();
/** The native port, or null (connected on the next request). */
let port = null;
let connections = 0;

/** A short diagnostic ring (no key material): what tests and chrome://extensions can inspect. */
const trace = [];
function note(event, fields = {}) {
  trace.push({ at: Date.now(), event, ...fields });
  if (trace.length > 100) trace.shift();
}
globalThis.passgateTrace = trace;
globalThis.passgateStatus = () => ({ attached, connected: port !== null, connections, pending: pending.size });

// ---- attaching --------------------------------------------------------------------------------

let attached = false;

async function attach() {
  try {
    await chrome.webAuthenticationProxy.attach();
    attached = true;
    note('attached');
  } catch (e) {
    const message = String(e?.message ?? e);
    // Attachment outlives a service-worker restart: "already attached" means this extension
    // has it, unless another extension is the one attached (then keep trying, slowly).
    if (/already/i.test(message) && !/another/i.test(message)) {
      attached = true;
      note('attached', { already: true });
      return;
    }
    attached = false;
    note('attach-failed', { message });
    setTimeout(attach, /another/i.test(message) ? 10 * ATTACH_RETRY_MS : ATTACH_RETRY_MS);
  }
}

// ---- the native host --------------------------------------------------------------------------

function connect() {
  if (port) return port;
  connections += 1;
  const p = chrome.runtime.connectNative(HOST);
  note('native-connect', { connection: connections });
  p.onMessage.addListener((message) => {
    const entry = pending.get(message?.requestId);
    if (!entry) {
      note('native-unmatched', { requestId: message?.requestId ?? null });
      return;
    }
    entry.settle(message);
  });
  p.onDisconnect.addListener(() => {
    const why = chrome.runtime.lastError?.message ?? 'the native host closed the connection';
    note('native-disconnect', { message: why });
    if (port === p) port = null;
    // Whatever was in flight is lost with the host; the next request starts a new one.
    for (const entry of [...pending.values()]) {
      entry.settle({ ok: false, error: { name: 'NotAllowedError', message: `passgate native host stopped: ${why}` } });
    }
  });
  port = p;
  return p;
}

/** Tells a running host to drop `requestId`; starts no host for that. */
function cancel(requestId) {
  if (!port) return;
  try {
    port.postMessage({ requestId, type: 'cancel' });
  } catch {
    port = null;
  }
}

function post(message) {
  try {
    connect().postMessage(message);
    return null;
  } catch (e) {
    // A port that died between the check and the post: drop it, try a fresh one once.
    port = null;
    try {
      connect().postMessage(message);
      return null;
    } catch (again) {
      return String(again?.message ?? again);
    }
  }
}

/**
 * Sends one request to the native host; resolves with its reply, or with a NotAllowedError reply
 * after `ms` (and then tells the host to cancel). Never rejects.
 */
function ask(requestId, message, ms) {
  return new Promise((resolve) => {
    let done = false;
    const settle = (reply) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      pending.delete(requestId);
      resolve(reply);
    };
    const timer = setTimeout(() => {
      note('timeout', { requestId, ms });
      cancel(requestId);
      settle({ ok: false, error: { name: 'NotAllowedError', message: `the passgate native host did not answer within ${ms} ms` } });
    }, ms);
    pending.set(requestId, { kind: message.type, settle });
    const failed = post({ requestId, ...message });
    if (failed) settle({ ok: false, error: { name: 'NotAllowedError', message: `cannot reach the passgate native host: ${failed}` } });
  });
}

// ---- requests ---------------------------------------------------------------------------------

/** The DOMException details Chromium accepts, from whatever the host said. */
function domError(error) {
  const name = typeof error?.name === 'string' && /^[A-Za-z]+Error$/.test(error.name) ? error.name : 'UnknownError';
  const message = typeof error?.message === 'string' ? error.message.slice(0, 500) : 'passgate bridge error';
  return { name, message };
}

function ceremonyTimeout(options) {
  const t = Number(options?.timeout);
  const ms = Number.isFinite(t) && t > 0 ? t : config.defaultTimeoutMs;
  return Math.min(config.maxTimeoutMs, Math.max(config.minTimeoutMs, ms)) + config.graceMs;
}

/**
 * Parses requestDetailsJson and takes the caller's origin out of the options Chromium filled in.
 * Returns { options, origin } or { error }.
 */
function callerAndOptions(requestDetailsJson) {
  let options;
  try {
    options = JSON.parse(requestDetailsJson);
  } catch {
    return { error: { name: 'TypeError', message: 'the browser sent options that are not JSON' } };
  }
  if (!options || typeof options !== 'object') {
    return { error: { name: 'TypeError', message: 'the browser sent no options' } };
  }
  const override = options.extensions?.remoteDesktopClientOverride;
  const origin = override?.origin;
  if (typeof origin !== 'string' || origin === '' || origin === 'null') {
    return { error: { name: 'SecurityError', message: 'the browser did not name the calling origin' } };
  }
  if (override.sameOriginWithAncestors === false) {
    // The top-level origin is not in the request, so clientDataJSON could not name it.
    return { error: { name: 'NotAllowedError', message: 'passkeys in cross-origin frames are not supported by the passgate extension' } };
  }
  const extensions = { ...options.extensions };
  delete extensions.remoteDesktopClientOverride;
  const forwarded = { ...options, extensions };
  if (Object.keys(extensions).length === 0) delete forwarded.extensions;
  return { options: forwarded, origin };
}

async function complete(kind, details) {
  try {
    if (kind === 'create') await chrome.webAuthenticationProxy.completeCreateRequest(details);
    else await chrome.webAuthenticationProxy.completeGetRequest(details);
    note('completed', { kind, requestId: details.requestId, error: details.error?.name ?? null });
  } catch (e) {
    // Already cancelled by Chromium, or the response was refused.
    note('complete-failed', { kind, requestId: details.requestId, message: String(e?.message ?? e) });
  }
}

async function ceremony(kind, { requestId, requestDetailsJson }) {
  const parsed = callerAndOptions(requestDetailsJson);
  if (parsed.error) {
    note('refused', { kind, requestId, error: parsed.error.name });
    await complete(kind, { requestId, error: parsed.error });
    return;
  }
  note('request', { kind, requestId, origin: parsed.origin, rpId: kind === 'create' ? parsed.options.rp?.id ?? null : parsed.options.rpId ?? null });
  const message = { type: kind, origin: parsed.origin, options: parsed.options };
  if (kind === 'get' && typeof parsed.options.challenge === 'string') {
    const payload = takePayload(parsed.origin, parsed.options.challenge);
    if (payload !== undefined) {
      message.payload = payload;
      note('payload-attached', { requestId, origin: parsed.origin, bytes: payload.length });
    }
  }
  const reply = await ask(requestId, message, ceremonyTimeout(parsed.options));
  if (reply.cancelled) return;
  if (!reply.ok) {
    await complete(kind, { requestId, error: domError(reply.error) });
    return;
  }
  let responseJson;
  try {
    const credential = reply.credential;
    if (!credential || typeof credential.id !== 'string' || typeof credential.response?.clientDataJSON !== 'string') {
      throw new Error('no credential in the reply');
    }
    responseJson = JSON.stringify(credential);
  } catch (e) {
    await complete(kind, { requestId, error: { name: 'UnknownError', message: `the native host's reply is unusable: ${e.message}` } });
    return;
  }
  await complete(kind, { requestId, responseJson });
}

async function isUvpaa({ requestId }) {
  // Chromium names no origin for this question and it reveals nothing about any credential.
  const reply = await ask(requestId, { type: 'isUvpaa' }, config.uvpaaTimeoutMs);
  if (reply.cancelled) return;
  const answer = reply.ok === true && reply.result === true;
  note('isUvpaa', { requestId, answer, error: reply.ok ? null : reply.error?.name ?? null });
  try {
    await chrome.webAuthenticationProxy.completeIsUvpaaRequest({ requestId, isUvpaa: answer });
  } catch (e) {
    note('complete-failed', { kind: 'isUvpaa', requestId, message: String(e?.message ?? e) });
  }
}

/** A page's `{type: "payload", challenge, payload}`: remembered for its next get request. */
function onPageMessage(message, sender, sendResponse) {
  const origin = sender?.origin;
  const refuse = (name, text) => {
    note('payload-refused', { origin: origin ?? null, error: name });
    sendResponse({ ok: false, error: { name, message: text } });
  };
  if (typeof origin !== 'string' || origin === '' || origin === 'null') return refuse('SecurityError', 'the browser did not name the sending origin');
  if (message?.type !== 'payload') return refuse('NotSupportedError', 'pages may send only {type: "payload", challenge, payload}');
  if (typeof message.challenge !== 'string' || !/^[A-Za-z0-9_-]{16,}$/.test(message.challenge)) return refuse('TypeError', '"challenge" is not base64url');
  if (typeof message.payload !== 'string') return refuse('TypeError', '"payload" is not a string');
  if (new TextEncoder().encode(message.payload).length > MAX_PAYLOAD_BYTES) return refuse('TypeError', `"payload" is over ${MAX_PAYLOAD_BYTES} bytes`);
  prunePayloads();
  if (payloads.size >= 64) return refuse('NotAllowedError', 'too many action texts are waiting');
  payloads.set(payloadKey(origin, message.challenge), { payload: message.payload, expires: Date.now() + PAYLOAD_TTL_MS });
  note('payload', { origin, bytes: message.payload.length });
  sendResponse({ ok: true });
  return undefined;
}

// Listeners are registered synchronously at top level so a restarted worker gets its events.
chrome.runtime.onMessageExternal.addListener(onPageMessage);
chrome.webAuthenticationProxy.onCreateRequest.addListener((request) => { ceremony('create', request); });
chrome.webAuthenticationProxy.onGetRequest.addListener((request) => { ceremony('get', request); });
chrome.webAuthenticationProxy.onIsUvpaaRequest.addListener((request) => { isUvpaa(request); });
chrome.webAuthenticationProxy.onRequestCanceled.addListener((requestId) => {
  note('canceled', { requestId });
  const entry = pending.get(requestId);
  if (!entry) return;
  cancel(requestId);
  // Chromium has already rejected the page's promise: nothing to complete.
  entry.settle({ cancelled: true });
});
chrome.runtime.onStartup.addListener(attach);
chrome.runtime.onInstalled.addListener(attach);
attach();
