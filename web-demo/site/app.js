// Shared code of the demo pages: the JSON API, the WebAuthn calls, messages for people, and
// the choice of authenticator (this browser's own, or passgate's through the webview shim and
// the local bridge that `passgate demo` runs).

// The pairing (bridge address and token) is the site's, shared by its tabs (localStorage);
// which authenticator answers is each tab's own choice (sessionStorage), so switching in one
// tab leaves the others, and the pairing, as they are.
const BRIDGE_KEY = 'passgate.localBridge';
const TAB_CHOICE_KEY = 'passgate.tabChoice';

/**
 * Which authenticator answers: { kind: 'browser' } or { kind: 'passgate', url }; `notice`
 * says why passgate's pairing no longer works (revoked, or removed in another tab): the tab
 * stays on passgate, whose requests then say "pair again", until the person pairs again or
 * picks the browser's (a request is never silently sent to another authenticator); `token`
 * is the pairing this tab's shim uses.
 */
export const authenticatorChoice = { kind: 'browser', url: null, notice: null, token: null };

/** Error codes of the local bridge that mean "this page must pair again". */
const PAIR_AGAIN = new Set(['pairing_stale', 'pairing_invalid', 'pairing_required']);
const PAIR_AGAIN_TEXT = "passgate no longer knows this site's pairing (it was revoked with “passgate bridge unpair”, or passgate's pairings were reset). passgate asked nothing and signed nothing. Pair again: press “Use passgate's authenticator” and type the code passgate shows";

function storedBridge() {
  try {
    const value = JSON.parse(localStorage.getItem(BRIDGE_KEY) ?? 'null');
    return value && typeof value.url === 'string' && typeof value.token === 'string' ? value : null;
  } catch {
    return null;
  }
}

async function loadShim() {
  if (!globalThis.passgateWebview) await import('/shim/passgate-webview.js');
  return globalThis.passgateWebview;
}

// A paired page uses passgate's authenticator from the first WebAuthn call on, unless this
// tab chose the browser's.
{
  const paired = storedBridge();
  if (paired && sessionStorage.getItem(TAB_CHOICE_KEY) !== 'browser') {
    try {
      (await loadShim()).install({ channel: 'http', http: paired });
      authenticatorChoice.kind = 'passgate';
      authenticatorChoice.url = paired.url;
      authenticatorChoice.token = paired.token;
    } catch (e) {
      console.warn('passgate shim:', e);
      localStorage.removeItem(BRIDGE_KEY);
    }
  }
}

// base64url without padding, for browsers without the WebAuthn Level 3 JSON helpers.
const b64u = {
  encode(buffer) {
    const bytes = buffer instanceof Uint8Array ? buffer : new Uint8Array(buffer);
    let s = '';
    for (let i = 0; i < bytes.length; i += 1) s += String.fromCharCode(bytes[i]);
    return btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
  },
  decode(text) {
    const std = text.replaceAll('-', '+').replaceAll('_', '/');
    const s = atob(std + '='.repeat((4 - (std.length % 4)) % 4));
    const out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i += 1) out[i] = s.charCodeAt(i);
    return out.buffer;
  },
};

/** An error the page can show: the server's code and message, or a WebAuthn failure. */
export class DemoError extends Error {
  constructor(code, message, { status, server = false } = {}) {
    super(message);
    this.code = code;
    this.status = status;
    this.server = server;
  }
}

/** Calls the relying party's JSON API; a 4xx/5xx becomes a DemoError with the server's code. */
export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { accept: 'application/json' } };
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new DemoError('network', 'The server cannot be reached. Is passgate still running?');
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = data.error ?? {};
    throw new DemoError(e.code ?? `http_${response.status}`, e.message ?? `The server answered ${response.status}.`,
      { status: response.status, server: true });
  }
  return data;
}

// WebAuthn Level 3 JSON forms when the browser has them; the hand-written fallback otherwise.
function creationOptions(json) {
  if (typeof PublicKeyCredential.parseCreationOptionsFromJSON === 'function') {
    return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: b64u.decode(json.challenge),
    user: { ...json.user, id: b64u.decode(json.user.id) },
    excludeCredentials: (json.excludeCredentials ?? []).map((c) => ({ ...c, id: b64u.decode(c.id) })),
  };
}

function requestOptions(json) {
  if (typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function') {
    return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  }
  return {
    ...json,
    challenge: b64u.decode(json.challenge),
    allowCredentials: (json.allowCredentials ?? []).map((c) => ({ ...c, id: b64u.decode(c.id) })),
  };
}

function credentialJSON(credential) {
  if (typeof credential.toJSON === 'function') return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: b64u.encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = b64u.encode(r.attestationObject);
    response.transports = r.getTransports?.() ?? [];
  } else {
    response.authenticatorData = b64u.encode(r.authenticatorData);
    response.signature = b64u.encode(r.signature);
    if (r.userHandle) response.userHandle = b64u.encode(r.userHandle);
  }
  return {
    id: credential.id,
    rawId: b64u.encode(credential.rawId),
    type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment ?? undefined,
    clientExtensionResults: credential.getClientExtensionResults(),
    response,
  };
}

/** Turns a WebAuthn DOMException into something a person can act on. */
function webauthnError(e, ceremony, waited) {
  if (waited?.cancelledHere) {
    return new DemoError('AbortError', 'You cancelled the request on this page; nothing was signed.');
  }
  if (PAIR_AGAIN.has(e?.passgateCode)) {
    // Not "cancelled or timed out": the bridge refused before anything was asked.
    const out = new DemoError(e.passgateCode, `${PAIR_AGAIN_TEXT}.`);
    out.details = e.message.replace(/^passgate: /, '');
    return out;
  }
  if (authenticatorChoice.kind === 'passgate' && e?.message && !['InvalidStateError', 'NotSupportedError'].includes(e.name)) {
    // passgate says why in words (declined in its prompt, no answer within N s, a text that
    // does not match the challenge, not paired): that is the message; a CTAP status, when
    // there is one, goes to the details line.
    const said = e.message.replace(/^passgate: /, '');
    const details = said.match(/\s*\((CTAP [^)]*\))\)?$/);
    const text = details ? said.slice(0, details.index) : said;
    const out = new DemoError(e.name ?? 'webauthn', `${text.charAt(0).toUpperCase()}${text.slice(1)}.`);
    if (details) out.details = details[1];
    return out;
  }
  const explained = browserWebauthnError(e, ceremony);
  if (authenticatorChoice.kind === 'passgate' && e?.message) explained.details = e.message.replace(/^passgate: /, '');
  return explained;
}

/**
 * While passgate's prompt waits for the person: "Approve in passgate's window", a countdown to
 * the request's timeout and a Cancel button that aborts it (AbortController). Nothing for the
 * browser's own authenticator, which shows its own dialog.
 */
function waitingForPassgate(timeoutMs, what) {
  if (authenticatorChoice.kind !== 'passgate') return { signal: undefined, done() {} };
  const controller = new AbortController();
  const state = { signal: controller.signal, cancelledHere: false };
  const seconds = element('strong', { 'data-field': 'countdown' });
  const cancel = element('button', { type: 'button', class: 'secondary', id: 'passgate-cancel' }, 'Cancel');
  const panel = element('div', { id: 'passgate-waiting', class: 'waiting', role: 'status', 'aria-live': 'polite' },
    element('p', {}, element('strong', {}, `Approve in passgate's window: ${what}.`),
      ' passgate asks in its own prompt (a window, or the terminal running passgate), never on this page. ',
      'Time left: ', seconds, ' s.'),
    cancel);
  const deadline = Date.now() + timeoutMs;
  const tick = () => { seconds.textContent = String(Math.max(0, Math.ceil((deadline - Date.now()) / 1000))); };
  tick();
  const timer = setInterval(tick, 1000);
  cancel.addEventListener('click', () => {
    state.cancelledHere = true;
    controller.abort(new DOMException('Cancelled on the page', 'AbortError'));
  });
  const statusEl = document.getElementById('status');
  if (statusEl) statusEl.after(panel);
  else document.body.append(panel);
  state.done = () => { clearInterval(timer); panel.remove(); };
  return state;
}

function browserWebauthnError(e, ceremony) {
  switch (e?.name) {
    case 'NotAllowedError':
      return new DemoError('NotAllowedError', ceremony === 'create'
        ? 'Creating the passkey was cancelled or timed out, or your device could not verify you. Try again and approve it on your device.'
        : 'The passkey request was cancelled or timed out, or your device could not verify you. Try again and approve it on your device.');
    case 'InvalidStateError':
      return new DemoError('InvalidStateError', 'This authenticator already holds a passkey for this account: it is already registered. Use another device or security key.');
    case 'SecurityError':
      return new DemoError('SecurityError', `This page (${location.origin}) is not allowed to use passkeys for this site: the origin does not match the relying party.`);
    case 'NotSupportedError':
      return new DemoError('NotSupportedError', 'Your authenticator does not support what this site asks for.');
    case 'AbortError':
      return new DemoError('AbortError', 'The passkey request was stopped.');
    default:
      return new DemoError(e?.name ?? 'webauthn', `The passkey request failed: ${e?.message ?? e}`);
  }
}

function requireWebAuthn() {
  if (!window.PublicKeyCredential || !navigator.credentials) {
    throw new DemoError('unsupported', 'This browser cannot use passkeys (WebAuthn is unavailable here).');
  }
}

/** navigator.credentials.create with server JSON in and RegistrationResponseJSON out. */
export async function createPasskey(options) {
  requireWebAuthn();
  let credential;
  const waited = waitingForPassgate(options.timeout ?? 300000, 'create a passkey');
  try {
    const request = { publicKey: creationOptions(options) };
    if (waited.signal) request.signal = waited.signal;
    credential = await navigator.credentials.create(request);
  } catch (e) {
    throw webauthnError(e, 'create', waited);
  } finally {
    waited.done();
  }
  return credentialJSON(credential);
}

/** passgate's browser extension (its ID is fixed by the key in its manifest). */
const PASSGATE_EXTENSION_ID = 'hmlnhjpdmkbchiglodcohceffkghmmpo';

/**
 * Hands a signed action's text to passgate's extension, which Chromium's WebAuthn proxy cannot
 * carry: the extension attaches it to this origin's get request with this challenge, and the
 * bridge shows it only if the challenge commits to it. Without the extension (no
 * `chrome.runtime` for this page, or another one answers) nothing happens.
 */
async function offerPayloadToExtension(challenge, payload) {
  const send = globalThis.chrome?.runtime?.sendMessage;
  if (typeof send !== 'function') return false;
  try {
    const reply = await Promise.race([
      chrome.runtime.sendMessage(PASSGATE_EXTENSION_ID, { type: 'payload', challenge, payload }),
      new Promise((resolve) => { setTimeout(() => resolve(null), 2000); }),
    ]);
    return reply?.ok === true;
  } catch {
    return false;
  }
}

/**
 * navigator.credentials.get; resolves null when a conditional request is aborted. `payload`:
 * a signed action's text, which passgate shows in its prompt (a browser ignores it).
 */
export async function getPasskey(options, { mediation, signal, payload, what = 'sign in' } = {}) {
  requireWebAuthn();
  let credential;
  // A conditional request waits for the person at the sign-in field, not in passgate's window.
  const waited = mediation === 'conditional' ? { signal: undefined, done() {} }
    : waitingForPassgate(options.timeout ?? 300000, payload === undefined ? what : 'approve the action shown there');
  try {
    const request = { publicKey: requestOptions(options) };
    if (mediation) request.mediation = mediation;
    if (signal || waited.signal) {
      request.signal = signal && waited.signal ? AbortSignal.any([signal, waited.signal]) : signal ?? waited.signal;
    }
    if (payload !== undefined) {
      // The shim reads it from the request; the extension is told beside it.
      request.payload = payload;
      if (authenticatorChoice.kind === 'browser') await offerPayloadToExtension(options.challenge, payload);
    }
    credential = await navigator.credentials.get(request);
  } catch (e) {
    if (signal?.aborted) return null;
    throw webauthnError(e, 'get', waited);
  } finally {
    waited.done();
  }
  return credential ? credentialJSON(credential) : null;
}

// What to tell people for the server's error codes they can cause or fix.
const advice = {
  unknown_user: 'No account has that username. Check it, or create an account below.',
  username_taken: 'That username is taken. Sign in instead, or pick another.',
  invalid_username: 'Usernames and names are 1 to 64 printable characters.',
  invalid_name: 'A passkey name is 1 to 64 printable characters.',
  no_credentials: 'That account has no passkeys left.',
  unknown_credential: 'This passkey is not registered here (it may have been deleted).',
  user_verification_missing: 'Your device did not verify you (fingerprint, face or PIN), and this site requires it.',
  origin_not_allowed: 'This page is not the real site: the passkey answer came from an origin the site does not accept.',
  last_credential: 'This is your only passkey, so it cannot be deleted. Add another one first.',
  step_up_required: 'Confirm it is you with a passkey first.',
  not_signed_in: 'You are not signed in.',
  challenge_expired: 'That took too long. Start again.',
  unknown_challenge: 'That request was already used or has expired. Start again.',
  credential_already_registered: 'This passkey is already registered.',
  rate_limited: 'Too many attempts. Wait a moment and try again.',
  network: '',
};

/** Writes to the page's aria-live status region. */
export function status(text, kind = 'ok') {
  const el = document.getElementById('status');
  el.className = kind;
  el.textContent = text;
}

/** The text shown for an error: advice, then the server's own message and code. */
export function errorText(e) {
  if (e instanceof DemoError && e.server) {
    const hint = advice[e.code];
    return `${hint ? `${hint} ` : ''}Server said: “${e.message}” (${e.code}, HTTP ${e.status}).`;
  }
  if (e instanceof DemoError) return `${e.message} (${e.code}${e.details ? `; details: ${e.details}` : ''})`;
  return `Something went wrong: ${e?.message ?? e}`;
}

export function showError(e) {
  status(errorText(e), 'error');
}

/** Runs an action with its button disabled and any error shown in the status region. */
export function busy(button, fn) {
  return async (event) => {
    event?.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    button.setAttribute('aria-busy', 'true');
    try {
      await fn();
    } catch (e) {
      showError(e);
    } finally {
      button.disabled = false;
      button.removeAttribute('aria-busy');
    }
  };
}

export function formatTime(ms) {
  return ms ? new Date(ms).toLocaleString() : 'never';
}

export function deviceType(c) {
  return c.deviceType === 'multiDevice'
    ? `synced passkey, ${c.backupState ? 'backed up' : 'not backed up yet'}`
    : 'device-bound (not backed up)';
}

/** The "which authenticator answered" panel. */
export function showAuthenticator(credential, verdict) {
  const el = document.getElementById('authenticator');
  if (!el || !credential) return;
  const rows = [
    ['Authenticator', credential.authenticator],
    ['AAGUID', credential.aaguid],
    ['Passkey', credential.name],
    ['Kind', deviceType(credential)],
    ['Transports', credential.transports?.length ? credential.transports.join(', ') : 'not reported'],
    ['Signature counter', String(credential.signCount)],
  ];
  rows.push(['Requests go through', authenticatorChoice.kind === 'passgate'
    ? `passgate's local bridge (${authenticatorChoice.url})` : "this browser's WebAuthn"]);
  if (verdict) rows.push(['User verified', verdict.userVerified ? 'yes' : 'no']);
  const dl = document.createElement('dl');
  for (const [term, value] of rows) {
    const dt = document.createElement('dt');
    dt.textContent = term;
    const dd = document.createElement('dd');
    dd.textContent = value;
    dd.dataset.field = term.toLowerCase().replaceAll(' ', '-');
    dl.append(dt, dd);
  }
  const h = document.createElement('h2');
  h.textContent = 'Which authenticator answered';
  el.replaceChildren(h, dl);
  el.hidden = false;
}

/** The signed-in session, or null. */
export async function session() {
  try {
    return await api('GET', '/api/session');
  } catch {
    return null;
  }
}

/** Opens a <dialog> and resolves with its form's submit value ('' when dismissed). */
export function ask(dialog) {
  return new Promise((resolve) => {
    dialog.returnValue = '';
    dialog.addEventListener('close', () => resolve(dialog.returnValue), { once: true });
    dialog.showModal();
  });
}

// ---- choosing the authenticator ---------------------------------------------------------------

function element(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === 'class') el.className = value;
    else if (key.startsWith('data-') || key.startsWith('aria-') || key === 'for' || key === 'role') el.setAttribute(key, value);
    else el[key] = value;
  }
  el.append(...children);
  return el;
}

function pairDialog() {
  let dialog = document.getElementById('pair-dialog');
  if (dialog) return dialog;
  dialog = element('dialog', { id: 'pair-dialog', 'aria-labelledby': 'pair-h' },
    element('form', { method: 'dialog', id: 'pair-form' },
      element('h2', { id: 'pair-h' }, "Use passgate's authenticator"),
      element('p', {}, 'The terminal running ', element('code', {}, 'passgate demo'),
        ' shows the local bridge address and a pairing code. Pairing lets this site, and only this site, ask passgate for passkeys. Your PIN is never typed here: passgate asks for it in its own prompt.'),
      element('label', { for: 'pair-url' }, 'Local bridge'),
      element('input', { id: 'pair-url', name: 'url', placeholder: 'http://127.0.0.1:PORT', autocomplete: 'off', spellcheck: false, required: true }),
      element('p', { id: 'pair-url-source', class: 'muted' }),
      element('label', { for: 'pair-code' }, 'Pairing code'),
      element('input', { id: 'pair-code', name: 'code', placeholder: 'XXXX-XXXX-XXXX', autocomplete: 'off', spellcheck: false, autocapitalize: 'characters', required: true }),
      element('p', { id: 'pair-error', class: 'form-error', role: 'alert' }),
      element('div', { class: 'actions' },
        element('button', { type: 'button', class: 'secondary', id: 'pair-cancel' }, 'Cancel'),
        element('button', { type: 'submit', id: 'pair-submit' }, 'Pair'))));
  document.body.append(dialog);
  const errorEl = dialog.querySelector('#pair-error');
  dialog.querySelector('#pair-cancel').addEventListener('click', () => dialog.close());
  const submit = dialog.querySelector('#pair-submit');
  dialog.querySelector('#pair-form').addEventListener('submit', busy(submit, async () => {
    errorEl.textContent = '';
    const url = dialog.querySelector('#pair-url').value.trim();
    const code = dialog.querySelector('#pair-code').value.trim();
    try {
      const shim = await loadShim();
      const token = await shim.pair(url, code);
      const paired = { url: url.replace(/\/+$/, ''), token };
      shim.install({ channel: 'http', http: paired });
      localStorage.setItem(BRIDGE_KEY, JSON.stringify(paired));
      sessionStorage.removeItem(TAB_CHOICE_KEY);
      authenticatorChoice.kind = 'passgate';
      authenticatorChoice.url = paired.url;
      authenticatorChoice.token = paired.token;
      authenticatorChoice.notice = null;
      dialog.close();
      renderChoice();
      status("Paired: passkeys on this site now come from passgate's authenticator. passgate asks for your PIN and approval in its own prompt.");
      document.dispatchEvent(new CustomEvent('demo-authenticator-changed'));
    } catch (e) {
      errorEl.textContent = `Pairing failed: ${e.message}${e.passgateCode ? ` (${e.passgateCode})` : ''}`;
    }
  }));
  return dialog;
}

/**
 * The address of the local bridge that the server runs beside it (`passgate demo` says), so
 * the dialog names the one in use rather than a guess; null when the server runs none.
 */
async function serverBridgeUrl() {
  try {
    const response = await fetch('/api/local-bridge', { cache: 'no-store' });
    const body = response.ok ? await response.json() : null;
    return typeof body?.url === 'string' ? body.url : null;
  } catch {
    return null;
  }
}

async function openPairDialog() {
  const dialog = pairDialog();
  dialog.querySelector('#pair-error').textContent = '';
  const input = dialog.querySelector('#pair-url');
  const source = dialog.querySelector('#pair-url-source');
  const url = await serverBridgeUrl();
  if (url) {
    input.value = url;
    source.textContent = 'The address passgate demo runs its local bridge on, as this server reports it.';
  } else {
    source.textContent = "This server runs no local bridge: type the address passgate's terminal shows.";
  }
  dialog.showModal();
  dialog.querySelector(url ? '#pair-code' : '#pair-url').focus();
}

/** Goes back to the pairing this site already has, in this tab only. */
async function usePaired(paired) {
  (await loadShim()).install({ channel: 'http', http: paired });
  sessionStorage.removeItem(TAB_CHOICE_KEY);
  authenticatorChoice.kind = 'passgate';
  authenticatorChoice.url = paired.url;
  authenticatorChoice.token = paired.token;
  authenticatorChoice.notice = null;
  renderChoice();
  status("Passkeys in this tab now come from passgate's authenticator again (this site's pairing was kept).");
  document.dispatchEvent(new CustomEvent('demo-authenticator-changed'));
}

function switchToBrowser() {
  globalThis.passgateWebview?.uninstall();
  authenticatorChoice.kind = 'browser';
  authenticatorChoice.url = null;
  authenticatorChoice.token = null;
  authenticatorChoice.notice = null;
  renderChoice();
  document.dispatchEvent(new CustomEvent('demo-authenticator-changed'));
}

/** passgate's pairing no longer works in this tab: say so, offer to pair again. */
function markUnpaired(notice) {
  if (authenticatorChoice.kind !== 'passgate' || authenticatorChoice.notice) return;
  authenticatorChoice.notice = notice;
  authenticatorChoice.token = null;
  renderChoice();
}

/** This tab uses the browser's authenticators; the pairing stays for the site's other tabs. */
function useBrowser() {
  sessionStorage.setItem(TAB_CHOICE_KEY, 'browser');
  switchToBrowser();
  status("Passkeys in this tab now come from this browser's own authenticators. The site stays paired with passgate: other tabs keep using it, and “Use passgate's authenticator” comes back without a code.");
}

/** Forgets the pairing everywhere: the bridge revokes the token, every tab of the site hears it. */
async function forgetPairing() {
  const paired = storedBridge();
  localStorage.removeItem(BRIDGE_KEY);
  if (paired) {
    // Tell the bridge to forget this site's token (best effort: it may be gone already).
    await fetch(`${paired.url}/v1/unpair`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${paired.token}` }, body: '{}',
    }).catch(() => {});
  }
  sessionStorage.removeItem(TAB_CHOICE_KEY);
  switchToBrowser();
  status("This site is no longer paired with passgate: its tabs use this browser's authenticators until you pair again.");
}

/** The bar at the top of each page: which authenticator answers, and a button to switch. */
export function renderChoice() {
  const main = document.getElementById('main');
  if (!main) return;
  let bar = document.getElementById('authenticator-choice');
  if (!bar) {
    bar = element('section', { id: 'authenticator-choice', class: 'choice', 'aria-label': 'Authenticator' });
    const heading = main.querySelector('h1');
    if (heading) heading.after(bar);
    else main.prepend(bar);
  }
  const passgate = authenticatorChoice.kind === 'passgate';
  const unpaired = passgate && Boolean(authenticatorChoice.notice);
  const paired = storedBridge();
  bar.dataset.kind = unpaired ? 'unpaired' : authenticatorChoice.kind;
  bar.dataset.paired = paired ? 'yes' : 'no';
  const detail = unpaired ? ' (this site is not paired with it any more)'
    : passgate ? ` through the local bridge at ${authenticatorChoice.url}`
      : paired ? ' in this tab (the site stays paired with passgate)' : ' (platform passkeys, phone, security keys)';
  const label = element('p', { id: 'choice-label' }, 'Authenticator: ',
    element('strong', {}, passgate ? "passgate's authenticator" : "this browser's"),
    element('span', { class: 'muted' }, detail));
  const children = [label];
  if (unpaired) {
    children.push(element('p', { id: 'choice-notice', class: 'form-error', role: 'alert' }, authenticatorChoice.notice));
  }
  const buttons = element('div', { class: 'choice-actions' });
  if (!passgate || unpaired) {
    const toPassgate = element('button', { type: 'button', class: unpaired ? '' : 'secondary', id: 'use-passgate' },
      unpaired ? 'Pair again with passgate' : "Use passgate's authenticator");
    toPassgate.addEventListener('click', () => (paired ? usePaired(paired) : openPairDialog()));
    buttons.append(toPassgate);
  }
  if (passgate) {
    const toBrowser = element('button', { type: 'button', class: 'secondary', id: 'use-browser' }, "Use this browser's authenticators");
    toBrowser.addEventListener('click', () => useBrowser());
    buttons.append(toBrowser);
  }
  if (paired) {
    const forget = element('button', { type: 'button', class: 'secondary', id: 'forget-pairing' }, 'Unpair this site');
    forget.addEventListener('click', () => forgetPairing());
    buttons.append(forget);
  }
  children.push(buttons);
  bar.replaceChildren(...children);
}

// The bridge no longer knows the pairing (revoked, or passgate's pairings reset): say so and
// offer to pair again, here and in the site's other tabs (which hear the storage change).
globalThis.addEventListener('passgate-webview-unpaired', (event) => {
  localStorage.removeItem(BRIDGE_KEY);
  const code = event.detail?.code;
  markUnpaired(`passgate no longer knows this site's pairing (revoked, or its pairings were reset${code ? `: ${code}` : ''}). Pair again to go on using passgate's authenticator.`);
});

globalThis.addEventListener('storage', (event) => {
  if (event.key !== BRIDGE_KEY && event.key !== null) return;
  const paired = storedBridge();
  if (!paired && authenticatorChoice.kind === 'passgate') {
    markUnpaired("This site's pairing with passgate was removed in another tab: pair again to use passgate's authenticator here.");
  } else if (paired && authenticatorChoice.kind === 'passgate' && paired.token !== authenticatorChoice.token) {
    // Another tab paired again: use the new pairing here too.
    globalThis.passgateWebview?.install({ channel: 'http', http: paired });
    authenticatorChoice.url = paired.url;
    authenticatorChoice.token = paired.token;
    authenticatorChoice.notice = null;
    renderChoice();
  } else {
    renderChoice();
  }
});

renderChoice();
