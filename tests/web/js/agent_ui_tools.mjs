// The agent app deciding write tools: Confirm one proposed ticket, Cancel the next.
//
//   node agent_ui_tools.mjs GATEWAY_URL CALL_ID ARTIFACTS_DIR
//
// Lines on stdout for the test driver (tests/web/test_agent_ui_tools.py):
//   STEP confirmed {"toolCallId", "ticketId", ...}   the first proposal was confirmed in the app,
//                                                    its outcome is on the card and the customer
//                                                    card lists the ticket: send the next request
//   STEP cancelled                                   the second was cancelled: send the third
// then one JSON line with what it saw (the third is revised: its subject
// edited in the card's Revise form, typed from the keyboard).
import { join } from "node:path";
import { deadline, launch, watchErrors } from "./browser.mjs";

deadline(90_000, "agent_ui_tools");
const [gateway, callId, artifacts] = process.argv.slice(2);
const out = {};

const card = (page, id) => page.locator(`article.tool-card[data-tool-call-id="${id}"]`);

const REVISED_SUBJECT = "Late delivery complaint (revised in the app)";

/**
 * Wait for a pending create_ticket card not seen before; decide it with
 * `button` (then `then(card)` when given); wait for `outcome`.
 */
async function decide(page, seen, button, outcome, then) {
  const pending = page.locator('article.tool-card[data-tool-name="create_ticket"][data-tool-status="needs you"]');
  await page.waitForFunction(
    (seenIds) =>
      [...document.querySelectorAll('article.tool-card[data-tool-name="create_ticket"][data-tool-status="needs you"]')].some(
        (el) => !seenIds.includes(el.dataset.toolCallId),
      ),
    seen,
    { timeout: 30_000 },
  );
  const ids = await pending.evaluateAll((els) => els.map((el) => el.dataset.toolCallId));
  const id = ids.find((i) => !seen.includes(i));
  const target = card(page, id);
  const proposedText = await target.innerText();
  await target.getByRole("button", { name: button, exact: true }).click();
  if (then !== undefined) {
    await then(target);
  }
  await page.locator(`article.tool-card[data-tool-call-id="${id}"][data-tool-status="${outcome}"]`).waitFor();
  return {
    toolCallId: id,
    proposedText,
    cardText: await target.innerText(),
    outcomeText: await target.locator(".tool-outcome").innerText(),
    buttonsLeft: await target.getByRole("button").count(),
  };
}

const browser = await launch({ viewport: { width: 1280, height: 900 } });
try {
  const errors = [];
  const page = await browser.context.newPage();
  watchErrors(page, errors);
  await page.goto(`${gateway}/calls/${callId}`);
  await page.locator('[data-call-state="live"]').waitFor({ timeout: 30_000 });

  out.confirmed = await decide(page, [], "Confirm", "ok");
  // The customer card reloads and lists the new ticket (newest first).
  const ticketId = (await card(page, out.confirmed.toolCallId).locator("dt:text-is('Ticket id') + dd").innerText()).trim();
  const customerCard = page.locator('.customer-card[data-customer-id="C-1001"]');
  await customerCard.locator(".mini-list li", { hasText: ticketId }).waitFor();
  out.confirmed.ticketId = ticketId;
  out.customerTickets = await customerCard.locator(".mini-list li .mono").allInnerTexts();
  console.log(`STEP confirmed ${JSON.stringify(out.confirmed)}`);

  out.cancelled = await decide(page, [out.confirmed.toolCallId], "Cancel", "cancelled");
  // The confirmed card still shows its outcome.
  out.confirmedStatusAfter = await card(page, out.confirmed.toolCallId).getAttribute("data-tool-status");
  console.log("STEP cancelled");

  // Revise: the arguments become fields; the edited subject is what runs.
  out.revised = await decide(page, [out.confirmed.toolCallId, out.cancelled.toolCallId], "Revise", "ok", async (target) => {
    const subject = target.locator('input[data-argument="subject"]');
    await subject.waitFor();
    // The form focuses its first field in an effect, after it is attached: wait for it (bounded).
    await page
      .waitForFunction(() => document.activeElement?.dataset?.argument === "subject", null, { timeout: 5000 })
      .catch(() => {});
    out.reviseFocused = await page.evaluate(() => document.activeElement?.dataset?.argument ?? "");
    out.proposedSubject = await subject.inputValue();
    await subject.fill(REVISED_SUBJECT);
    await page.keyboard.press("Enter");
  });
  await page.waitForTimeout(200); // let the last events settle for the picture
  await page.screenshot({ path: join(artifacts, "agent-ui-tools.png") });
  out.errors = errors;
  console.log(JSON.stringify(out));
} finally {
  await browser.close();
}
