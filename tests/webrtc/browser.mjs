// One headless Chromium for one party of a browser call, driven over stdin/stdout.
//
//   node tests/webrtc/browser.mjs --audio FILE.wav --profile DIR
//
// Chromium's fake microphone plays FILE.wav (once: "%noloop"). Commands are
// JSON lines on stdin, answered by JSON lines on stdout with the same id:
//   {"id", "cmd": "goto", "url"}            open the page
//   {"id", "cmd": "click", "selector"}      click (a trusted user gesture)
//   {"id", "cmd": "fill", "selector", "value"}
//   {"id", "cmd": "eval", "expr"}           evaluate an expression (awaited) in the page
//   {"id", "cmd": "waitFor", "expr", "timeoutMs"}  poll until the expression is truthy
//   {"id", "cmd": "closePage"}              close the tab (as a person closing it)
//   {"id", "cmd": "exit"}
// Page console output and errors go to stderr (the test saves them as an artifact).
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, value, i, all) => (i % 2 === 0 ? [...pairs, [value.replace(/^--/, ""), all[i + 1]]] : pairs), []),
);

const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
  `--use-file-for-fake-audio-capture=${args.audio}%noloop`,
  "--allow-loopback-in-peer-connection",
  "--autoplay-policy=no-user-gesture-required",
];

const context = await chromium.launchPersistentContext(args.profile, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: FLAGS,
  permissions: ["microphone"],
});
let page = context.pages()[0] || (await context.newPage());
const watch = (p) => {
  p.on("console", (msg) => process.stderr.write(`[console.${msg.type()}] ${msg.text()}\n`));
  p.on("pageerror", (err) => process.stderr.write(`[pageerror] ${err.message}\n`));
};
watch(page);

function reply(id, ok, value) {
  process.stdout.write(JSON.stringify(ok ? { id, ok, value: value ?? null } : { id, ok, error: String(value) }) + "\n");
}

async function handle(message) {
  switch (message.cmd) {
    case "goto":
      if (page.isClosed()) { page = await context.newPage(); watch(page); }
      await page.goto(message.url);
      return null;
    case "click":
      await page.click(message.selector, { timeout: 10_000 });
      return null;
    case "fill":
      await page.fill(message.selector, message.value, { timeout: 10_000 });
      return null;
    case "eval":
      return await page.evaluate(`(async () => (${message.expr}))()`);
    case "waitFor": {
      // Polled with evaluate (not waitForFunction, whose string predicates the pages' CSP forbids).
      const deadline = Date.now() + (message.timeoutMs ?? 30_000);
      for (;;) {
        const value = await page.evaluate(`(async () => (${message.expr}))()`);
        if (value) return value;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${message.expr}`);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    case "closePage":
      await page.close();
      return null;
    case "exit":
      await context.close();
      reply(message.id, true, null);
      process.exit(0);
    default:
      throw new Error(`unknown command ${message.cmd}`);
  }
}

reply(0, true, "ready");
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const message = JSON.parse(line);
  try {
    reply(message.id, true, await handle(message));
  } catch (err) {
    reply(message.id, false, err && err.message ? err.message : err);
  }
}
await context.close();
