// Shared code of the demo pages: the JSON API, the WebAuthn calls, messages for people.

const b64u = {
  encode(buffer) {
    const bytes = new Uint8Array(buffer);
    let s = '';
    for (const b of bytes) s += String.fromCharCode(b);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  },
  decode(text) {
    const s = atob(text.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((text.length + 3) % 4));
    return Uint8Array.from(s, (c) => c.charCodeAt(0)).buffer;
  },
};

/** An error the page can show: the server's code and message, or a WebAuthn failure. */
export class DemoError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

export async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
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
    throw new DemoError(e.code ?? `http_${response.status}`, e.message ?? `The server answered ${response.status}.`);
  }
  return data;
}

// Level 3 JSON forms when the browser has them; a hand-written fallback otherwise.
function creationOptions(json) {
  if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(json);
  return {
    ...json,
    challenge: b64u.decode(json.challenge),
    user: { ...json.user, id: b64u.decode(json.user.id) },
    excludeCredentials: (json.excludeCredentials ?? []).map((c) => ({ ...c, id: b64u.decode(c.id) })),
  };
}

function requestOptions(json) {
  if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(json);
  return {
    ...json,
    challenge: b64u.decode(json.challenge),
    allowCredentials: (json.allowCredentials ?? []).map((c) => ({ ...c, id: b64u.decode(c.id) })),
  };
}

function toJSON(credential) {
  if (typeof credential.toJSON === 'function') return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: b64u.encode(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = b64u.encode(r.attestationObject);
    response.transports = r.getTransports?.() ?? [];
  } else {
    response.authenticatorData = b64u.encode(r.authenticatorData);
    response.signature = b64u.encode(r.signature);
    response.userHandle = r.userHandle ? b64u.encode(r.userHandle) : null;
  }
  return {
    id: credential.id, rawId: b64u.encode(credential.rawId), type: credential.type,
    authenticatorAttachment: credential.authenticatorAttachment ?? null,
    clientExtensionResults: credential.getClientExtensionResults(), response,
  };
}

/** Turns a WebAuthn DOMException into something a person can act on. */
function webauthnError(e) {
  switch (e?.name) {
    case 'NotAllowedError':
      return new DemoError('cancelled', 'The passkey request was cancelled or timed out. Try again, and approve it on your device.');
    case 'InvalidStateError':
      return new DemoError('already_registered', 'This device already holds a passkey for this account.');
    case 'SecurityError':
      return new DemoError('security', 'This page is not allowed to use passkeys for this site (origin or RP ID mismatch).');
    case 'NotSupportedError':
      return new DemoError('not_supported', 'Your authenticator does not support what this site asks for.');
    case 'AbortError':
      return new DemoError('aborted', 'The passkey request was aborted.');
    default:
      return new DemoError('webauthn', `Passkey error: ${e?.message ?? e}`);
  }
}

export async function createPasskey(options) {
  let credential;
  try {
    credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
  } catch (e) {
    throw webauthnError(e);
  }
  return toJSON(credential);
}

export async function getPasskey(options, { mediation, signal } = {}) {
  let credential;
  try {
    credential = await navigator.credentials.get({ publicKey: requestOptions(options), mediation, signal });
  } catch (e) {
    if (e?.name === 'AbortError' && signal?.aborted) return null;
    throw webauthnError(e);
  }
  return credential ? toJSON(credential) : null;
}

const messages = {
  unknown_user: 'No account has that username. Sign up first.',
  username_taken: 'That username is taken. Sign in instead, or pick another.',
  unknown_credential: 'This passkey is not registered here (it may have been deleted).',
  user_verification_missing: 'Your device did not verify you (fingerprint, face or PIN). This site requires it.',
  last_credential: 'This is your only passkey. Add another one before deleting it.',
  step_up_required: 'Confirm it is you first.',
  not_signed_in: 'You are not signed in.',
};

export function status(text, kind = 'ok') {
  const el = document.getElementById('status');
  el.className = kind;
  el.textContent = text;
}

export function showError(e) {
  const text = messages[e.code] ? `${messages[e.code]} (${e.code})` : `${e.message}${e.code ? ` (${e.code})` : ''}`;
  status(text, 'error');
}

/** Runs an action with its button disabled and errors shown in the status region. */
export function busy(button, fn) {
  return async (event) => {
    event?.preventDefault();
    button.disabled = true;
    try {
      await fn();
    } catch (e) {
      showError(e);
    } finally {
      button.disabled = false;
    }
  };
}

export function formatTime(ms) {
  return ms ? new Date(ms).toLocaleString() : 'never';
}

/** The "which authenticator answered" panel. */
export function showAuthenticator(credential) {
  const el = document.getElementById('authenticator');
  if (!el || !credential) return;
  el.textContent = `Answered by: ${credential.authenticator} (AAGUID ${credential.aaguid}), ` +
    `${credential.deviceType === 'multiDevice' ? 'synced passkey' : 'device-bound passkey'}, ` +
    `signature counter ${credential.signCount}.`;
}

export async function session() {
  try {
    return await api('GET', '/api/session');
  } catch {
    return null;
  }
}
