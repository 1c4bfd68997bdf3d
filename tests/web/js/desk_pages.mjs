// The desk's pages in headless Chromium, at a desk size and a phone size:
// the calls list, an ended call (wrap-up), an unknown call, the app's 404,
// /call and /answer. Each is checked with axe-core and from the DOM, and
// photographed into the screenshots folder.
//
//   node desk_pages.mjs GATEWAY_URL FINISHED_CALL_ID SCREENSHOTS_DIR
//
// Prints one JSON line with what it saw.
import { join } from "node:path";
import { axeSerious } from "./axe.mjs";
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(170_000, "desk_pages");
const [gateway, callId, shots] = process.argv.slice(2);
const SIZES = { desk: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const out = { axe: {}, overflow: {}, pages: {} };

const overflowX = (page) => page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);

async function check(page, name, size) {
  out.axe[`${name}@${size}`] = await axeSerious(page);
  out.overflow[`${name}@${size}`] = await overflowX(page);
  await page.screenshot({ path: join(shots, `${name}-${SIZES[size].width}x${SIZES[size].height}.png`) });
}

const browser = await launch({ viewport: SIZES.desk });
try {
  const errors = [];
  const page = await browser.context.newPage();
  watchErrors(page, errors);
  for (const size of Object.keys(SIZES)) {
    await page.setViewportSize(SIZES[size]);

    // The calls list: the finished call, by customer name.
    await page.goto(`${gateway}/`);
    const row = page.locator(`li.call-row[data-call-id="${callId}"]`);
    await row.locator('.call-customer[data-customer-id]').waitFor({ timeout: 30_000 });
    await page.waitForFunction(
      (id) => !/^C-\d+$/.test(document.querySelector(`li.call-row[data-call-id="${id}"] .call-customer`)?.textContent ?? ""),
      callId,
    );
    out.pages[`calls@${size}`] = { customer: (await row.locator(".call-customer").innerText()).trim() };
    await check(page, "calls", size);

    // The ended call: one state, the wrap-up open with the summary in a text box.
    await page.goto(`${gateway}/calls/${callId}`);
    await page.locator('[data-wrapup="open"]').waitFor({ timeout: 30_000 });
    await page.locator(".customer-card[data-customer-id]").waitFor();
    await page.waitForTimeout(300); // let the last records settle for the picture
    out.pages[`ended@${size}`] = await page.evaluate(() => ({
      states: [...document.querySelectorAll("[data-call-state]")].map((e) => [e.dataset.callState, e.textContent.trim()]),
      title: document.querySelector(".call-title h1")?.textContent ?? "",
      wrapupFocused: document.activeElement?.id === "wrapup-title",
      summary: document.querySelector("#wrapup-summary")?.value ?? "",
      summaryVisible: (document.querySelector("#wrapup-summary")?.getBoundingClientRect().height ?? 0) > 40,
      reasonText: document.querySelector(".wrapup-reason")?.textContent ?? "",
      savePending: document.querySelector('[data-save="unsaved"]')?.textContent ?? "",
      lines: document.querySelectorAll("li.line").length,
      times: [...document.querySelectorAll("li.line .line-time")].map((t) => t.textContent),
      lineWidth: document.querySelector("li.line")?.getBoundingClientRect().width ?? 0,
      columnWidth: document.querySelector(".transcript-scroll")?.getBoundingClientRect().width ?? 0,
      liveWords: /\blive\b/i.test(document.querySelector(".call-header")?.innerText ?? ""),
      suggestionTexts: [...document.querySelectorAll("article.suggestion .suggestion-text")].map((e) => e.textContent),
      toolKeys: [...document.querySelectorAll("article.tool-card")].map(
        (e) => `${e.dataset.toolName}|${e.querySelector(".tool-args")?.textContent ?? ""}`,
      ),
      lookupCustomerCards: document.querySelectorAll('article.tool-card[data-tool-name="lookup_customer"]').length,
    }));
    await check(page, "call-ended", size);

    // An unknown call: "not found", never "Live".
    await page.goto(`${gateway}/calls/no-such-call`);
    await page.locator("[data-not-found]").waitFor({ timeout: 30_000 });
    out.pages[`unknown@${size}`] = await page.evaluate(() => ({
      heading: document.querySelector("[data-not-found] h1")?.textContent ?? "",
      text: document.querySelector("[data-not-found]")?.textContent ?? "",
      live: document.querySelectorAll('[data-call-state="live"]').length,
    }));
    await check(page, "call-not-found", size);

    // A path the app does not know (followed inside the app): its 404 page.
    await page.goto(`${gateway}/`);
    await page.waitForLoadState("networkidle");
    // The app listens for popstate once it has mounted: navigate until it shows the 404.
    for (let attempt = 0; attempt < 10; attempt += 1) {
      await page.evaluate(() => {
        window.history.pushState(null, "", "/no/such/page");
        window.dispatchEvent(new PopStateEvent("popstate"));
      });
      try {
        await page.locator("[data-not-found]").waitFor({ timeout: 3_000 });
        break;
      } catch {
        // not mounted yet: try again
      }
    }
    await page.locator("[data-not-found]").waitFor({ timeout: 10_000 });
    out.pages[`404@${size}`] = { heading: await page.locator("[data-not-found] h1").innerText() };
    await check(page, "not-found", size);

    // /call and /answer: the desk's look; a disabled "Hang up" is not red.
    for (const name of ["call", "answer"]) {
      await page.goto(`${gateway}/${name}`);
      await page.locator("#hangup").waitFor();
      if (name === "answer") {
        await page.locator("#waiting li").first().waitFor();
      }
      out.pages[`${name}@${size}`] = await page.evaluate(() => {
        const hangup = document.querySelector("#hangup");
        const style = getComputedStyle(hangup);
        return {
          hangupDisabled: hangup.disabled,
          hangupBackground: style.backgroundColor,
          hangupColor: style.color,
          hangupOpacity: style.opacity,
          header: document.querySelector(".app-header")?.textContent ?? "",
          font: getComputedStyle(document.body).fontFamily,
        };
      });
      await check(page, name, size);
    }
  }

  // The keyboard: Tab from the top reaches the skip link, then the header, with a visible focus ring.
  await page.setViewportSize(SIZES.desk);
  await page.goto(`${gateway}/`);
  await page.locator(`li.call-row[data-call-id="${callId}"]`).waitFor();
  const focusRing = () =>
    page.evaluate(() => {
      const el = document.activeElement;
      const s = getComputedStyle(el);
      return { tag: el.tagName, text: el.textContent.trim().slice(0, 40), outline: s.outlineStyle, width: s.outlineWidth };
    });
  out.focus = [];
  for (let i = 0; i < 4; i += 1) {
    await page.keyboard.press("Tab");
    out.focus.push(await focusRing());
  }
  // The call's row is reachable and opens with Enter.
  await page.locator(`li.call-row[data-call-id="${callId}"] a`).focus();
  out.focus.push(await focusRing());
  await page.keyboard.press("Enter");
  await page.waitForURL(`**/calls/${callId}`);
  out.openedByKeyboard = true;

  out.errors = errors;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
