// Headless Chromium for the web tests: the Debian build at /usr/bin/chromium
// through playwright-core (no browser download), a fresh profile per run,
// and every console error and page error collected.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-dev-shm-usage",
];

/**
 * Launch Chromium with a fresh --user-data-dir. Returns { context, close }.
 * `close()` closes the browser and removes the profile; call it in finally.
 */
export async function launch({ viewport = { width: 1280, height: 800 } } = {}) {
  const profile = mkdtempSync(join(tmpdir(), "callpilot-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport,
    timeout: 60_000,
  });
  context.setDefaultTimeout(30_000);
  return {
    context,
    async close() {
      try {
        await context.close();
      } finally {
        rmSync(profile, { recursive: true, force: true });
      }
    },
  };
}

/** Collect console errors and uncaught page errors of a page into `sink`. */
export function watchErrors(page, sink) {
  page.on("console", (msg) => {
    if (msg.type() === "error") {
      sink.push(`console: ${msg.text()}`);
    }
  });
  page.on("pageerror", (err) => sink.push(`pageerror: ${err.message}`));
  return sink;
}

/** Fail the process if it runs longer than `ms` (every test script is bounded). */
export function deadline(ms, what) {
  const timer = setTimeout(() => {
    console.error(`${what}: gave up after ${ms} ms`);
    process.exit(3);
  }, ms);
  timer.unref();
}
