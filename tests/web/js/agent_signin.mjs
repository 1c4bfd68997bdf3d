// The agent app's sign-in against an auth-on server, in headless Chromium:
// the sign-in screen (axe-core, screenshots at 1280x800 and 390x844), a bad key
// (the server's reason is shown), a pasted agent key, sign-out, and a token
// handed over by an embedding CRM in the URL fragment.
//
//   node agent_signin.mjs GATEWAY_URL AGENT_KEY SCREENSHOTS_DIR AGENT_JWT EXPIRED_JWT
//
// Prints one JSON line with what it saw.
import { join } from "node:path";
import { axeSerious } from "./axe.mjs";
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(150_000, "agent_signin");
const [gateway, agentKey, shots, agentJwt, expiredJwt] = process.argv.slice(2);
const SIZES = { desk: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const out = { axe: {}, overflow: {}, steps: {}, errors: [] };

const signInReason = (page) =>
  page.locator("[data-sign-in-reason]").first().getAttribute("data-sign-in-reason");
const stored = (page) => page.evaluate(() => sessionStorage.getItem("callpilot.credential"));
const callsShown = (page) => page.locator(".call-list-page").waitFor({ timeout: 30_000 });

const browser = await launch({ viewport: SIZES.desk });
try {
  const page = await browser.context.newPage();
  watchErrors(page, out.errors);

  // No credential yet: the app tries, the server says UNAUTHENTICATED, the app asks.
  for (const size of Object.keys(SIZES)) {
    await page.setViewportSize(SIZES[size]);
    await page.goto(`${gateway}/`);
    await page.locator("[data-sign-in]").waitFor({ timeout: 30_000 });
    out.steps[`first@${size}`] = {
      reason: await signInReason(page),
      text: await page.locator("[data-sign-in]").innerText(),
      focusable: await page.locator("#credential").isEditable(),
    };
    out.axe[`signin@${size}`] = await axeSerious(page);
    out.overflow[`signin@${size}`] = await page.evaluate(
      () => document.documentElement.scrollWidth > window.innerWidth + 1,
    );
    await page.screenshot({ path: join(shots, `signin-${SIZES[size].width}x${SIZES[size].height}.png`) });
  }
  await page.setViewportSize(SIZES.desk);

  // A bad key: asked again, with the server's reason.
  const forged = agentKey.slice(0, -3) + (agentKey.endsWith("xyz") ? "abc" : "xyz");
  await page.fill("#credential", forged);
  await page.click("button[type=submit]");
  await page.waitForFunction(
    () => document.querySelector("[data-sign-in-reason]")?.getAttribute("data-sign-in-reason") === "INVALID_API_KEY",
    null,
    { timeout: 30_000 },
  );
  out.steps.bad = { reason: await signInReason(page), text: await page.locator("[data-sign-in]").innerText(), stored: await stored(page) };
  out.axe["signin-bad@desk"] = await axeSerious(page);

  // The agent's key: the calls list, the key kept for this tab only.
  await page.fill("#credential", agentKey);
  await page.click("button[type=submit]");
  await callsShown(page);
  out.steps.signedIn = { stored: (await stored(page)) === agentKey, signOut: await page.locator(".sign-out").count() };

  // A reload keeps the session (sessionStorage); signing out forgets it.
  await page.reload();
  await callsShown(page);
  await page.click(".sign-out");
  await page.locator("[data-sign-in]").waitFor();
  out.steps.signedOut = { reason: await signInReason(page), stored: await stored(page) };

  // An embedding CRM hands its JWT over in the fragment: used, then taken out of the address bar.
  const tab = await browser.context.newPage();
  watchErrors(tab, out.errors);
  await tab.goto(`${gateway}/#token=${encodeURIComponent(agentJwt)}`);
  await callsShown(tab);
  out.steps.fragment = {
    signIn: await tab.locator("[data-sign-in]").count(),
    hash: await tab.evaluate(() => window.location.hash),
    href: await tab.evaluate(() => window.location.href),
    stored: (await stored(tab)) === agentJwt,
  };

  // An expired JWT from the CRM: the sign-in screen says so.
  const late = await browser.context.newPage();
  watchErrors(late, out.errors);
  await late.goto(`${gateway}/#token=${encodeURIComponent(expiredJwt)}`);
  await late.locator("[data-sign-in]").waitFor({ timeout: 30_000 });
  out.steps.expired = {
    reason: await signInReason(late),
    text: await late.locator("[data-sign-in]").innerText(),
    hash: await late.evaluate(() => window.location.hash),
    stored: await stored(late),
  };
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
