// The wrap-up saved through the API, and the supervisor's read-only desk.
//
//   node wrap_up_desk.mjs GATEWAY_URL CALL_ID
//
// On an ended call: a save the server refuses shows the error and keeps the
// edits; a good save shows "Saved"; a fresh page (no app state) shows the
// saved wrap-up again from GetCall; /calls/ID?readonly=1 has the banner and
// no action buttons. Prints one JSON line with what it saw.
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(90_000, "wrap_up_desk");
const [gateway, callId] = process.argv.slice(2);
const out = { errors: [] };

const fields = (page) =>
  page.evaluate(() => ({
    summary: document.querySelector("#wrapup-summary")?.value ?? "",
    disposition: document.querySelector("#wrapup-disposition")?.value ?? "",
    followUps: [...document.querySelectorAll(".followups li span")].map((e) => e.textContent),
    notes: document.querySelector("#wrapup-notes")?.value ?? "",
    save: document.querySelector("[data-save]")?.dataset.save ?? "",
    saveText: document.querySelector("[data-save]")?.textContent ?? "",
  }));

const browser = await launch({ viewport: { width: 1280, height: 800 } });
try {
  const page = await browser.context.newPage();
  await page.goto(`${gateway}/calls/${callId}`);
  await page.locator('[data-wrapup="open"]').waitFor({ timeout: 30_000 });

  // Too long a summary: the server refuses, the panel says so, the edits stay.
  await page.locator("#wrapup-summary").fill("x".repeat(4001));
  await page.locator('[data-action="save-wrapup"]').click();
  await page.locator('[data-save="error"]').waitFor({ timeout: 15_000 });
  out.refused = await fields(page);

  watchErrors(page, out.errors);
  await page.locator("#wrapup-summary").fill("Refund agreed for order 78901.");
  await page.locator("#wrapup-disposition").selectOption("escalated");
  await page.locator("#wrapup-followup-input").fill("Email the return label");
  await page.keyboard.press("Enter");
  await page.locator("#wrapup-notes").fill("Prefers email.");
  out.beforeSave = await fields(page);
  await page.locator('[data-action="save-wrapup"]').click();
  await page.locator('[data-save="saved"]').waitFor({ timeout: 15_000 });
  out.saved = await fields(page);

  // A new page has no app state: what it shows comes from GetCall.
  const again = await browser.context.newPage();
  watchErrors(again, out.errors);
  await again.goto(`${gateway}/calls/${callId}`);
  await again.locator('[data-save="saved"]').waitFor({ timeout: 30_000 });
  out.reloaded = await fields(again);

  // The supervisor's view from the floor.
  const ro = await browser.context.newPage();
  watchErrors(ro, out.errors);
  await ro.goto(`${gateway}/calls/${callId}?readonly=1`);
  await ro.locator('[data-readonly="1"]').waitFor({ timeout: 30_000 });
  await ro.locator('[data-save="saved"]').waitFor({ timeout: 30_000 });
  await ro.locator("article.suggestion").first().waitFor({ timeout: 30_000 });
  out.readonly = {
    ...(await fields(ro)),
    banner: await ro.locator('[data-readonly="1"]').innerText(),
    suggestions: await ro.locator("article.suggestion").count(),
    buttons: await ro.evaluate(() =>
      [...document.querySelectorAll(".call-view button")]
        .filter((b) => b.getClientRects().length > 0 && !b.disabled)
        .map((b) => b.textContent.trim()),
    ),
    summaryReadOnly: await ro.evaluate(() => document.querySelector("#wrapup-summary")?.readOnly ?? false),
    followUpInputs: await ro.locator("#wrapup-followup-input").count(),
  };
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
