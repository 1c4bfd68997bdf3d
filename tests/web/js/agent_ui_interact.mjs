// The agent app driven as an agent would, mostly from the keyboard, on a
// live call made of text turns:
//
//   node agent_ui_interact.mjs GATEWAY_URL CALL_ID ARTIFACTS_DIR
//
// Lines on stdout for the test driver (tests/web/test_agent_ui.py):
//   STEP more-lines     send many more turns (the transcript must follow them)
//   STEP scrolled-up    the agent scrolled up: send a few more (it must stay put)
// then one JSON line with what it saw.
import { join } from "node:path";
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(120_000, "agent_ui_interact");
const [gateway, callId, artifacts] = process.argv.slice(2);
const step = (name) => console.log(`STEP ${name}`);
const out = {};

const browser = await launch({ viewport: { width: 1280, height: 800 } });
try {
  const errors = [];
  const page = await browser.context.newPage();
  watchErrors(page, errors);
  await page.goto(`${gateway}/calls/${callId}`);

  // The first suggestion, typed out from its deltas, with its sources.
  const suggestion = page.locator('article.suggestion[data-state="complete"]').first();
  await suggestion.locator('.suggestion-text[aria-busy="false"]').waitFor({ timeout: 60_000 });
  await page.locator('.customer-card[data-customer-id="C-1001"]').waitFor();
  await page.locator(".tool-card").first().waitFor();
  await page.waitForTimeout(300); // let the last lookups settle for the picture
  await page.screenshot({ path: join(artifacts, "agent-ui-desk.png") });
  out.suggestionId = await suggestion.getAttribute("data-suggestion-id");

  // Rate it from the keyboard.
  await suggestion.getByRole("button", { name: "Rate 4 of 5" }).focus();
  await page.keyboard.press("Space");
  await suggestion.locator('.feedback-done[data-feedback="Rated 4 of 5"]').waitFor();
  out.rated = true;

  // A source opens its record; Escape closes it.
  await suggestion.locator('a.source-link[data-source-kind="order"]').click();
  const dialog = page.locator("dialog.record-dialog[open]");
  await dialog.locator('[data-record="order"]').waitFor();
  out.dialogText = await dialog.innerText();
  await page.keyboard.press("Escape");
  await dialog.waitFor({ state: "detached" });

  // "/" jumps to the customer search; a manual lookup replaces the card until undone.
  await page.locator("body").click({ position: { x: 5, y: 300 } });
  await page.keyboard.press("/");
  out.focusAfterSlash = await page.evaluate(() => document.activeElement?.id ?? "");
  await page.keyboard.press("Enter");
  out.emptySearchError = await page.locator(".customer-search .error").innerText();
  await page.keyboard.type("garcia");
  await page.keyboard.press("Enter");
  const luis = page.locator(".search-results button", { hasText: "Luis Garcia" });
  await luis.focus();
  await page.keyboard.press("Enter");
  await page.locator('.customer-card[data-customer-id="C-1015"]').waitFor();
  out.manualCard = await page.locator(".customer-card").innerText();
  await page.getByRole("button", { name: /Back to Maria Garcia/ }).click();
  await page.locator('.customer-card[data-customer-id="C-1001"]').waitFor();

  // The transcript follows new lines while at the bottom...
  const scroller = page.locator(".transcript-scroll");
  const lines = page.locator("li.line");
  const before = await lines.count();
  step("more-lines");
  await page.waitForFunction((n) => document.querySelectorAll("li.line").length >= n, before + 24);
  await page.waitForTimeout(200);
  const gap = () => scroller.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
  out.overflowing = await scroller.evaluate((el) => el.scrollHeight > el.clientHeight);
  out.gapWhileFollowing = await gap();
  // ...and stays where the agent scrolled to.
  await scroller.evaluate((el) => {
    el.scrollTop = 0;
  });
  await page.locator(".jump-latest").waitFor();
  out.jumpText = await page.locator(".jump-latest").innerText();
  const count = await lines.count();
  step("scrolled-up");
  await page.waitForFunction((n) => document.querySelectorAll("li.line").length >= n, count + 2);
  await page.waitForTimeout(200);
  out.scrollTopAfterNewLines = await scroller.evaluate((el) => el.scrollTop);
  await page.locator(".jump-latest").click();
  await page.waitForFunction(() => {
    const el = document.querySelector(".transcript-scroll");
    return el !== null && el.scrollHeight - el.scrollTop - el.clientHeight < 48;
  });
  out.jumped = true;

  // End the call from the desk.
  await page.getByRole("button", { name: "End call" }).click();
  await page.locator('[data-call-state="ended"]').waitFor();
  await page.locator('[data-connection="ended"]').waitFor();
  await page.locator('[data-wrapup="open"]').waitFor();
  out.endedText = await page.locator(".wrapup-reason").innerText();

  // A call that does not exist: the not-found page, no live badge, no retry loop.
  await page.goto(`${gateway}/calls/no-such-call`);
  await page.locator("[data-not-found]").waitFor();
  out.failedText = await page.locator("[data-not-found]").innerText();
  out.badgesOnUnknown = await page.locator("[data-call-state]").count();
  out.errors = errors;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
