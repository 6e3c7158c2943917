// The passgate browser extension end to end, with NO virtual authenticator: headless Chromium
// loads web-demo/extension/ (chrome.webAuthenticationProxy), which hands every WebAuthn call to
// the native-messaging host `passgate bridge native-host`, which talks CTAP 2.1 over TCP to
// `passgate authenticator serve --presence pinentry`. The relying party is `passgate rp` requiring
// user verification: the native host asks for the PIN in its trusted prompt (pinentry; here the
// scripted pinentry standing in for the person, a real Assuan speaker), the authenticator asks
// for approval in the same prompt, and every assertion carries UP and UV.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';
import {
  demoDir, siteDir, binary, chromiumPath, STEP_MS, withTimeout, freePort, screenshots, pageFetch,
  captureResponse, attestedFlags, assertionFlags, scriptedPinentry, startRelay, PASSGATE_AAGUID,
} from './harness.mjs';
import { rename, deletePasskey, approve as approveAction, statusText } from './flows.mjs';

const JOURNEY_TIMEOUT_MS = 90_000;
const extensionDir = join(demoDir, 'extension');
const HOST = 'dev.passgate.bridge';

/** The ID Chromium gives an extension whose manifest has `key`: SHA-256 of the key, a-p. */
function extensionId() {
  const { key } = JSON.parse(readFileSync(join(extensionDir, 'manifest.json'), 'utf8'));
  const hex = createHash('sha256').update(Buffer.from(key, 'base64')).digest('hex').slice(0, 32);
  return [...hex].map((c) => String.fromCharCode(97 + parseInt(c, 16))).join('');
}

function stopChild(child, ms = 5_000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); }, ms);
    child.once('exit', () => { clearTimeout(timer); done(); });
    child.kill('SIGTERM');
  });
}

/** Spawns `passgate ARGS` and waits for its `listening on ...` line: { child, address, log }. */
async function spawnListening(args, what) {
  const child = spawn(binary, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PASSGATE_LOG: process.env.PASSGATE_LOG ?? 'info' },
  });
  const log = [];
  const keep = (l) => { log.push(l); if (log.length > 200) log.shift(); };
  createInterface({ input: child.stderr }).on('line', keep);
  const lines = createInterface({ input: child.stdout });
  try {
    const address = await withTimeout(new Promise((ready, failed) => {
      lines.on('line', (l) => {
        keep(l);
        const m = /^listening on (\S+)/.exec(l);
        if (m) ready(m[1]);
      });
      child.once('error', failed);
      child.once('exit', (code, signal) => failed(new Error(
        `${what} exited (${code ?? signal}) before listening:\n${log.join('\n')}`)));
    }), `${what} start`, 20_000);
    return { child, address, log };
  } catch (e) {
    await stopChild(child);
    throw e;
  }
}

/**
 * `passgate authenticator serve` whose presence is approved in the (scripted) pinentry, on its
 * Unix socket (what local clients such as the native host use; TCP with a real prompt would
 * need the per-start secret of the default state directory).
 */
async function startAuthenticator(work, name = 'authenticator') {
  const stateDir = join(work, name);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const started = await spawnListening(['authenticator', 'serve', '--listen', `unix:${join(stateDir, 'authenticator.sock')}`,
    '--state-dir', stateDir, '--presence', 'pinentry', '--pinentry', pinentry.program], 'passgate authenticator serve');
  return { ...started, stateDir };
}

async function startRp(work) {
  let lastError;
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const port = await freePort();
    try {
      const started = await spawnListening(['rp', '--listen', `127.0.0.1:${port}`,
        '--database', `sqlite://${join(work, 'rp.sqlite3')}`,
        '--rp-id', 'localhost', '--origin', `http://localhost:${port}`,
        '--static-dir', siteDir, '--rate-limit-per-sec', '0'], 'passgate rp');
      return { ...started, port, base: `http://localhost:${port}`, ipBase: `http://127.0.0.1:${port}` };
    } catch (e) {
      lastError = e;
      if (!/binding|Address already in use/i.test(String(e.message))) break;
    }
  }
  throw lastError;
}

/** `passgate bridge install` into the profile's own NativeMessagingHosts directory. */
async function installHost(profile, authenticator, id) {
  const dir = join(profile, 'NativeMessagingHosts');
  const child = spawn(binary, ['bridge', 'install', '--browser', 'chromium', '--extension-id', id,
    '--authenticator', authenticator, '--manifest-dir', dir, '--pin-prompt', 'pinentry', '--pinentry', pinentry.program],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  const code = await withTimeout(new Promise((done) => child.once('exit', done)), 'bridge install');
  assert.equal(code, 0, out);
  const manifest = JSON.parse(readFileSync(join(dir, `${HOST}.json`), 'utf8'));
  assert.deepEqual(manifest.allowed_origins, [`chrome-extension://${id}/`]);
  return dir;
}

async function launchWithExtension(profile) {
  const context = await withTimeout(chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1100, height: 800 },
    timeout: 30_000,
    ignoreDefaultArgs: ['--disable-extensions'],
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--disable-extensions-except=${extensionDir}`, `--load-extension=${extensionDir}`],
  }), 'launch chromium', 40_000);
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  return context;
}

/** Talks to `passgate bridge native-host` directly (what the browser does), one request. */
async function nativeHostRequest(authenticator, message) {
  const child = spawn(binary, ['bridge', 'native-host', '--authenticator', authenticator, '--pinentry', pinentry.program],
    { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stderr.resume();
  const body = Buffer.from(JSON.stringify(message));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(body.length); // native endian (little-endian here)
  child.stdin.write(Buffer.concat([prefix, body]));
  try {
    return await withTimeout(new Promise((resolve, reject) => {
      let buffered = Buffer.alloc(0);
      child.stdout.on('data', (d) => {
        buffered = Buffer.concat([buffered, d]);
        if (buffered.length >= 4 && buffered.length >= 4 + buffered.readUInt32LE(0)) {
          resolve(JSON.parse(buffered.subarray(4, 4 + buffered.readUInt32LE(0)).toString('utf8')));
        }
      });
      child.once('exit', (code) => reject(new Error(`native host exited (${code}) without a reply`)));
    }), 'native host reply');
  } finally {
    child.stdin.end();
    await stopChild(child);
  }
}

let work;
let pinentry;
let profile;
let authenticator;
let rp;
let context;
let worker;
let EXTENSION_ID;
const durations = [];

/** Evaluates in the extension's service worker (its trace and status). */
function inWorker(fn, arg) {
  return withTimeout(worker.evaluate(fn, arg), 'service worker evaluate');
}

before(async () => {
  work = mkdtempSync(join(tmpdir(), 'passgate-extension-'));
  pinentry = scriptedPinentry(work);
  EXTENSION_ID = extensionId();
  authenticator = await startAuthenticator(work);
  rp = await startRp(work);
  profile = join(work, 'profile');
  mkdirSync(profile);
  await installHost(profile, authenticator.address, EXTENSION_ID);
  context = await launchWithExtension(profile);
  worker = context.serviceWorkers().find((w) => w.url().startsWith(`chrome-extension://${EXTENSION_ID}/`))
    ?? await withTimeout(context.waitForEvent('serviceworker', {
      predicate: (w) => w.url().startsWith(`chrome-extension://${EXTENSION_ID}/`), timeout: STEP_MS,
    }), 'extension service worker');
  // attach() is asynchronous: wait until the worker says it holds the proxy.
  const deadline = Date.now() + STEP_MS;
  for (;;) {
    const status = await inWorker(() => globalThis.passgateStatus());
    if (status.attached) break;
    if (Date.now() > deadline) {
      throw new Error(`the extension did not attach: ${JSON.stringify(await inWorker(() => globalThis.passgateTrace))}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
});

after(async () => {
  if (context) await withTimeout(context.close(), 'close chromium', 15_000).catch(() => {});
  if (rp) await stopChild(rp.child);
  if (authenticator) await stopChild(authenticator.child);
  if (second) await stopChild(second.child);
  if (work) rmSync(work, { recursive: true, force: true });
  for (const [name, ms] of durations) console.log(`journey extension ${name}: ${ms} ms`);
});

function journey(name, body) {
  test(name, { timeout: JOURNEY_TIMEOUT_MS }, async () => {
    const start = performance.now();
    const shot = screenshots(`extension-${name.split(':')[0]}`);
    await withTimeout(context.clearCookies(), 'clear cookies');
    const page = await withTimeout(context.newPage(), 'new page');
    page.setDefaultTimeout(STEP_MS);
    page.setDefaultNavigationTimeout(STEP_MS);
    try {
      await body({ page, shot });
    } catch (e) {
      await shot(page, 'failure').catch(() => {});
      console.log(`extension trace:\n${JSON.stringify(await inWorker(() => globalThis.passgateTrace).catch(() => null))}`);
      console.log(`rp log (tail):\n${rp.log.slice(-10).join('\n')}`);
      console.log(`authenticator log (tail):\n${authenticator.log.slice(-10).join('\n')}`);
      console.log(`pinentry dialogs (tail):\n${JSON.stringify(pinentry.dialogs().slice(-6), null, 1)}`);
      throw e;
    } finally {
      await withTimeout(page.close(), 'close page').catch(() => {});
      const ms = Math.round(performance.now() - start);
      durations.push([name, ms]);
      console.log(`journey "extension ${name}" took ${ms} ms`);
    }
  });
}

let users = 0;
function username(prefix) {
  users += 1;
  return `${prefix}-${users}-${Date.now().toString(36)}`;
}

async function goto(page, url) {
  await withTimeout(page.goto(url, { waitUntil: 'load' }), `goto ${url}`);
}

function clientData(response) {
  return JSON.parse(Buffer.from(response.response.clientDataJSON, 'base64url').toString('utf8'));
}

/** Signs up on the index page; returns the register/verify exchange. */
async function signUp(page, name, displayName) {
  await goto(page, `${rp.base}/`);
  await page.fill('#signup-username', name);
  await page.fill('#signup-display', displayName);
  const exchange = await captureResponse(page, 'POST', '/api/register/verify', () => page.click('#signup-button'));
  assert.equal(exchange.status, 200, JSON.stringify(exchange.body));
  await page.waitForURL(`${rp.base}/account.html`, { timeout: STEP_MS });
  await page.locator('#passkeys tr').first().waitFor();
  return exchange;
}

async function signOut(page) {
  await page.click('#signout');
  await page.waitForURL(`${rp.base}/`, { timeout: STEP_MS });
  await page.locator('#signup-button').waitFor();
}

/** Signs in by username on the index page; returns the login/verify exchange. */
async function signIn(page, name) {
  await page.fill('#signin-username', name);
  const exchange = await captureResponse(page, 'POST', '/api/login/verify', () => page.click('#signin-button'));
  assert.equal(exchange.status, 200, JSON.stringify(exchange.body));
  await page.waitForURL(`${rp.base}/account.html`, { timeout: STEP_MS });
  return exchange;
}

/** Runs navigator.credentials.get in the page: { ok, credential } or { ok: false, name, message }. */
function pageGet(page, publicKey, extra = {}) {
  return withTimeout(page.evaluate(async ([pk, more]) => {
    const decode = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
    const options = { ...pk, ...more, challenge: decode(pk.challenge) };
    if (pk.allowCredentials) options.allowCredentials = pk.allowCredentials.map((c) => ({ ...c, id: decode(c.id) }));
    try {
      const credential = await navigator.credentials.get({ publicKey: options });
      return { ok: true, credential: credential.toJSON() };
    } catch (e) {
      return { ok: false, name: e.name, message: e.message };
    }
  }, [publicKey, extra]), 'navigator.credentials.get', 30_000);
}

let registered; // { name, credentialId } from journey 1, used by the others
let second; // a second `passgate authenticator serve` (another device), from journey 6

journey('1-sign-up-sign-in: through extension, native host and passgate authenticator', async ({ page, shot }) => {
  assert.equal(worker.url(), `chrome-extension://${EXTENSION_ID}/background.js`);
  const name = username('ext');
  const traceBefore = (await inWorker(() => globalThis.passgateTrace)).length;
  await goto(page, `${rp.base}/`);
  await shot(page, 'index');
  // The page arms passkey autofill on load if the browser offers it; through the proxy no
  // request reaches the extension for it (no prompt appears until the person acts).
  const conditional = await withTimeout(page.evaluate(() => PublicKeyCredential.isConditionalMediationAvailable()), 'conditional mediation');
  await new Promise((r) => setTimeout(r, 500));
  const onLoad = (await inWorker(() => globalThis.passgateTrace)).slice(traceBefore).filter((e) => e.event === 'request');
  console.log(`with the extension attached: isConditionalMediationAvailable() = ${conditional}; requests proxied on load: ${onLoad.length}`);
  assert.deepEqual(onLoad, []);

  // The authenticator has no PIN yet and the RP requires verification: the native host's
  // prompt asks for a new PIN twice, the authenticator's for approval.
  const before = pinentry.dialogs().length;
  const reg = await signUp(page, name, 'Extension User');
  const dialogs = pinentry.dialogs().slice(before);
  assert.deepEqual(dialogs.map((d) => [d.command, d.prompt ?? null]), [['GETPIN', 'New PIN:'], ['GETPIN', 'Repeat:'], ['CONFIRM', null]]);
  assert.ok(dialogs[0].description.includes(`${rp.base} wants to create a passkey for “${name}” on localhost.`), dialogs[0].description);
  assert.match(dialogs[2].description, new RegExp(`^Create a passkey for localhost as “${name}”\\?`));
  const flags = attestedFlags(reg.request);
  assert.deepEqual({ up: flags.up, uv: flags.uv, at: flags.at }, { up: true, uv: true, at: true });
  assert.equal(flags.aaguid, PASSGATE_AAGUID);
  assert.equal(reg.body.credential.authenticator, 'passgate');
  assert.deepEqual(clientData(reg.request).origin, rp.base);
  assert.equal(clientData(reg.request).type, 'webauthn.create');
  assert.equal(reg.body.verified, true);
  // The passgate authenticator made it, not a Chromium virtual authenticator.
  assert.equal(reg.body.credential.aaguid, flags.aaguid);
  assert.notEqual(flags.aaguid, '01020304-0506-0708-0102-030405060708');
  assert.deepEqual(reg.body.credential.transports, ['internal']);
  const credentialId = reg.body.credential.id;
  assert.equal(reg.request.id, credentialId);
  assert.equal(reg.request.rawId, credentialId);
  await shot(page, 'account');

  // The request really went through this extension and its native host, with the page's origin.
  const trace = await inWorker(() => globalThis.passgateTrace);
  const created = trace.filter((e) => e.event === 'request' && e.kind === 'create');
  assert.ok(created.length >= 1, JSON.stringify(trace));
  assert.equal(created.at(-1).origin, rp.base);
  assert.ok(trace.some((e) => e.event === 'completed' && e.kind === 'create' && e.error === null));

  await signOut(page);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  await shot(page, 'index-signed-out');

  const beforeLogin = pinentry.dialogs().length;
  const login = await signIn(page, name);
  assert.deepEqual(pinentry.dialogs().slice(beforeLogin).map((d) => d.command), ['GETPIN', 'CONFIRM']);
  assert.equal(login.body.verified, true);
  assert.equal(login.body.user.name, name);
  assert.equal(login.body.credential.id, credentialId);
  assert.equal(login.request.id, credentialId);
  assert.equal(login.body.verdict.userPresent, true);
  assert.equal(login.body.verdict.userVerified, true);
  assert.equal(login.body.verdict.origin, rp.base);
  assert.equal(clientData(login.request).origin, rp.base);
  assert.equal(clientData(login.request).type, 'webauthn.get');
  assert.deepEqual(assertionFlags(login.request), { up: true, uv: true, be: false, bs: false });
  await page.locator('#passkeys tr').first().waitFor();
  await shot(page, 'account-signed-in');

  // A second sign-in with the same passkey: the authenticator's signature counter moves on.
  await signOut(page);
  const again = await signIn(page, name);
  assert.equal(again.body.credential.id, credentialId);
  assert.ok(again.body.credential.signCount > login.body.credential.signCount,
    `${again.body.credential.signCount} > ${login.body.credential.signCount}`);
  await page.locator('#passkeys tr').first().waitFor();
  await shot(page, 'account-second-sign-in');

  // The authenticator holds that credential: asked directly (no browser), it signs with it.
  const direct = await nativeHostRequest(authenticator.address, {
    requestId: 'direct', type: 'get', origin: rp.base,
    options: { challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId: 'localhost', allowCredentials: [{ type: 'public-key', id: credentialId }], userVerification: 'discouraged' },
  });
  assert.equal(direct.ok, true, JSON.stringify(direct));
  assert.equal(direct.credential.id, credentialId);
  registered = { name, credentialId };
});

journey('2-other-origin: http://127.0.0.1 cannot get an assertion for RP ID localhost', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${rp.ipBase}/`);
  await shot(page, 'index-at-ip');
  const before = (await inWorker(() => globalThis.passgateTrace)).length;
  const result = await pageGet(page, {
    challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId: 'localhost', timeout: 10_000, userVerification: 'discouraged',
    allowCredentials: [{ type: 'public-key', id: registered.credentialId }],
  });
  assert.equal(result.ok, false, JSON.stringify(result));
  assert.equal(result.name, 'SecurityError', JSON.stringify(result));
  // Without an RP ID the default is the IP host, which the bridge refuses too.
  const own = await pageGet(page, { challenge: 'AAECAwQFBgcICQoLDA0ODw', timeout: 10_000, userVerification: 'discouraged' });
  assert.equal(own.ok, false, JSON.stringify(own));
  assert.match(own.name, /SecurityError|NotAllowedError/);
  const trace = (await inWorker(() => globalThis.passgateTrace)).slice(before);
  console.log(`other-origin: first ${result.name} (${result.message}); own ${own.name} (${own.message}); extension saw ${JSON.stringify(trace.filter((e) => e.event === 'request').map((e) => e.origin))}`);
  // Whatever reached the extension carried the IP origin, never localhost.
  for (const e of trace.filter((x) => x.event === 'request')) assert.equal(e.origin, rp.ipBase);
  // Had Chromium let it through, the bridge refuses that origin for RP ID localhost as well.
  const bridged = await nativeHostRequest(authenticator.address, {
    requestId: 'ip', type: 'get', origin: rp.ipBase,
    options: { challenge: 'AAECAwQFBgcICQoLDA0ODw', rpId: 'localhost', allowCredentials: [{ type: 'public-key', id: registered.credentialId }] },
  });
  assert.equal(bridged.ok, false, JSON.stringify(bridged));
  assert.equal(bridged.error.name, 'SecurityError');
  await shot(page, 'after-refusal');
});

journey('3-forged-origin: page script cannot choose the origin', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${rp.base}/`);
  // The page can send the extension one thing only, an action's text (externally_connectable):
  // a request with an origin of its choosing is refused there and reaches no host.
  const reach = await withTimeout(page.evaluate(async (id) => {
    if (!globalThis.chrome?.runtime?.sendMessage) return 'no chrome.runtime';
    try { return await chrome.runtime.sendMessage(id, { type: 'get', origin: 'https://evil.example' }); } catch (e) { return `refused: ${e.message}`; }
  }, EXTENSION_ID), 'runtime.sendMessage from the page');
  assert.equal(reach?.ok, false, JSON.stringify(reach));
  assert.equal(reach.error.name, 'NotSupportedError');

  // What Chromium hands the extension: record the raw requestDetailsJson of the next gets.
  await inWorker(() => {
    globalThis.rawGets = [];
    if (!globalThis.rawListener) {
      globalThis.rawListener = (r) => globalThis.rawGets.push(JSON.parse(r.requestDetailsJson));
      chrome.webAuthenticationProxy.onGetRequest.addListener(globalThis.rawListener);
    }
  });
  const traceStart = (await inWorker(() => globalThis.passgateTrace)).length;

  // Claiming the browser's own origin field is refused by Chromium (or overwritten by it).
  const options = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
  assert.equal(options.status, 200, JSON.stringify(options.body));
  const claimed = await pageGet(page, options.body, {
    extensions: { remoteDesktopClientOverride: { origin: 'https://evil.example', sameOriginWithAncestors: true } },
  });
  if (claimed.ok) {
    assert.equal(clientData(claimed.credential).origin, rp.base, 'a page-supplied override must not change the origin');
  } else {
    assert.match(claimed.name, /NotAllowedError|SecurityError|NotSupportedError/, JSON.stringify(claimed));
  }
  console.log(`forged remoteDesktopClientOverride: ${claimed.ok ? 'ignored' : `${claimed.name} (${claimed.message})`}`);

  // Extra fields naming another origin are ignored: the server sees the true origin.
  const fresh = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
  const forged = await pageGet(page, fresh.body, { origin: 'https://evil.example', topOrigin: 'https://evil.example', crossOrigin: true });
  assert.equal(forged.ok, true, JSON.stringify(forged));
  assert.equal(clientData(forged.credential).origin, rp.base);
  assert.equal(clientData(forged.credential).crossOrigin, false);
  const verify = await pageFetch(page, 'POST', '/api/login/verify', forged.credential);
  assert.equal(verify.status, 200, JSON.stringify(verify.body));
  assert.equal(verify.body.verified, true);
  assert.equal(verify.body.verdict.origin, rp.base);
  assert.equal(verify.body.verdict.userVerified, true);
  assert.equal(verify.body.credential.id, registered.credentialId);
  // Chromium wrote the true origin into every proxied request, whatever the page passed, and
  // that is the origin the extension forwarded.
  const raw = await inWorker(() => globalThis.rawGets);
  assert.ok(raw.length >= 1);
  for (const r of raw) {
    assert.deepEqual(r.extensions?.remoteDesktopClientOverride, { origin: rp.base, sameOriginWithAncestors: true }, JSON.stringify(r));
    assert.equal(r.origin, undefined);
  }
  const seen = (await inWorker(() => globalThis.passgateTrace)).slice(traceStart).filter((e) => e.event === 'request');
  assert.equal(seen.length, raw.length);
  for (const e of seen) assert.equal(e.origin, rp.base);
  await goto(page, `${rp.base}/account.html`);
  await page.locator('#passkeys tr').first().waitFor();
  await shot(page, 'account-after-forged-fields');
});

/** PIDs of the native hosts Chromium started for `address` (this test's authenticator). */
function browserNativeHosts(address = authenticator.address) {
  const pids = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv.includes('native-host') || !argv.includes(address)) continue;
      const ppid = Number(/^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))[1]);
      if (ppid !== process.pid) pids.push(Number(entry));
    } catch { /* gone */ }
  }
  return pids;
}

journey('4-no-hang: a frozen authenticator or a dead native host ends the request, then it reconnects', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${rp.base}/`);
  const hosts = browserNativeHosts();
  assert.equal(hosts.length, 1, `one native host for this browser: ${hosts}`);
  const status = await inWorker(() => globalThis.passgateStatus());
  assert.equal(status.connected, true);

  // (a) The authenticator stops answering: the page still gets an answer, bounded by its timeout.
  authenticator.child.kill('SIGSTOP');
  try {
    const options = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
    const started = performance.now();
    const frozen = await pageGet(page, { ...options.body, timeout: 5_000 });
    const waited = Math.round(performance.now() - started);
    console.log(`frozen authenticator: ${frozen.ok ? 'ok?' : `${frozen.name} (${frozen.message})`} after ${waited} ms`);
    assert.equal(frozen.ok, false, JSON.stringify(frozen));
    assert.match(frozen.name, /NotAllowedError|TimeoutError|AbortError/);
    assert.ok(waited < 20_000, `answered after ${waited} ms`);

    // (a2) The native host itself stops answering: the extension's own timer answers the page.
    const hostPids = browserNativeHosts();
    for (const pid of hostPids) process.kill(pid, 'SIGSTOP');
    try {
      const stuck = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
      const t0 = performance.now();
      // Chromium proxies a 5 s request with its own, longer timeout (180 s on Chromium 156): cap
      // the extension's wait for this step, through the worker's config (pages cannot reach it).
      await inWorker(() => { globalThis.passgateConfig.maxTimeoutMs = 4_000; });
      const silent = await pageGet(page, { ...stuck.body, timeout: 5_000 })
        .finally(() => inWorker(() => { globalThis.passgateConfig.maxTimeoutMs = 600_000; }));
      const proxied = (await inWorker(() => globalThis.rawGets ?? [])).at(-1);
      if (proxied) console.log(`page asked timeout 5000, Chromium proxied timeout ${proxied.timeout}`);
      const ms = Math.round(performance.now() - t0);
      console.log(`frozen native host: ${silent.ok ? 'ok?' : `${silent.name} (${silent.message})`} after ${ms} ms`);
      assert.equal(silent.ok, false, JSON.stringify(silent));
      assert.equal(silent.name, 'NotAllowedError');
      assert.match(silent.message, /did not answer within/);
      assert.ok(ms >= 6_500 && ms < 15_000, `answered after ${ms} ms (4 s cap + 3 s grace)`);
    } finally {
      for (const pid of hostPids) process.kill(pid, 'SIGCONT');
    }

    // (b) The native host dies mid-request: the page gets NotAllowedError at once.
    const again = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
    const pending = pageGet(page, { ...again.body, timeout: 60_000 });
    const deadline = Date.now() + STEP_MS;
    while ((await inWorker(() => globalThis.passgateStatus())).pending === 0) {
      if (Date.now() > deadline) throw new Error('the request never reached the extension');
      await new Promise((r) => setTimeout(r, 50));
    }
    const killedAt = performance.now();
    for (const pid of browserNativeHosts()) process.kill(pid, 'SIGKILL');
    const dead = await pending;
    const after = Math.round(performance.now() - killedAt);
    console.log(`native host killed: ${dead.ok ? 'ok?' : `${dead.name} (${dead.message})`} ${after} ms later`);
    assert.equal(dead.ok, false, JSON.stringify(dead));
    assert.equal(dead.name, 'NotAllowedError');
    assert.ok(after < 5_000, `answered ${after} ms after the host died`);
  } finally {
    authenticator.child.kill('SIGCONT');
  }
  await shot(page, 'index-after-failures');

  // (c) The next ceremony starts a new native host and signs in.
  const before = (await inWorker(() => globalThis.passgateStatus())).connections;
  const login = await signIn(page, registered.name);
  assert.equal(login.body.verified, true);
  assert.equal(login.body.credential.id, registered.credentialId);
  assert.equal(login.body.verdict.origin, rp.base);
  const now = await inWorker(() => globalThis.passgateStatus());
  assert.ok(now.connections > before, JSON.stringify(now));
  assert.equal(now.connected, true);
  await page.locator('#passkeys tr').first().waitFor();
  await shot(page, 'account-after-reconnect');
});

journey('5-uvpaa-and-abort: isUVPAA answers through the host; an aborted request is cancelled', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${rp.base}/`);
  const uvpaa = await withTimeout(page.evaluate(() => PublicKeyCredential.isUserVerifyingPlatformAuthenticatorAvailable()), 'isUVPAA');
  const answered = (await inWorker(() => globalThis.passgateTrace)).filter((e) => e.event === 'isUvpaa');
  assert.ok(answered.length >= 1, 'the question reached the extension');
  assert.equal(uvpaa, answered.at(-1).answer);
  console.log(`isUserVerifyingPlatformAuthenticatorAvailable: ${uvpaa} (native host error: ${answered.at(-1).error})`);

  // The page aborts while the authenticator is frozen: AbortError at once, and the extension
  // passes the cancellation on to the native host.
  authenticator.child.kill('SIGSTOP');
  try {
    const options = await pageFetch(page, 'POST', '/api/login/options', { username: registered.name });
    const result = await withTimeout(page.evaluate(async (pk) => {
      const decode = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
      const controller = new AbortController();
      const request = navigator.credentials.get({
        signal: controller.signal,
        publicKey: { ...pk, timeout: 60_000, challenge: decode(pk.challenge), allowCredentials: pk.allowCredentials.map((c) => ({ ...c, id: decode(c.id) })) },
      });
      setTimeout(() => controller.abort(), 500);
      const started = performance.now();
      try { await request; return { ok: true }; } catch (e) { return { ok: false, name: e.name, ms: performance.now() - started }; }
    }, options.body), 'aborted get', 20_000);
    assert.equal(result.ok, false);
    assert.equal(result.name, 'AbortError');
    assert.ok(result.ms < 5_000, `aborted after ${result.ms} ms`);
    const deadline = Date.now() + STEP_MS;
    while (!(await inWorker(() => globalThis.passgateTrace)).some((e) => e.event === 'canceled')) {
      if (Date.now() > deadline) throw new Error('the extension never heard of the cancellation');
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await inWorker(() => globalThis.passgateStatus())).pending, 0);
  } finally {
    authenticator.child.kill('SIGCONT');
  }
  // And the next sign-in works.
  const login = await signIn(page, registered.name);
  assert.equal(login.body.credential.id, registered.credentialId);
  await page.locator('#passkeys tr').first().waitFor();
  await shot(page, 'account-after-abort');
});

/**
 * Points the browser's native host at another authenticator ("plugging in another device"):
 * rewrites the host's launcher, then ends the running host so the extension starts a new one.
 */
async function switchAuthenticator(to, from) {
  await installHost(profile, to.address, EXTENSION_ID);
  for (const pid of browserNativeHosts(from.address)) process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + STEP_MS;
  while ((await inWorker(() => globalThis.passgateStatus())).connected) {
    if (Date.now() > deadline) throw new Error('the extension still holds the old native host');
    await new Promise((r) => setTimeout(r, 50));
  }
}

journey('6-manage-passkeys: rename, add (excluded), add from another authenticator, delete after re-auth, last refused', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${rp.base}/`);
  await signIn(page, registered.name);
  const list = await pageFetch(page, 'GET', '/api/credentials');
  const mine = list.body.credentials.find((c) => c.id === registered.credentialId);
  await rename(page, registered.credentialId, mine.name, 'Extension laptop');
  await shot(page, 'account-renamed');

  // The same authenticator already holds a passkey for this account: found silently before
  // any PIN, one notice in the native host's prompt, then InvalidStateError.
  const noticeFrom = pinentry.dialogs().length;
  await page.click('#add');
  assert.match(await statusText(page, 'InvalidStateError'), /already registered/);
  assert.deepEqual(pinentry.dialogs().slice(noticeFrom).map((d) => [d.command, d.title ?? null]),
    [['CONFIRM', 'passgate: passkey already here']]);
  await shot(page, 'account-already-registered');

  // Another device: a second passgate authenticator behind the same extension.
  second = await startAuthenticator(work, 'second-authenticator');
  await switchAuthenticator(second, authenticator);
  const before = pinentry.dialogs().length;
  const added = await captureResponse(page, 'POST', '/api/register/verify', () => page.click('#add'));
  assert.equal(added.status, 200, JSON.stringify(added.body));
  // Its first use sets its own PIN.
  assert.deepEqual(pinentry.dialogs().slice(before).map((d) => [d.command, d.prompt ?? null]),
    [['GETPIN', 'New PIN:'], ['GETPIN', 'Repeat:'], ['CONFIRM', null]]);
  assert.equal(attestedFlags(added.request).uv, true);
  assert.equal(added.body.credential.aaguid, PASSGATE_AAGUID);
  assert.notEqual(added.body.credential.id, registered.credentialId);
  await page.locator('#passkeys tr').nth(1).waitFor();
  await shot(page, 'account-two-passkeys');

  // Back to the first device: delete the second device's passkey after re-authenticating.
  await switchAuthenticator(authenticator, second);
  const removal = await deletePasskey(page, added.body.credential.id, added.body.credential.name);
  assert.equal(removal.reauth.status, 200);
  assert.equal(removal.reauth.request.id, registered.credentialId);
  assert.equal(assertionFlags(removal.reauth.request).uv, true);
  assert.equal(removal.deleted.status, 200);
  assert.deepEqual(removal.deleted.body, { deleted: added.body.credential.id });
  await page.waitForFunction(() => document.querySelectorAll('#passkeys tr').length === 1);
  await shot(page, 'account-after-delete');

  const last = await deletePasskey(page, registered.credentialId, 'Extension laptop', { last: true });
  assert.equal(last.reauth, undefined);
  assert.equal(last.deleted.status, 409);
  assert.equal(last.deleted.body.error.code, 'last_credential');
  await statusText(page, 'last_credential');
  await shot(page, 'account-last-refused');
});

journey('7-approve-action: a signed action through the extension, its text shown; a tampered text refused', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  await goto(page, `${rp.base}/`);
  await signIn(page, registered.name);
  const payload = '{"pay": "Mozilla Foundation", "amount": "25.00", "currency": "EUR"}';
  const before = pinentry.dialogs().length;
  const approved = await approveAction(page, rp.base, payload);
  // The page handed the text to the extension beside the options (Chromium's proxy carries
  // only the options); the native host's PIN dialog shows it, pretty-printed.
  const shown = pinentry.dialogs().slice(before);
  assert.deepEqual(shown.map((d) => [d.command, d.title ?? null]).slice(0, 1), [['GETPIN', 'passgate: approve an action']]);
  assert.ok(shown[0].description.startsWith(`Approve on ${rp.base} (your passkey for localhost):\n\n    {\n      "amount": "25.00",`), shown[0].description);
  const receipt = JSON.parse(approved.body.receipt.receiptJson);
  assert.equal(receipt.payload, payload);
  assert.equal(receipt.payloadShown, true);
  assert.match(await page.innerText('#receipt-shown'), /^yes: passgate's prompt showed this text/);
  assert.equal(receipt.userVerified, true);
  assert.equal(receipt.origin, rp.base);
  assert.equal(receipt.credentialId, registered.credentialId);
  assert.equal(receipt.payloadSha256, createHash('sha256').update(payload).digest('base64url'));
  assert.match(await page.innerText('#receipt-uv'), /^yes/);
  assert.equal(await page.locator('#authenticator dd[data-field="aaguid"]').innerText(), PASSGATE_AAGUID);
  await shot(page, 'approve-receipt');

  // A page that hands the extension one text and has another signed: refused before any
  // prompt, nothing signed.
  const options = await pageFetch(page, 'POST', '/api/actions/options', { payload });
  assert.equal(options.status, 200);
  const asked = pinentry.dialogs().length;
  const tampered = await withTimeout(page.evaluate(async ({ pk, id }) => {
    const told = await chrome.runtime.sendMessage(id, { type: 'payload', challenge: pk.challenge, payload: '{"pay": "Mozilla Foundation", "amount": "2.50", "currency": "EUR"}' });
    try {
      await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(pk) });
      return { told, ok: true };
    } catch (e) {
      return { told, ok: false, name: e.name, message: e.message };
    }
  }, { pk: options.body.publicKey, id: extensionId() }), 'tampered get');
  assert.deepEqual(tampered.told, { ok: true });
  assert.equal(tampered.ok, false);
  assert.equal(tampered.name, 'SecurityError');
  assert.match(tampered.message, /does not match what the challenge commits to/);
  assert.equal(pinentry.dialogs().length, asked, 'no prompt was shown');
});

journey('8-relay-origin: a relay on another origin gets an assertion the RP refuses, and the prompt names the relay', async ({ page, shot }) => {
  assert.ok(registered, 'journey 1 registered a passkey');
  const relay = await startRelay(rp.port);
  try {
    await goto(page, `${relay.base}/`);
    const before = pinentry.dialogs().length;
    await page.fill('#signin-username', registered.name);
    const refused = await captureResponse(page, 'POST', '/api/login/verify', () => page.click('#signin-button'));
    // The person sees who is asking: the relay's origin, not the RP's.
    const shown = pinentry.dialogs().slice(before);
    assert.ok(shown[0].description.includes(`${relay.base} wants to sign in`), shown[0].description);
    assert.equal(clientData(refused.request).origin, relay.base);
    assert.equal(refused.status, 400);
    assert.equal(refused.body.error.code, 'origin_not_allowed');
    assert.equal(refused.headers['set-cookie'], undefined);
    assert.match(await statusText(page, 'origin_not_allowed'), /not the real site/);
    await shot(page, 'relay-refused-by-server');
  } finally {
    await relay.stop();
  }
});
