// A live call on the desk, through a gateway the test kills and restarts:
// one state badge, one identity, the outage message, the live region, the
// wrap-up at the end (kept in the app while the agent looks elsewhere).
//
//   node desk_live.mjs GATEWAY_URL CALL_ID SCREENSHOTS_DIR
//
// Lines on stdout for the test driver (tests/web/test_desk_live.py):
//   STEP kill-gateway      the call is on screen: kill the gateway now
//   STEP restart-gateway   the app says the connection is lost: start it again
// then one JSON line with what it saw.
import { join } from "node:path";
import { axeSerious } from "./axe.mjs";
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(170_000, "desk_live");
const [gateway, callId, shots] = process.argv.slice(2);
const step = (name) => console.log(`STEP ${name}`);
const out = {};

const snapshot = (page) =>
  page.evaluate(() => ({
    states: [...document.querySelectorAll("[data-call-state]")].map((e) => [e.dataset.callState, e.textContent.trim()]),
    gridTop: Math.round(document.querySelector(".call-grid")?.getBoundingClientRect().top ?? -1),
    transcriptTop: Math.round(document.querySelector(".transcript-panel")?.getBoundingClientRect().top ?? -1),
  }));

const browser = await launch({ viewport: { width: 1280, height: 800 } });
try {
  const errors = [];
  const outageErrors = [];
  let phase = "normal";
  const page = await browser.context.newPage();
  watchErrors(page, { push: (e) => (phase === "outage" ? outageErrors : errors).push(e) });
  await page.goto(`${gateway}/calls/${callId}`);
  await page.locator('[data-call-state="live"]').waitFor({ timeout: 30_000 });
  const suggestion = page.locator('article.suggestion[data-state="complete"]').first();
  await suggestion.locator('.suggestion-text[aria-busy="false"]').waitFor({ timeout: 60_000 });
  await page.locator('.customer-card[data-customer-id="C-1001"]').waitFor();
  await page.waitForTimeout(500); // let the last lookups settle
  out.live = {
    ...(await snapshot(page)),
    ...(await page.evaluate(() => ({
      title: document.querySelector(".call-title h1")?.textContent ?? "",
      identityFrom: document.querySelector(".call-title h1")?.dataset.identity ?? "",
      announcer: document.querySelector(".suggestion-announcer")?.textContent ?? "",
      announcerLive: document.querySelector(".suggestion-announcer")?.getAttribute("aria-live") ?? "",
      suggestionTexts: [...document.querySelectorAll("article.suggestion .suggestion-text")].map((e) => e.textContent),
      lookupCustomerCards: document.querySelectorAll('article.tool-card[data-tool-name="lookup_customer"]').length,
      toolKeys: [...document.querySelectorAll("article.tool-card")].map(
        (e) => `${e.dataset.toolName}|${e.querySelector(".tool-args")?.textContent ?? ""}`,
      ),
      lines: document.querySelectorAll("li.line").length,
      times: document.querySelectorAll("li.line .line-time").length,
    }))),
  };
  out.axeLive = await axeSerious(page);
  await page.screenshot({ path: join(shots, "call-live-1280x800.png") });
  await page.setViewportSize({ width: 390, height: 844 });
  out.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  out.axeLivePhone = await axeSerious(page);
  await page.screenshot({ path: join(shots, "call-live-390x844.png") });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.waitForTimeout(200);
  const before = await snapshot(page);

  // The gateway goes down: one badge says "Reconnecting…", a message says what to do, nothing moves.
  phase = "outage";
  step("kill-gateway");
  await page.locator('[data-outage="reconnecting"]').waitFor({ timeout: 30_000 });
  out.outage = {
    ...(await snapshot(page)),
    text: await page.locator("[data-outage]").innerText(),
    before,
  };
  await page.screenshot({ path: join(shots, "call-reconnecting-1280x800.png") });
  step("restart-gateway");
  await page.locator('[data-call-state="live"][data-connection="live"]').waitFor({ timeout: 60_000 });
  await page.locator("[data-outage]").waitFor({ state: "detached" });
  phase = "normal";
  out.back = await snapshot(page);

  // End the call: the wrap-up opens in place of nothing (no banner pushes the columns down).
  const beforeEnd = await snapshot(page);
  await page.getByRole("button", { name: "End call" }).click();
  await page.locator('[data-wrapup="open"]').waitFor({ timeout: 30_000 });
  await page.locator('[data-call-state="ended"]').waitFor();
  out.ended = {
    ...(await snapshot(page)),
    beforeEnd,
    focused: await page.evaluate(() => document.activeElement?.id ?? ""),
    reason: await page.locator(".wrapup-reason").innerText(),
    banners: await page.locator(".ended.banner").count(),
  };
  // Edit the wrap-up, look elsewhere, come back: the edits are still there.
  await page.locator("#wrapup-summary").fill("Refund agreed for order 78901.");
  await page.locator("#wrapup-disposition").selectOption("follow-up");
  await page.locator("#wrapup-followup-input").fill("Email the return label");
  await page.keyboard.press("Enter");
  await page.locator(".followups li", { hasText: "Email the return label" }).waitFor();
  await page.screenshot({ path: join(shots, "call-wrapup-1280x800.png") });
  await page.locator("a.back").click();
  await page.locator(`li.call-row[data-call-id="${callId}"]`).waitFor();
  await page.goBack();
  await page.locator('[data-wrapup="open"]').waitFor();
  out.kept = await page.evaluate(() => ({
    summary: document.querySelector("#wrapup-summary")?.value ?? "",
    disposition: document.querySelector("#wrapup-disposition")?.value ?? "",
    followUps: [...document.querySelectorAll(".followups li span")].map((e) => e.textContent),
  }));
  out.axeEnded = await axeSerious(page);
  out.errors = errors;
  out.outageErrors = outageErrors;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
