// The scripted pinentry (testkit/scripted-pinentry.py) for Node tests: no browser
// dependency, so the Tauri tests (examples/tauri-app/tests) use it too.
import { writeFileSync, readFileSync, chmodSync, existsSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const scriptedPinentryPath = resolve(here, '..', '..', 'testkit', 'scripted-pinentry.py');

/** The PIN the scripted pinentry types unless told otherwise. */
export const TEST_PIN = '482916';

/**
 * The scripted pinentry (testkit/scripted-pinentry.py): a real Assuan speaker standing in
 * for the person at passgate's trusted prompt. `direct({getpin, confirm, script})` says how the
 * next dialogs are answered; `dialogs()` is what passgate showed, one entry per dialog.
 */
export function scriptedPinentry(work) {
  const control = join(work, 'pinentry-control.json');
  const logFile = join(work, 'pinentry-log.jsonl');
  const program = join(work, 'pinentry');
  writeFileSync(program, `#!/bin/sh\nexec python3 '${scriptedPinentryPath}' --control '${control}' --log '${logFile}'\n`);
  chmodSync(program, 0o755);
  const direct = (c) => writeFileSync(control, JSON.stringify({ getpin: TEST_PIN, confirm: 'ok', ...c }));
  direct({});
  return {
    program,
    direct,
    dialogs() {
      if (!existsSync(logFile)) return [];
      return readFileSync(logFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    },
    /** Waits until `n` dialogs have been shown. */
    async waitForDialogs(n, ms = 15_000) {
      const deadline = Date.now() + ms;
      while (this.dialogs().length < n) {
        if (Date.now() > deadline) throw new Error(`only ${this.dialogs().length} of ${n} pinentry dialogs`);
        await new Promise((r) => setTimeout(r, 25));
      }
      return this.dialogs();
    },
  };
}

