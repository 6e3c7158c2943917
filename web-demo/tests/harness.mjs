// Test harness for the demo journeys: starts `passgate rp` on a free port with a temp SQLite file
// and the demo pages, an optional relay ("phishing proxy") on another origin, and headless
// Chromium with CDP virtual authenticators. Every browser call is bounded by a timeout.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, chmodSync, existsSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import { scriptedPinentry, TEST_PIN } from './pinentry.mjs';

export { scriptedPinentry, TEST_PIN };

const here = dirname(fileURLToPath(import.meta.url));
export const demoDir = resolve(here, '..');
export const siteDir = join(demoDir, 'site');
export const screenshotDir = join(demoDir, 'test-output', 'screenshots');
export const binary = process.env.PASSGATE_BIN || resolve(demoDir, '..', 'target', 'debug', 'passgate');
export const chromiumPath = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
/** passgate's AAGUID (the relying party names it "passgate"). */
export const PASSGATE_AAGUID = 'bc5e712f-3ad4-41a7-a970-289c9ab407c9';

/** Default bound for a single browser/CDP/server step. */
export const STEP_MS = 15_000;

/** Rejects when `promise` has not settled within `ms`. */
export function withTimeout(promise, what, ms = STEP_MS) {
  let timer;
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([Promise.resolve(promise).finally(() => clearTimeout(timer)), limit]);
}

/** A port that was free a moment ago (the server is retried if it loses the race). */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolvePort(port));
    });
  });
}

/** SIGTERM, then SIGKILL after `ms`. */
export function stopChild(child, ms = 5_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, ms);
    child.once('exit', () => { clearTimeout(timer); done(); });
    child.kill('SIGTERM');
  });
}

async function startRpOnce(port, work) {
  const args = ['rp', '--listen', `127.0.0.1:${port}`,
    '--database', `sqlite://${join(work, 'rp.sqlite3')}`,
    '--rp-id', 'localhost', '--origin', `http://localhost:${port}`,
    '--static-dir', siteDir, '--rate-limit-per-sec', '0'];
  const child = spawn(binary, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PASSGATE_LOG: process.env.PASSGATE_LOG ?? 'info' },
  });
  const log = [];
  createInterface({ input: child.stderr }).on('line', (l) => { log.push(l); if (log.length > 200) log.shift(); });
  const lines = createInterface({ input: child.stdout });
  try {
    await withTimeout(new Promise((ready, failed) => {
      lines.on('line', (l) => { if (l.startsWith('listening on ')) ready(); });
      child.once('error', failed);
      child.once('exit', (code, signal) => failed(new Error(
        `passgate rp exited (${code ?? signal}) before listening:\n${log.join('\n')}`)));
    }), 'passgate rp start', 20_000);
  } catch (e) {
    await stopChild(child);
    throw e;
  }
  return { child, log };
}

/**
 * Starts `$PASSGATE_BIN rp` with RP ID localhost, origin http://localhost:PORT, a temp SQLite
 * file and the demo pages. Returns { port, base, log, stop }.
 */
export async function startRp() {
  const work = mkdtempSync(join(tmpdir(), 'passgate-web-demo-'));
  let lastError;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    try {
      const { child, log } = await startRpOnce(port, work);
      return {
        port,
        base: `http://localhost:${port}`,
        log,
        work,
        async stop() {
          await stopChild(child);
          rmSync(work, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
      if (!/binding|Address already in use/i.test(String(e.message))) break;
    }
  }
  rmSync(work, { recursive: true, force: true });
  throw lastError;
}

/**
 * A relay on http://localhost:RELAY that forwards every request to the relying party unchanged:
 * what a phishing proxy at another origin does. Returns { port, base, stop }.
 */
export async function startRelay(targetPort, port = 0) {
  const server = http.createServer((req, res) => {
    const upstream = http.request({
      host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers,
    }, (up) => {
      res.writeHead(up.statusCode, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
    req.pipe(upstream);
  });
  await new Promise((ok, fail) => { server.once('error', fail); server.listen(port, '127.0.0.1', ok); });
  const bound = server.address().port;
  return {
    port: bound,
    base: `http://localhost:${bound}`,
    stop: () => new Promise((done) => { server.closeAllConnections?.(); server.close(() => done()); }),
  };
}

/** Headless Chromium with a fresh profile. Returns { context, stop }. */
export async function launchBrowser() {
  const profile = mkdtempSync(join(tmpdir(), 'passgate-web-demo-profile-'));
  const context = await withTimeout(chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1100, height: 800 },
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  }), 'launch chromium', 40_000);
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  return {
    context,
    async stop() {
      await withTimeout(context.close(), 'close chromium', 15_000).catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Authenticator options: ctap2 over "internal" with resident keys and UV, unless overridden. */
export function authenticatorOptions(overrides = {}) {
  return {
    protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
    hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
    ...overrides,
  };
}

/**
 * A new page with the WebAuthn CDP domain enabled and one virtual authenticator.
 * `autofill: false` hides conditional mediation from the page, as in a browser without passkey
 * autofill (Chromium's virtual environment answers conditional requests at once otherwise).
 */
export async function newJourneyPage(context, { authenticator = {}, autofill = true, spyMediation = false, noJsonHelpers = false } = {}) {
  await withTimeout(context.clearCookies(), 'clear cookies');
  const page = await withTimeout(context.newPage(), 'new page');
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);
  if (!autofill) {
    await page.addInitScript(() => {
      if (window.PublicKeyCredential) {
        Object.defineProperty(PublicKeyCredential, 'isConditionalMediationAvailable', {
          value: async () => false, configurable: true,
        });
      }
    });
  }
  if (noJsonHelpers) {
    // As in browsers without WebAuthn Level 3's JSON helpers: the pages' fallback runs.
    await page.addInitScript(() => {
      if (window.PublicKeyCredential) {
        delete PublicKeyCredential.parseCreationOptionsFromJSON;
        delete PublicKeyCredential.parseRequestOptionsFromJSON;
        delete PublicKeyCredential.prototype.toJSON;
      }
    });
  }
  if (spyMediation) {
    await page.addInitScript(() => {
      const get = navigator.credentials.get.bind(navigator.credentials);
      window.__credentialGets = [];
      navigator.credentials.get = (options) => {
        window.__credentialGets.push({ mediation: options?.mediation ?? 'optional', rpId: options?.publicKey?.rpId ?? null });
        return get(options);
      };
    });
  }
  const cdp = await withTimeout(context.newCDPSession(page), 'CDP session');
  await withTimeout(cdp.send('WebAuthn.enable'), 'WebAuthn.enable');
  const { authenticatorId } = await withTimeout(cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: authenticatorOptions(authenticator),
  }), 'add virtual authenticator');
  return { page, cdp, authenticatorId };
}

/** Adds another virtual authenticator to the page's CDP session. */
export async function addAuthenticator(cdp, overrides) {
  const { authenticatorId } = await withTimeout(cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: authenticatorOptions(overrides),
  }), 'add virtual authenticator');
  return authenticatorId;
}

/** A screenshot writer for one journey: test-output/screenshots/<journey>-<nn>-<name>.png. */
export function screenshots(journey) {
  mkdirSync(screenshotDir, { recursive: true });
  // This run's pictures only: an earlier run's (a failure, say) would mislead.
  for (const old of readdirSync(screenshotDir)) {
    if (old.startsWith(`${journey}-`)) rmSync(join(screenshotDir, old), { force: true });
  }
  let n = 0;
  const taken = [];
  const shot = async (page, name) => {
    n += 1;
    const path = join(screenshotDir, `${journey}-${String(n).padStart(2, '0')}-${name}.png`);
    await withTimeout(page.screenshot({ path, fullPage: true, animations: 'disabled' }), `screenshot ${name}`);
    taken.push(path);
    return path;
  };
  shot.taken = taken;
  return shot;
}

/** fetch() from inside the page (same origin, its cookies): { status, body }. */
export function pageFetch(page, method, path, body) {
  return withTimeout(page.evaluate(async ([m, p, b]) => {
    const init = { method: m, headers: {} };
    if (b !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(b);
    }
    const r = await fetch(p, init);
    return { status: r.status, body: await r.json().catch(() => null) };
  }, [method, path, body]), `fetch ${method} ${path}`);
}

/** Waits for the JSON response of `method path` while `action` runs: { status, body, request, headers }. */
export async function captureResponse(page, method, path, action) {
  const pending = page.waitForResponse(
    (r) => r.request().method() === method && new URL(r.url()).pathname === path,
    { timeout: STEP_MS },
  );
  await action();
  const response = await pending;
  const body = await withTimeout(response.json().catch(() => null), `body of ${path}`);
  const raw = response.request().postData();
  return {
    status: response.status(),
    body,
    headers: await withTimeout(response.allHeaders(), `headers of ${path}`),
    request: raw ? JSON.parse(raw) : null,
  };
}

/** A minimal CBOR decoder (enough for attestation objects): maps, arrays, ints, bytes, text. */
export function decodeCbor(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const length = (info) => {
    if (info < 24) return info;
    if (info === 24) { at += 1; return view.getUint8(at - 1); }
    if (info === 25) { at += 2; return view.getUint16(at - 2); }
    if (info === 26) { at += 4; return view.getUint32(at - 4); }
    if (info === 27) { at += 8; return Number(view.getBigUint64(at - 8)); }
    throw new Error(`CBOR: indefinite or reserved length ${info}`);
  };
  const item = () => {
    const first = view.getUint8(at);
    at += 1;
    const major = first >> 5;
    const info = first & 31;
    switch (major) {
      case 0: return length(info);
      case 1: return -1 - length(info);
      case 2: { const n = length(info); at += n; return bytes.subarray(at - n, at); }
      case 3: { const n = length(info); at += n; return Buffer.from(bytes.subarray(at - n, at)).toString('utf8'); }
      case 4: { const n = length(info); return Array.from({ length: n }, item); }
      case 5: {
        const n = length(info);
        const map = new Map();
        for (let i = 0; i < n; i += 1) { const k = item(); map.set(k, item()); }
        return map;
      }
      case 7:
        if (info === 20) return false;
        if (info === 21) return true;
        if (info === 22) return null;
        throw new Error(`CBOR: simple value ${info}`);
      default: throw new Error(`CBOR: major type ${major}`);
    }
  };
  return item();
}

/** The flags and AAGUID in a RegistrationResponseJSON's attestationObject. */
export function attestedFlags(registrationResponse) {
  const object = decodeCbor(Buffer.from(registrationResponse.response.attestationObject, 'base64url'));
  const authData = object.get('authData');
  const flags = authData[32];
  const hex = Buffer.from(authData.subarray(37, 53)).toString('hex');
  return {
    fmt: object.get('fmt'),
    up: Boolean(flags & 0x01),
    uv: Boolean(flags & 0x04),
    be: Boolean(flags & 0x08),
    bs: Boolean(flags & 0x10),
    at: Boolean(flags & 0x40),
    aaguid: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`,
  };
}

/** The flags in an AuthenticationResponseJSON's authenticatorData. */
export function assertionFlags(authenticationResponse) {
  const flags = Buffer.from(authenticationResponse.response.authenticatorData, 'base64url')[32];
  return { up: Boolean(flags & 0x01), uv: Boolean(flags & 0x04), be: Boolean(flags & 0x08), bs: Boolean(flags & 0x10) };
}

/**
 * Spawns `passgate ARGS` and collects stdout until a line matches `until` (default: the
 * `listening on ADDRESS` line). Returns { child, log, lines, match }.
 */
export async function spawnPassgate(args, { what = `passgate ${args[0]}`, until = /^listening on (\S+)/, env = {}, ms = 20_000 } = {}) {
  const child = spawn(binary, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PASSGATE_LOG: process.env.PASSGATE_LOG ?? 'info', ...env },
  });
  const log = [];
  const lines = [];
  const keep = (l) => { log.push(l); if (log.length > 300) log.shift(); };
  createInterface({ input: child.stderr }).on('line', keep);
  const out = createInterface({ input: child.stdout });
  try {
    const match = await withTimeout(new Promise((ready, failed) => {
      out.on('line', (l) => {
        keep(l);
        lines.push(l);
        const m = until.exec(l);
        if (m) ready(m);
      });
      child.once('error', failed);
      child.once('exit', (code, signal) => failed(new Error(
        `${what} exited (${code ?? signal}) early:\n${log.join('\n')}`)));
    }), `${what} start`, ms);
    return { child, log, lines, match };
  } catch (e) {
    await stopChild(child);
    throw e;
  }
}

/**
 * `passgate demo` on a free port: the relying party with the pages, passgate's in-process
 * authenticator and the local bridge, its prompt a scripted pinentry; `extraArgs` are added to
 * its command line, `promptTimeout` is how long (s) its prompt waits. Returns { port, base, bridgeUrl, pairingCode, apiToken, pinentry, log,
 * lines, work, child, stop }.
 */
export async function startDemo({ extraArgs = [], promptTimeout = 30 } = {}) {
  const work = mkdtempSync(join(tmpdir(), 'passgate-demo-'));
  const pinentry = scriptedPinentry(work);
  let lastError;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    try {
      const started = await spawnPassgate(['demo', '--listen', `127.0.0.1:${port}`, '--bridge-listen', '127.0.0.1:0',
        '--state-dir', join(work, 'state'), '--static-dir', siteDir, '--prompt', 'pinentry', '--pinentry', pinentry.program,
        '--prompt-timeout', String(promptTimeout), '--user-verifier', 'pin', ...extraArgs], { what: 'passgate demo', until: /^Stop with Ctrl-C/ });
      const text = started.lines.join('\n');
      const bridgeUrl = /local bridge: (http:\/\/127\.0\.0\.1:\d+)/.exec(text)?.[1];
      const pairingCode = /pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})/.exec(text)?.[1];
      const apiToken = /backend API token: ([A-Za-z0-9_-]{43})/.exec(text)?.[1];
      if (!bridgeUrl || !pairingCode) throw new Error(`passgate demo printed no bridge or code:\n${text}`);
      return {
        ...started,
        port,
        base: `http://localhost:${port}`,
        ipBase: `http://127.0.0.1:${port}`,
        bridgeUrl,
        /** The current pairing code: a code pairs one page, then passgate prints the next one. */
        get pairingCode() {
          const codes = [...started.lines.join('\n').matchAll(/pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})/g)];
          return codes.length ? codes[codes.length - 1][1] : pairingCode;
        },
        apiToken,
        pinentry,
        work,
        async stop() {
          await stopChild(started.child);
          rmSync(work, { recursive: true, force: true });
        },
      };
    } catch (e) {
      lastError = e;
      if (!/binding|Address already in use/i.test(String(e.message))) break;
    }
  }
  rmSync(work, { recursive: true, force: true });
  throw lastError;
}

/** A raw HTTP request from Node (any headers, a forged Origin included): { status, headers, body }. */
export function httpRequest(url, { method = 'POST', headers = {}, body } = {}) {
  return withTimeout(new Promise((done, failed) => {
    const req = http.request(url, { method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let parsed = null;
        try { parsed = JSON.parse(text); } catch { /* empty or not JSON */ }
        done({ status: res.statusCode, headers: res.headers, body: parsed });
      });
    });
    req.on('error', failed);
    if (body !== undefined) req.write(typeof body === 'string' ? body : JSON.stringify(body));
    req.end();
  }), `${method} ${url}`);
}
