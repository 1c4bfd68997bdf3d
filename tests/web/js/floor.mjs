// The supervisor's floor in headless Chromium while calls stream. Steps are
// printed for the Python side, which drives the calls:
//   READY            the floor is live (snapshot received)
//   SAW-A            call A's row is shown
//   SAW-B            call B's row is shown too (two concurrent calls)
//   then one JSON line: the alert as shown live, axe results, sizes.
//
//   node floor.mjs GATEWAY_URL SCREENSHOTS_DIR CALL_A CALL_B   (ids read from stdin lines)
import { createInterface } from "node:readline";
import { join } from "node:path";
import { axeSerious } from "./axe.mjs";
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(150_000, "floor");
const [gateway, shots] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const nextLine = async () => (await lines.next()).value?.trim() ?? "";
const out = { errors: [] };

const browser = await launch({ viewport: { width: 1280, height: 800 } });
try {
  const page = await browser.context.newPage();
  watchErrors(page, out.errors);
  await page.goto(`${gateway}/floor`);
  await page.locator('[data-floor-status="live"]').waitFor({ timeout: 30_000 });
  out.initialRows = await page.locator("tr.floor-row").count();
  console.log("READY");

  const idA = await nextLine();
  await page.locator(`tr.floor-row[data-call-id="${idA}"]`).waitFor({ timeout: 30_000 });
  console.log("SAW-A");
  const idB = await nextLine();
  await page.locator(`tr.floor-row[data-call-id="${idB}"]`).waitFor({ timeout: 30_000 });
  out.bothShown = (await page.locator(`tr.floor-row[data-call-id="${idA}"]`).count()) === 1;
  console.log("SAW-B");

  // The alert on call A appears live, in the row and in the announced log.
  await page.locator(`tr.floor-row[data-call-id="${idA}"] .chip-alert`).waitFor({ timeout: 30_000 });
  await page.locator(".floor-alert").first().waitFor();
  await page.waitForFunction(
    (id) => (document.querySelector(`tr.floor-row[data-call-id="${id}"] th a`)?.textContent ?? "") === "Maria Garcia",
    idA,
  );
  out.live = await page.evaluate(
    ([a, b]) => ({
      rowA: document.querySelector(`tr.floor-row[data-call-id="${a}"]`)?.innerText ?? "",
      rowB: document.querySelector(`tr.floor-row[data-call-id="${b}"]`)?.innerText ?? "",
      alertChip: document.querySelector(`tr.floor-row[data-call-id="${a}"] .chip-alert`)?.textContent ?? "",
      alertLog: document.querySelector(".floor-alert")?.innerText ?? "",
      logLive: document.querySelector("[data-floor-alerts]")?.getAttribute("aria-live") ?? "",
      href: document.querySelector(`tr.floor-row[data-call-id="${a}"] th a`)?.getAttribute("href") ?? "",
      headerLinks: [...document.querySelectorAll(".app-nav a")].map((e) => e.textContent.trim()),
    }),
    [idA, idB],
  );
  out.axe = { desk: await axeSerious(page) };
  await page.screenshot({ path: join(shots, "floor-1280x800.png") });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(200);
  out.axe.phone = await axeSerious(page);
  out.phoneOverflow = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
  await page.screenshot({ path: join(shots, "floor-390x844.png") });

  // A click on the row's customer opens the call's desk, read-only (the supervisor's view).
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.locator(`tr.floor-row[data-call-id="${idA}"] th a`).click();
  await page.waitForURL((url) => url.pathname === `/calls/${idA}`);
  out.openedDesk = new URL(page.url()).pathname;
  out.openedSearch = new URL(page.url()).search;
  await page.locator('[data-readonly="1"]').waitFor({ timeout: 10_000 });
  out.openedReadonlyBanner = await page.locator('[data-readonly="1"]').innerText();
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(0);
