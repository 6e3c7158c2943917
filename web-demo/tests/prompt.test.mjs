// The person's side of passgate's trusted prompt, on `passgate demo` through the webview shim
// and the local bridge (a scripted pinentry standing in for the person): what you see is what
// you sign (the action's text in the prompt, a tampered text refused before anyone is asked),
// one prompt per request, and failure paths the page tells apart — declined, no answer in
// time, cancelled from the page. Screenshots at 1280 and 390 px wide.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawn } from 'node:child_process';
import { binary, startDemo, launchBrowser, screenshots, pageFetch, withTimeout, STEP_MS, captureResponse } from './harness.mjs';
import { username, goto, statusText, clientData, signUp, signOut, signIn, approve, deletePasskey, useLabel } from './flows.mjs';

const JOURNEY_TIMEOUT_MS = 120_000;
/** The demo's prompt waits this long (s) before it gives up: the timeout journey waits it out. */
const PROMPT_TIMEOUT_S = 4;

let demo;
let browser;
let account; // { name } from journey 1
const timings = [];

before(async () => {
  demo = await startDemo({ promptTimeout: PROMPT_TIMEOUT_S });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.stop();
  await demo?.stop();
  console.log('passgate-path step | time (ms) | prompts');
  for (const [step, ms, prompts] of timings) console.log(`${step} | ${ms} | ${prompts}`);
});

function withoutAutofillToken() {
  document.addEventListener('DOMContentLoaded', () => {
    for (const field of document.querySelectorAll('input[autocomplete~="webauthn"]')) {
      field.setAttribute('autocomplete', field.getAttribute('autocomplete').replace(/\s*\bwebauthn\b/, '') || 'on');
    }
  }, { once: true });
}

function journey(name, body) {
  test(name, { timeout: JOURNEY_TIMEOUT_MS }, async () => {
    const shot = screenshots(`prompt-${name.split(':')[0]}`);
    demo.pinentry.direct({});
    const page = await withTimeout(browser.context.newPage(), 'new page');
    page.setDefaultTimeout(STEP_MS);
    page.setDefaultNavigationTimeout(STEP_MS);
    await withTimeout(page.addInitScript(withoutAutofillToken), 'init script');
    try {
      await body({ page, shot });
    } catch (e) {
      await shot(page, 'failure').catch(() => {});
      console.log(`demo log (tail):\n${demo.log.slice(-20).join('\n')}`);
      console.log(`pinentry dialogs (tail):\n${JSON.stringify(demo.pinentry.dialogs().slice(-6), null, 1)}`);
      throw e;
    } finally {
      await withTimeout(page.close(), 'close page').catch(() => {});
    }
  });
}

/** Runs `action`, timing it and counting the prompts it showed. */
async function timed(step, action) {
  const before = demo.pinentry.dialogs().length;
  const start = performance.now();
  const result = await action();
  const dialogs = demo.pinentry.dialogs().slice(before);
  timings.push([step, Math.round(performance.now() - start), dialogs.length]);
  return { result, dialogs };
}

async function ensurePaired(page) {
  if ((await page.getAttribute('#authenticator-choice', 'data-kind')) === 'passgate') return;
  await page.click('#use-passgate');
  await page.locator('#pair-dialog[open]').waitFor();
  await page.fill('#pair-url', demo.bridgeUrl);
  await page.fill('#pair-code', demo.pairingCode);
  await page.click('#pair-submit');
  await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
}

/** A screenshot at 1280 px and one at 390 px wide (then back to 1280). */
async function bothWidths(page, shot, name) {
  await page.setViewportSize({ width: 1280, height: 800 });
  await shot(page, `${name}-1280`);
  await page.setViewportSize({ width: 390, height: 844 });
  await shot(page, `${name}-390`);
  await page.setViewportSize({ width: 1280, height: 800 });
}

/** Waits until the pinentry process `pid` is gone. */
async function closed(pid) {
  const deadline = Date.now() + 5_000;
  const alive = () => { try { process.kill(pid, 0); return true; } catch { return false; } };
  while (alive()) {
    if (Date.now() > deadline) throw new Error(`the pinentry (pid ${pid}) is still open`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

journey('1-what-you-see: one prompt per step; the action text shown and signed; a tampered text refused', async ({ page, shot }) => {
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);
  const name = username('ada');
  const signedUp = await timed('sign up (first PIN chosen)', () => signUp(page, demo.base, name, 'Ada Lovelace'));
  assert.deepEqual(signedUp.dialogs.map((d) => [d.command, d.title]),
    [['GETPIN', 'passgate: create a passkey'], ['GETPIN', 'passgate: create a passkey']]);
  await signOut(page, demo.base);
  const signedIn = await timed('sign in by username', () => signIn(page, demo.base, name));
  assert.deepEqual(signedIn.dialogs.map((d) => [d.command, d.title, d.ok]), [['GETPIN', 'passgate: sign in', 'Sign in']]);
  assert.equal(signedIn.result.body.verdict.userVerified, true);
  assert.equal(signedIn.result.body.verdict.userPresent, true);
  await signOut(page, demo.base);
  const discoverable = await timed('sign in, no username', () => signIn(page, demo.base, ''));
  assert.equal(discoverable.dialogs.length, 1);
  account = { name };

  // The action: its text is in the one prompt, pretty-printed, and the receipt says so.
  const payload = '{"pay": "ACME Ltd", "amount": "129.00", "currency": "EUR", "iban": "DE89 3704 0044 0532 0130 00"}';
  const approved = await timed('approve an action', () => approve(page, demo.base, payload));
  assert.deepEqual(approved.dialogs.map((d) => [d.command, d.title, d.ok]), [['GETPIN', 'passgate: approve an action', 'Approve']]);
  const text = approved.dialogs[0].description;
  assert.ok(text.startsWith(`Approve on ${demo.base} (your passkey for localhost):\n\n    {\n      "amount": "129.00",\n      "currency": "EUR",\n`), text);
  assert.ok(text.includes('      "iban": "DE89 3704 0044 0532 0130 00",\n      "pay": "ACME Ltd"\n    }'), text);
  const receipt = JSON.parse(approved.result.body.receipt.receiptJson);
  assert.equal(receipt.payload, payload);
  assert.equal(receipt.payloadShown, true);
  assert.equal(clientData(approved.result.request).passgatePayloadShown, true);
  assert.match(await page.innerText('#receipt-shown'), /^yes: passgate's prompt showed this text/);
  await bothWidths(page, shot, 'approve-receipt');

  // A page that shows one text and has another signed: refused before any prompt, nothing
  // signed, the server never sees an assertion.
  const options = await pageFetch(page, 'POST', '/api/actions/options', { payload });
  assert.equal(options.status, 200);
  const before = demo.pinentry.dialogs().length;
  const tampered = await withTimeout(page.evaluate(async (pk) => {
    try {
      await navigator.credentials.get({
        publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(pk),
        payload: '{"pay": "ACME Ltd", "amount": "1.29", "currency": "EUR"}',
      });
      return { ok: true };
    } catch (e) {
      return { ok: false, name: e.name, message: e.message };
    }
  }, options.body.publicKey), 'tampered get');
  assert.equal(tampered.ok, false);
  assert.equal(tampered.name, 'SecurityError');
  assert.match(tampered.message, /does not match what the challenge commits to.*nothing was signed/);
  assert.equal(demo.pinentry.dialogs().length, before, 'no prompt was shown');
  // The RP's challenge does commit to the real text.
  const challenge = Buffer.from(options.body.publicKey.challenge, 'base64url');
  assert.deepEqual(challenge.subarray(16), createHash('sha256').update(payload).digest());
});

journey('2-failures: declined, no answer in time and cancelled on the page each say so; the next request works', async ({ page, shot }) => {
  assert.ok(account, 'journey 1 made an account');
  await goto(page, `${demo.base}/`);
  await pageFetch(page, 'POST', '/api/logout', {});
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);

  // Declined in the prompt.
  demo.pinentry.direct({ script: { GETPIN: ['cancel'] } });
  await page.fill('#signin-username', account.name);
  await page.click('#signin-button');
  const declined = await statusText(page, 'declined');
  assert.match(declined, /^You declined on passgate's prompt \(the PIN was not entered\)\. \(NotAllowedError\)$/);
  await bothWidths(page, shot, 'index-declined');

  // Nobody answers: the prompt gives up after its timeout, and says how long it waited.
  demo.pinentry.direct({ script: { GETPIN: [{ hang: true }] } });
  const waitedFrom = demo.pinentry.dialogs().length;
  await page.click('#signin-button');
  await page.locator('#passgate-waiting').waitFor();
  assert.match(await page.innerText('#passgate-waiting'), /Approve in passgate's window: sign in\./);
  assert.match(await page.innerText('#passgate-waiting [data-field="countdown"]'), /^\d+$/);
  await bothWidths(page, shot, 'index-waiting-for-passgate');
  const timedOut = await statusText(page, 'No answer');
  assert.match(timedOut, new RegExp(`^No answer within ${PROMPT_TIMEOUT_S} s on passgate's prompt \\(the PIN was not entered\\)\\.`));
  assert.equal(await page.locator('#passgate-waiting').count(), 0, 'the waiting panel is gone');
  await closed(demo.pinentry.dialogs()[waitedFrom].pid);

  // Cancel on the page while the prompt waits: the prompt closes, the page says who stopped it.
  demo.pinentry.direct({ script: { GETPIN: [{ hang: true }] } });
  const cancelFrom = demo.pinentry.dialogs().length;
  await page.click('#signin-button');
  const open = await demo.pinentry.waitForDialogs(cancelFrom + 1);
  await page.click('#passgate-cancel');
  const cancelled = await statusText(page, 'cancelled');
  assert.match(cancelled, /^You cancelled the request on this page; nothing was signed\./);
  await closed(open[cancelFrom].pid);
  assert.equal((await pageFetch(page, 'GET', '/api/session')).status, 401);
  await bothWidths(page, shot, 'index-cancelled-on-page');

  // And the next sign-in works, with one prompt.
  demo.pinentry.direct({});
  const again = await timed('sign in after the failures', () => signIn(page, demo.base, account.name));
  assert.equal(again.dialogs.length, 1);
  await bothWidths(page, shot, 'account-signed-in');
});

journey('3-wrong-pin: three wrong PINs, the prompt stops asking for the PIN and offers Unlock; after it the right PIN signs in, the demo never restarted', async ({ page, shot }) => {
  assert.ok(account, 'journey 1 made an account');
  await goto(page, `${demo.base}/`);
  await pageFetch(page, 'POST', '/api/logout', {});
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);
  // Three wrong PINs; the person first declines the Unlock the prompt then offers.
  demo.pinentry.direct({ getpin: '000000', script: { CONFIRM: ['cancel'] } });
  const from = demo.pinentry.dialogs().length;
  await page.fill('#signin-username', account.name);
  await page.click('#signin-button');
  const blocked = await statusText(page, 'stayed locked');
  assert.match(blocked, /^You declined on passgate's prompt \(the PIN stayed locked\)\./);
  const asked = demo.pinentry.dialogs().slice(from);
  assert.deepEqual(asked.map((d) => [d.command, d.error ?? null]),
    [['GETPIN', null], ['GETPIN', 'Wrong PIN. 7 attempts left.'], ['GETPIN', 'Wrong PIN. 6 attempts left.'], ['CONFIRM', null]]);
  assert.equal(asked[3].title, 'passgate: PIN locked for now');
  assert.equal(asked[3].ok, 'Unlock');
  assert.match(asked[3].description, /Three wrong PINs in a row: passgate's authenticator stopped taking the PIN until it restarts, so you are not asked for it now\. 5 PIN attempts are left before the PIN is blocked for good\./);
  assert.match(asked[3].description, /Unlock restarts only the authenticator: your passkeys, your PIN and this page's pairing are kept\./);
  await bothWidths(page, shot, 'index-pin-blocked');
  // The next request asks for no PIN that cannot work: it offers Unlock first, then (after the
  // delay since the block) the PIN; the pairing and the demo are the same.
  demo.pinentry.direct({});
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  const unlocked = await timed('sign in after three wrong PINs (Unlock, then the PIN)', () => signIn(page, demo.base, account.name));
  assert.deepEqual(unlocked.dialogs.map((d) => [d.command, d.title]),
    [['CONFIRM', 'passgate: PIN locked for now'], ['GETPIN', 'passgate: sign in']]);
  assert.equal(unlocked.dialogs[1].error ?? null, 'Wrong PIN. 5 attempts left.');
  await bothWidths(page, shot, 'account-after-unlock');
});

journey('4-two-tabs: two tabs ask at once, queued, each prompt names its tab; adding a passkey this authenticator holds is refused after a notice, no PIN; the last passkey is not deleted and nobody is asked', async ({ page, shot }) => {
  assert.ok(account, 'journey 1 made an account');
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);
  demo.pinentry.direct({});
  await signIn(page, demo.base, account.name);
  const approvePage = page;
  const accountPage = await withTimeout(browser.context.newPage(), 'second tab');
  try {
    accountPage.setDefaultTimeout(STEP_MS);
    await withTimeout(accountPage.addInitScript(withoutAutofillToken), 'init script');
    await goto(accountPage, `${demo.base}/account.html`);
    await accountPage.locator('#passkeys tr').first().waitFor();
    await goto(approvePage, `${demo.base}/approve.html`);
    await approvePage.locator('#key-jwk', { hasText: '"kty"' }).waitFor();

    // Tab one approves an action; its first PIN is mistyped after a while, so that tab two's
    // request (add a passkey) is queued behind it when tab one's second PIN dialog opens.
    demo.pinentry.direct({ script: { GETPIN: [{ answer: '000000', delay_ms: 3000 }] } });
    const from = demo.pinentry.dialogs().length;
    const payload = '{"pay": "Two Tabs Ltd", "amount": "3.00", "currency": "EUR"}';
    await approvePage.fill('#payload', payload);
    const approved = captureResponse(approvePage, 'POST', '/api/actions/verify', () => approvePage.click('#approve'));
    // Tab one's first PIN dialog is open (the scripted pinentry took its scripted answer, which
    // it gives after 3 s): tab two asks meanwhile.
    const control = join(dirname(demo.pinentry.program), 'pinentry-control.json');
    const deadline = Date.now() + STEP_MS;
    while (JSON.parse(readFileSync(control, 'utf8')).script.GETPIN.length > 0) {
      assert.ok(Date.now() < deadline, 'tab one never opened its PIN dialog');
      await new Promise((resolve) => { setTimeout(resolve, 25); });
    }
    const added = accountPage.click('#add');
    const verified = await approved;
    assert.equal(verified.status, 200, JSON.stringify(verified.body));
    await added;
    const excluded = await statusText(accountPage, 'already');
    assert.match(excluded, /already holds a passkey for this account/);
    const dialogs = demo.pinentry.dialogs().slice(from);
    assert.deepEqual(dialogs.map((d) => [d.command, d.title]), [
      ['GETPIN', 'passgate: approve an action'],
      ['GETPIN', 'passgate: approve an action'],
      ['CONFIRM', 'passgate: passkey already here'],
    ]);
    assert.match(dialogs[0].description, /\nFrom the tab that calls itself “passgate demo — approve an action”\.\n/);
    assert.doesNotMatch(dialogs[0].description, /waiting/);
    assert.match(dialogs[1].description, /“passgate demo — approve an action”\.\n1 more request is waiting; it is asked next\./);
    // Tab two's request: no PIN for a passkey that cannot be added, a notice naming its tab.
    assert.match(dialogs[2].description, new RegExp(`^${demo.base} asked to create a passkey for “${account.name}” on localhost, but this authenticator already holds one for that account\\.`));
    assert.match(dialogs[2].description, /From the tab that calls itself “passgate demo — your passkeys”\./);
    await bothWidths(accountPage, shot, 'account-already-registered');

    // The only passkey: the page sends the delete without a re-authentication, and the server
    // refuses it first; nobody is asked.
    const before = demo.pinentry.dialogs().length;
    const { credentials } = (await pageFetch(accountPage, 'GET', '/api/credentials')).body;
    assert.equal(credentials.length, 1);
    const last = await timed('delete the last passkey (refused, no prompt)', () => deletePasskey(accountPage, credentials[0].id, credentials[0].name, { last: true }));
    assert.equal(last.result.deleted.status, 409);
    assert.equal(last.dialogs.length, 0);
    assert.equal(demo.pinentry.dialogs().length, before);
    await statusText(accountPage, 'only passkey');
    await bothWidths(accountPage, shot, 'account-last-refused-no-prompt');
  } finally {
    await withTimeout(accountPage.close(), 'close tab').catch(() => {});
  }
});

/** `passgate bridge forget ARGS` on the demo's state directory; resolves with its stdout. */
function forget(...args) {
  return withTimeout(new Promise((done, failed) => {
    const child = spawn(binary, ['bridge', 'forget', '--state-dir', join(demo.work, 'state'), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    child.on('error', failed);
    child.on('exit', (code) => (code === 0 ? done(out) : failed(new Error(`passgate bridge forget exited ${code}: ${err}`))));
  }), 'passgate bridge forget');
}

journey('5-several-accounts: two accounts on this authenticator; sign-in shows the choice first, then one PIN, and the RP signs in the account picked; without the record (forgotten) the PIN comes first, then the list', async ({ page, shot }) => {
  assert.ok(account, 'journey 1 made an account');
  await goto(page, `${demo.base}/`);
  await ensurePaired(page);
  const grace = { name: username('grace'), displayName: 'Grace Hopper' };
  const registered = await signUp(page, demo.base, grace.name, grace.displayName);
  grace.userId = registered.body.user.id;
  grace.credentialId = registered.body.credential.id;
  await signOut(page, demo.base);
  const accountsFile = join(demo.work, 'state', 'bridge', 'accounts.json');

  // Before (as on a bridge that keeps no record): forgotten with the real command, the sign-in
  // is the PIN, then the authenticator's list (names only after the PIN), newest first: the
  // second listed is journey 1's account.
  assert.equal(await forget('--all'), `forgot 2 account(s) in ${accountsFile}\n`);
  demo.pinentry.direct({ script: { CONFIRM: ['notok'] } });
  const listed = await timed('sign in, two accounts, no record (before): PIN, then the list', () => signIn(page, demo.base, ''));
  assert.deepEqual(listed.dialogs.map((d) => [d.command, d.answer]), [['GETPIN', 'pin'], ['CONFIRM', 'notok']]);
  assert.ok(listed.dialogs[1].description.includes('This device holds 2 passkeys for localhost. Which account?'), listed.dialogs[1].description);
  assert.equal(listed.result.body.user.name, account.name);
  await signOut(page, demo.base);

  // After: that verified sign-in taught the record both names (the one used first), so the
  // choice comes first — naming the operation and the origin — then one PIN for the account
  // picked, the second listed: Grace.
  const recorded = JSON.parse(readFileSync(accountsFile, 'utf8'));
  assert.deepEqual(recorded.accounts.map((a) => [a.rp_id, a.name, a.display_name]),
    [['localhost', account.name, 'Ada Lovelace'], ['localhost', grace.name, grace.displayName]]);
  demo.pinentry.direct({ script: { CONFIRM: ['notok'] } });
  const chosen = await timed('sign in, two accounts (after): the choice, then one PIN', () => signIn(page, demo.base, ''));
  // Two accounts: one dialog with a button for each, then the PIN.
  assert.deepEqual(chosen.dialogs.map((d) => [d.command, d.answer]), [['CONFIRM', 'notok'], ['GETPIN', 'pin']]);
  const chooser = chosen.dialogs[0];
  assert.ok(chooser.description.startsWith(`${demo.base} wants to sign in with your passkey for localhost.`), chooser.description);
  assert.ok(chooser.description.endsWith('passgate has seen 2 accounts of yours on localhost. Which account? You verify once, for that account only, next.'
    + `\n  • Ada Lovelace (${account.name})\n  • ${grace.displayName} (${grace.name})`), chooser.description);
  assert.equal(chooser.ok, useLabel(`Ada Lovelace (${account.name})`));
  assert.equal(chooser.notok, useLabel(`${grace.displayName} (${grace.name})`));
  assert.equal(chosen.dialogs[1].title, 'passgate: sign in');
  const login = chosen.result;
  assert.equal(login.body.user.name, grace.name);
  assert.equal(login.body.verdict.userVerified, true);
  assert.equal(login.request.id, grace.credentialId);
  assert.equal(login.request.response.userHandle, grace.userId);
  const session = await pageFetch(page, 'GET', '/api/session');
  assert.equal(session.body.user.name, grace.name);
  await bothWidths(page, shot, 'signed-in-after-choosing-first');

  // Cancelling the choice: "you declined on passgate's prompt", and no PIN was asked.
  await signOut(page, demo.base);
  demo.pinentry.direct({ confirm: 'cancel' });
  const before = demo.pinentry.dialogs().length;
  await page.fill('#signin-username', '');
  await page.click('#signin-button');
  const declined = await statusText(page, 'declined');
  assert.match(declined, /^You declined on passgate's prompt \(no account was chosen\)\. \(NotAllowedError\)$/);
  assert.deepEqual(demo.pinentry.dialogs().slice(before).map((d) => d.command), ['CONFIRM']);
});
