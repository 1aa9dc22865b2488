// One browser, two gateway nodes on one database: sign in on node A, act
// on node B with the same session, sign out on B, and A no longer knows
// the session. node console_twonodes.js <config.json>
const { chromium } = require("playwright-core");
const fs = require("fs");

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const seen = {};

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
  try {
    const ctx = await browser.newContext();
    const page = await ctx.newPage();
    await page.goto(cfg.a + "/console/");
    await page.waitForSelector("#username");
    await page.fill("#username", cfg.user);
    await page.fill("#password", cfg.password);
    await Promise.all([page.waitForURL(cfg.a + "/console/"), page.click("button[type=submit]")]);
    seen.a_signed_in = await page.textContent("header .who");
    // Node B: no trip to the provider, the store knows the session.
    await page.goto(cfg.b + "/console/");
    seen.b_url = page.url();
    seen.b_signed_in = await page.textContent("header .who");
    // Act on B: deny a request with a reason.
    await page.goto(cfg.b + "/console/requests/" + cfg.request);
    await page.fill("#reason", "not this quarter");
    await Promise.all([page.waitForURL(cfg.b + "/console/requests/" + cfg.request), page.click("button.deny")]);
    seen.b_decision = await page.textContent(".status");
    // Sign out on B; A sends the browser to sign in again.
    await Promise.all([page.waitForLoadState("load"), page.click("header .who button")]);
    await page.goto(cfg.a + "/console/");
    seen.a_after_signout = new URL(page.url()).origin;
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(seen));
})().catch((e) => { console.error(e); process.exit(1); });
