// passgate-wx.js — WeChat SOTER for pages, on passgate: one script gives a page `wx.*` and
// `Taro.*` as in a mini program, so that their documented code runs unchanged:
//
//   <script type="module" src="/passgate-wx.js"></script>
//   wx.checkIsSupportSoterAuthentication({ success(res) { ... } })
//   wx.checkIsSoterEnrolledInDevice({ checkAuthMode: 'fingerPrint', success(res) { ... } })
//   wx.startSoterAuthentication({ requestAuthModes: ['fingerPrint'], challenge: '123456',
//                                 authContent: '请用指纹解锁', success(res) { ... } })
//   const res = await Taro.startSoterAuthentication({ ... })
//
// Each call takes success / fail / complete callbacks and also returns a Promise (resolved
// with the success result, rejected with the fail result; with callbacks given, a rejection
// nobody awaits is not reported as unhandled). Every failure is `{errCode, errMsg}`: a
// request passgate refuses as malformed is an errCode too (90004 challenge, 90003 mode,
// 90005 authContent, 90007 anything else), and so is a host channel that fails (90007).
// The errCodes passgate emits, and when: docs/src/app-apis/soter.md.
//
// Existing `wx` / `Taro` objects are extended, not replaced. passgate's own SOTER calls
// (prepareAuthKey, getAuthKey: the device key to register with the backend, which WeChat
// makes by itself) are on `passgateSoter`.

import { createPassgateApp, webviewChannel } from './passgate-app.js';

let soterApi = null;
async function soter() {
  if (!soterApi) {
    if (!globalThis.passgateWebview) await import('./shim/passgate-webview.js');
    soterApi = createPassgateApp(webviewChannel()).soter;
  }
  return soterApi;
}

/** A fail result as WeChat gives one. */
function failure(api, e) {
  if (e && typeof e.errCode === 'number') {
    return { errCode: e.errCode, errMsg: e.errMsg || `${api}:fail` };
  }
  if (e?.name === 'AbortError') throw e;
  return { errCode: 90007, errMsg: `${api}:fail ${e?.message ?? e}` };
}

/** One SOTER call in mini-program style: callbacks and a Promise. */
function call(api, options = {}) {
  const { success, fail, complete, ...params } = options ?? {};
  const promise = (async () => {
    let result;
    try {
      const api_ = await soter();
      result = await api_[api](params);
    } catch (e) {
      throw failure(api, e);
    }
    const { detail: _detail, ...clean } = result ?? {};
    return { errMsg: `${api}:ok`, ...clean };
  })();
  promise.then(
    (res) => { success?.(res); complete?.(res); },
    (res) => { fail?.(res); complete?.(res); },
  );
  if (success || fail || complete) promise.catch(() => {});
  return promise;
}

const soterCalls = {
  checkIsSupportSoterAuthentication: (options) => call('checkIsSupportSoterAuthentication', options),
  checkIsSoterEnrolledInDevice: (options) => call('checkIsSoterEnrolledInDevice', options),
  startSoterAuthentication: (options) => call('startSoterAuthentication', options),
};

globalThis.wx = Object.assign(globalThis.wx ?? {}, soterCalls);
globalThis.Taro = Object.assign(globalThis.Taro ?? {}, soterCalls);
globalThis.passgateSoter = Object.freeze({
  /** Creates the device key (one verification) → `{keyJson, keyJsonSignature}` to register. */
  prepareAuthKey: (options) => call('prepareAuthKey', options),
  /** The device key made before. */
  getAuthKey: (options) => call('getAuthKey', options),
});

export const { wx, Taro, passgateSoter } = globalThis;
