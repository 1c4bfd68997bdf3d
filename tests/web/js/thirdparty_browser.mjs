// The third-party grpc-web clients in headless Chromium, from a page on
// another origin than the gateway's (so CORS is exercised for real):
//   node thirdparty_browser.mjs PAGE_ORIGIN DENIED_ORIGIN GATEWAY_URL CALL_ID SCREENSHOT
// PAGE_ORIGIN is on the gateway's allowed list, DENIED_ORIGIN serves the same
// page but is not. Prints one JSON line with the results.
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(90_000, "thirdparty_browser");
const [pageOrigin, deniedOrigin, gateway, callId, screenshot] = process.argv.slice(2);
const browser = await launch();
try {
  const errors = [];
  const page = await browser.context.newPage();
  watchErrors(page, errors);
  await page.goto(`${pageOrigin}/index.html`);
  await page.waitForFunction(() => window.callpilotThirdPartyReady === true);
  const allowed = await page.evaluate(
    ([url, id]) => window.callpilotThirdParty.runAll(url, id),
    [gateway, callId],
  );
  if (screenshot) {
    await page.screenshot({ path: screenshot });
  }

  const other = await browser.context.newPage();
  await other.goto(`${deniedOrigin}/index.html`);
  await other.waitForFunction(() => window.callpilotThirdPartyReady === true);
  const denied = await other.evaluate(async ([url, id]) => {
    try {
      await window.callpilotThirdParty.runConnect(url, id);
      return { blocked: false };
    } catch (err) {
      return { blocked: true, error: String(err) };
    }
  }, [gateway, callId]);
  console.log(JSON.stringify({ allowed, denied, errors }));
} finally {
  await browser.close();
}
