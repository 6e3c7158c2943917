// WeChat's and Taro's SOTER snippets (site/seed/soter.html), unchanged, in headless Chromium
// through the webview shim and the local bridge of a `passgate demo` whose authenticator
// verifies by fingerprint. Not an `npm test` file: ctap-tests/python/test_seed_soter_fingerprint.py
// runs it, because that side owns the real fprintd, the virtual sensor and the finger.
//
// In:  DEMO_BASE, BRIDGE_URL, PAIRING_CODE (and PASSGATE_BIN, unused here).
// Out: a line "step prepare" before the device key is made (WeChat makes it by itself; on
//      passgate the page asks once, outside the snippets), "step snippets" before the snippets
//      run, then "result <JSON>" with what each snippet's callbacks and Promise received.
import { launchBrowser, withTimeout, STEP_MS } from './harness.mjs';
import { goto } from './flows.mjs';

const { DEMO_BASE: base, BRIDGE_URL: bridgeUrl, PAIRING_CODE: pairingCode } = process.env;
const browser = await launchBrowser();
let failed = false;
try {
  const page = await withTimeout(browser.context.newPage(), 'new page');
  page.setDefaultTimeout(STEP_MS);
  await goto(page, `${base}/app-apis.html`);
  if ((await page.getAttribute('#authenticator-choice', 'data-kind')) !== 'passgate') {
    await page.click('#use-passgate');
    await page.locator('#pair-dialog[open]').waitFor();
    await page.fill('#pair-url', bridgeUrl);
    await page.fill('#pair-code', pairingCode);
    await page.click('#pair-submit');
    await page.locator('#authenticator-choice[data-kind="passgate"]').waitFor();
  }
  const logged = [];
  page.on('console', (m) => logged.push(m.text()));
  await goto(page, `${base}/seed/soter.html`);
  await page.waitForFunction(() => window.snippets !== undefined && window.wx !== undefined
    && window.Taro !== undefined && window.passgateSoter !== undefined);

  console.log('step prepare');
  const prepared = await withTimeout(page.evaluate(() => window.passgateSoter.prepareAuthKey()
    .then((r) => ['resolved', r], (e) => ['rejected', { name: e?.name, message: e?.message, errCode: e?.errCode }])),
  'prepareAuthKey', 60_000);

  console.log('step snippets');
  // Each snippet runs unchanged; its callbacks are watched by wrapping the API outside it.
  const seen = await withTimeout(page.evaluate(async () => {
    const seen = {};
    const promises = [];
    for (const ns of ['wx', 'Taro']) {
      for (const api of ['checkIsSupportSoterAuthentication', 'checkIsSoterEnrolledInDevice', 'startSoterAuthentication']) {
        const original = window[ns][api];
        window[ns][api] = (options) => {
          const calls = [];
          seen[`${ns}.${api}`] = calls;
          const spy = (kind, own) => (res) => { calls.push([kind, res]); own?.(res); };
          const promise = original({
            ...options,
            success: spy('success', options.success),
            fail: spy('fail', options.fail),
            complete: spy('complete', options.complete),
          });
          promises.push(promise.then((r) => [`${ns}.${api}`, 'resolved', r], (r) => [`${ns}.${api}`, 'rejected', r]));
          return promise;
        };
      }
    }
    // One after the other, as a person would tap them: each SOTER signature has its own dialog.
    for (const name of Object.keys(window.snippets)) {
      window.snippets[name]();
      await promises[promises.length - 1];
    }
    for (const [key, how, value] of await Promise.all(promises)) seen[`${key}.promise`] = [how, value];
    await new Promise((r) => setTimeout(r, 50));
    return seen;
  }), 'snippets', 90_000);
  console.log(`result ${JSON.stringify({ prepared, seen, logged })}`);
} catch (e) {
  failed = true;
  console.log(`error ${e?.stack ?? e}`);
} finally {
  await browser.stop();
}
process.exit(failed ? 1 : 0);
