// Drives levee's dashboard in headless Chromium (Debian's, through
// playwright-core) against a running levee. Called by tests/dashboard.rs with
// LEVEE_URL, LEVEE_TOKEN, RECEIVER_URL and SCREENSHOTS set; exits non-zero on
// the first failed check.
import { chromium } from "playwright-core";

const { LEVEE_URL, LEVEE_TOKEN, RECEIVER_URL, SCREENSHOTS } = process.env;
const step = (what) => console.log("dashboard test: " + what);
const fail = (what) => { throw new Error(what); };

async function api(path, init = {}) {
  const r = await fetch(LEVEE_URL + path, { ...init, headers: { Authorization: "Bearer " + LEVEE_TOKEN, ...(init.headers || {}) } });
  return r.json();
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));

  step("a wrong token is refused");
  await page.goto(LEVEE_URL + "/");
  await page.fill("#token", "not-the-token-at-all");
  await page.click("#login-form button");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.includes("refused"));
  await page.screenshot({ path: SCREENSHOTS + "/login.png" });

  step("log in; the token stays in the session");
  await page.fill("#token", LEVEE_TOKEN);
  await page.click("#login-form button");
  await page.waitForSelector("#nav:not([hidden])");
  const stored = await page.evaluate(() => [sessionStorage.getItem("levee-token"), localStorage.length]);
  if (stored[0] !== LEVEE_TOKEN || stored[1] !== 0) fail("token not kept in sessionStorage only: " + stored);

  step("the live chart moves while traffic flows");
  await page.waitForFunction(() => Number(document.body.dataset.lastPoint || 0) > 0);
  const first = await page.evaluate(() => Number(document.body.dataset.lastPoint));
  await page.waitForFunction((t) => Number(document.body.dataset.lastPoint) > t, first, { timeout: 5000 });
  const peak = await page.evaluate(() => Number(document.body.dataset.peakPps || 0));
  if (!(peak > 0)) fail("the chart shows no traffic");
  const canvases = await page.locator("#chart-pps canvas").count();
  if (canvases < 1) fail("no chart drawn");
  await page.waitForSelector("#ports td.ok");
  await page.screenshot({ path: SCREENSHOTS + "/live.png", fullPage: true });

  step("an incident appears, with its details");
  await page.click('#nav a[data-page="incidents"]');
  await page.waitForSelector("#incident-list tr.clickable", { timeout: 30000 });
  const row = page.locator("#incident-list tr.clickable").first();
  const text = await row.textContent();
  if (!text.includes("UDP Flood")) fail("incident row: " + text);
  await row.click();
  await page.waitForSelector("#incident-detail .timeline li");
  const detail = await page.textContent("#incident-detail");
  if (!detail.includes("Attacker IPs") || !detail.includes("incident.created")) fail("incident detail: " + detail);
  await page.screenshot({ path: SCREENSHOTS + "/incidents.png", fullPage: true });

  step("approve a staged rule; it becomes active in the API");
  await page.click('#nav a[data-page="rules"]');
  await page.waitForSelector("#rules-staged button.approve", { timeout: 30000 });
  await page.screenshot({ path: SCREENSHOTS + "/rules-staged.png", fullPage: true });
  const ruleId = await page.locator("#rules-staged tr[data-id]").first().getAttribute("data-id");
  await page.locator("#rules-staged tr[data-id]").first().locator("button.approve").click();
  await page.waitForFunction((id) => document.querySelector("#rules-message").textContent.includes(`Rule ${id} approved`), ruleId);
  const rule = await api("/api/v1/rules/" + ruleId);
  if (rule.state !== "active") fail("rule " + ruleId + " is " + rule.state);
  await page.waitForSelector(`#rules-active tr[data-id="${ruleId}"]`);
  await page.screenshot({ path: SCREENSHOTS + "/rules.png", fullPage: true });

  step("add a webhook, see its secret once, test it, read the delivery log");
  await page.click('#nav a[data-page="integrations"]');
  await page.click("#add-integration");
  await page.selectOption("#integration-kind", "webhook");
  await page.fill('#integration-form input[name="name"]', "dashboard-hook");
  await page.fill('#integration-form input[name="url"]', RECEIVER_URL + "/hook");
  await page.screenshot({ path: SCREENSHOTS + "/integration-form.png", fullPage: true });
  await page.click('#integration-form button[type="submit"]');
  await page.waitForSelector("#integration-secret:not([hidden]) #shown-secret");
  const secret = await page.textContent("#shown-secret");
  if (!secret.startsWith("whsec_")) fail("secret: " + secret);
  console.log("SECRET " + secret);
  const listed = await api("/api/v1/integrations");
  if (JSON.stringify(listed).includes(secret)) fail("the secret came back from the API");
  const hookRow = page.locator("#integration-list tr", { hasText: "dashboard-hook" });
  await hookRow.locator("button.test").click();
  await page.waitForFunction(() => [...document.querySelectorAll("#delivery-log td")].some((td) => td.textContent === "delivered"), null, { timeout: 20000 });
  await page.screenshot({ path: SCREENSHOTS + "/integrations.png", fullPage: true });

  if (errors.length) fail("page errors: " + errors.join("; "));
  step("all checks passed");
} finally {
  await browser.close();
}
