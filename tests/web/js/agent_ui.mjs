// The agent app in headless Chromium while a real call streams in.
//
//   node agent_ui.mjs GATEWAY_URL CALL_ID ARTIFACTS_DIR
//
// Talks to the test driver (tests/web/test_agent_ui.py) with lines on stdout:
//   STEP kill-gateway      the first final transcript line is on screen: kill the gateway now
//   STEP restart-gateway   the app shows that it lost the stream: start the gateway again
// and prints one JSON line with what it saw at the end.
import { join } from "node:path";
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(170_000, "agent_ui");
const [gateway, callId, artifacts] = process.argv.slice(2);
const step = (name) => console.log(`STEP ${name}`);
const shot = (page, name) => page.screenshot({ path: join(artifacts, name) });

const browser = await launch({ viewport: { width: 1280, height: 800 } });
try {
  await browser.context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: gateway });
  const errors = [];
  const outageErrors = [];
  let phase = "normal";
  const page = await browser.context.newPage();
  watchErrors(page, { push: (e) => (phase === "outage" ? outageErrors : errors).push(e) });

  // The call list shows the live call; open it from there.
  await page.goto(`${gateway}/`);
  const row = page.locator(`li.call-row[data-call-id="${callId}"]`);
  await row.waitFor({ timeout: 60_000 });
  const listedLive = (await row.locator(".badge").innerText()).trim();
  await shot(page, "agent-ui-calls.png");
  await row.locator("a").click();
  await page.waitForURL(`**/calls/${callId}`);

  // Record every interim line the moment it appears (they are replaced in place later).
  await page.evaluate(() => {
    window.__interims = [];
    new MutationObserver(() => {
      for (const li of document.querySelectorAll("li.line-interim")) {
        const opacity = Number(getComputedStyle(li).opacity);
        window.__interims.push({ id: li.dataset.segmentId, opacity });
      }
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  });

  // First final line on screen: the gateway goes down mid-call.
  await page.locator('li.line[data-final="true"]').first().waitFor({ timeout: 90_000 });
  const finalsBeforeOutage = await page.locator('li.line[data-final="true"]').count();
  phase = "outage";
  step("kill-gateway");
  await page.locator('[data-connection="reconnecting"]').waitFor({ timeout: 30_000 });
  const reconnectingText = await page.locator(".connection").innerText();
  await shot(page, "agent-ui-reconnecting.png");
  step("restart-gateway");
  await page.locator('[data-connection="live"], [data-connection="ended"]').waitFor({ timeout: 60_000 });
  phase = "normal";

  // The call plays out: customer identified, order looked up, suggestion completed, call ended.
  await page.locator('[data-call-state="ended"]').waitFor({ timeout: 120_000 });
  await page.locator('.customer-card[data-customer-id="C-1001"]').waitFor();
  await page.locator('.tool-card[data-tool-name="get_order_details"]').first().waitFor();
  const suggestion = page.locator('article.suggestion[data-state="complete"]').first();
  await suggestion.waitFor();
  await suggestion.locator('.suggestion-text[aria-busy="false"]').waitFor(); // typed out
  await page.locator('[data-connection="ended"]').waitFor();

  const suggestionId = await suggestion.getAttribute("data-suggestion-id");
  const suggestionText = await suggestion.locator(".suggestion-text").innerText();
  const sources = await suggestion.locator("a.source-link").evaluateAll((links) =>
    links.map((a) => ({ kind: a.dataset.sourceKind, id: a.dataset.sourceId, href: a.getAttribute("href") })),
  );
  const customerName = await page.locator(".customer-card .customer-name").innerText();
  const toolText = await page.locator('.tool-card[data-tool-name="get_order_details"]').first().innerText();
  const topics = await page.locator(".chip-topic").allInnerTexts();
  const sentiment = await page.locator("[data-sentiment]").getAttribute("data-sentiment");

  // "Use" the suggestion: copied and sent as SubmitFeedback.
  await suggestion.getByRole("button", { name: "Use", exact: true }).click();
  await suggestion.locator('.feedback-done[data-feedback="Used"]').waitFor();
  const clipboard = await page.evaluate(() => navigator.clipboard.readText());
  await shot(page, "agent-ui-call.png");

  const transcript = await page.locator("li.line").evaluateAll((lines) =>
    lines.map((li) => ({
      id: li.dataset.segmentId,
      final: li.dataset.final === "true",
      role: li.querySelector(".line-role")?.textContent ?? "",
      text: li.querySelector(".line-text")?.textContent ?? "",
    })),
  );
  const interims = await page.evaluate(() => window.__interims);

  // The same view on a narrow window.
  await page.setViewportSize({ width: 420, height: 900 });
  await shot(page, "agent-ui-narrow.png");
  const narrowOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);

  console.log(
    JSON.stringify({
      listedLive,
      finalsBeforeOutage,
      reconnectingText,
      suggestionId,
      suggestionText,
      sources,
      customerName,
      toolText,
      topics,
      sentiment,
      clipboard,
      transcript,
      interims,
      narrowOverflow,
      errors,
      outageErrors,
    }),
  );
} finally {
  await browser.close();
}
