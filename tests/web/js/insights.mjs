// The insights page in headless Chromium at 1280x800 and 390x844: the figures
// of a seeded range (read from the DOM for the Python side to check), its
// charts, and the empty state; axe-core on each; screenshots.
//
//   node insights.mjs GATEWAY_URL SCREENSHOTS_DIR RANGE_QUERY EMPTY_QUERY
import { join } from "node:path";
import { axeSerious } from "./axe.mjs";
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(120_000, "insights");
const [gateway, shots, rangeQuery, emptyQuery] = process.argv.slice(2);
const SIZES = { desk: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
const out = { errors: [], axe: {}, overflow: {}, pages: {} };

const browser = await launch({ viewport: SIZES.desk });
try {
  const page = await browser.context.newPage();
  watchErrors(page, out.errors);
  for (const [size, viewport] of Object.entries(SIZES)) {
    await page.setViewportSize(viewport);
    await page.goto(`${gateway}/insights?${rangeQuery}`);
    await page.locator('[data-figure="calls"]').waitFor({ timeout: 30_000 });
    await page.waitForTimeout(300); // charts draw on the next frames
    out.pages[`figures@${size}`] = await page.evaluate(() => ({
      figures: Object.fromEntries(
        [...document.querySelectorAll("[data-figure]")].map((e) => [e.dataset.figure, e.textContent.trim()]),
      ),
      tools: Object.fromEntries(
        [...document.querySelectorAll("tr[data-tool]")].map((r) => [
          r.dataset.tool,
          [r.querySelector("[data-tool-calls]").textContent, r.querySelector("[data-tool-failures]").textContent],
        ]),
      ),
      charts: [...document.querySelectorAll("[data-chart] canvas")].map((c) => ({
        chart: c.parentElement.dataset.chart,
        drawn: c.width > 0 && c.height > 0,
        label: c.getAttribute("aria-label") ?? "",
      })),
    }));
    out.axe[`insights@${size}`] = await axeSerious(page);
    out.overflow[`insights@${size}`] = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
    await page.screenshot({ path: join(shots, `insights-${viewport.width}x${viewport.height}.png`), fullPage: true });

    await page.goto(`${gateway}/insights?${emptyQuery}`);
    await page.locator("[data-insights-empty]").waitFor({ timeout: 30_000 });
    out.pages[`empty@${size}`] = { text: await page.locator("[data-insights-empty]").textContent() };
    out.axe[`insights-empty@${size}`] = await axeSerious(page);
    await page.screenshot({ path: join(shots, `insights-empty-${viewport.width}x${viewport.height}.png`) });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(0);
