// axe-core in the page (the npm package, loaded from node_modules): the
// accessibility check of the desk tests. Injected with page.evaluate, which the
// pages' Content-Security-Policy (script-src 'self') does not block.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const AXE_SOURCE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/**
 * Run axe on the page as it is now (WCAG 2.x A and AA rules). Returns the
 * serious and critical violations as {id, impact, help, targets}.
 */
export async function axeSerious(page) {
  const loaded = await page.evaluate(() => typeof window.axe !== "undefined");
  if (!loaded) {
    await page.evaluate(AXE_SOURCE);
  }
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, {
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
      resultTypes: ["violations"],
    });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
    }));
  });
  return result.filter((v) => v.impact === "serious" || v.impact === "critical");
}
