// The web console in a real browser: Debian's Chromium driven by
// playwright-core, against a real Caddy and a real OpenID provider.
// node console_e2e.js <config.json>; prints one JSON object of what it saw
// and takes a screenshot of every page it visits into config.shots.
// Chromium's virtual authenticator (DevTools WebAuthn domain) plays the
// security key.
const { chromium } = require("playwright-core");
const fs = require("fs");

const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const seen = {};
let shot = 0;

async function snap(page, name) {
  shot++;
  await page.screenshot({ path: `${cfg.shots}/${String(shot).padStart(2, "0")}-${name}.png`, fullPage: true });
}

async function signIn(page, user) {
  const trail = [];
  page.on("response", (r) => trail.push(r.status() + " " + r.request().method() + " " + r.url()));
  await page.goto(cfg.console + "/console/");
  // Not signed in: the console sends the browser to the provider's own
  // login page.
  await page.waitForSelector("#username");
  seen[user + "_login_page"] = new URL(page.url()).origin;
  await page.fill("#username", user);
  await page.fill("#password", cfg.password);
  await page.click("button[type=submit]");
  try {
    await page.waitForURL(cfg.console + "/console/", { timeout: 15000 });
  } catch (e) {
    await snap(page, "login-failed");
    throw new Error("sign-in did not come back to the console:\n" + trail.join("\n"));
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
  const errors = [];
  try {
    // bob, the approver.
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await ctx.newPage();
    page.on("pageerror", (e) => errors.push(String(e)));
    page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text()); });
    await signIn(page, cfg.approver);
    seen.inbox = await page.textContent("main");
    await snap(page, "inbox");
    const cookies = await ctx.cookies();
    seen.cookies = cookies.map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite, secure: c.secure, path: c.path }));

    // A security key, on Chromium's virtual authenticator.
    const cdp = await ctx.newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: { protocol: "ctap2", transport: "usb", hasResidentKey: false, hasUserVerification: true, isUserVerified: true },
    });
    await page.goto(cfg.console + "/console/keys");
    await page.fill("#key-name", "virtual key");
    await Promise.all([page.waitForLoadState("load"), page.click("form.register button[type=submit]")]);
    await page.waitForSelector("text=virtual key");
    await snap(page, "keys");
    seen.credentials = (await cdp.send("WebAuthn.getCredentials", { authenticatorId })).credentials.length;

    // The request: approving without a reason is refused by the server
    // (the browser's own check removed first).
    await page.goto(cfg.console + "/console/requests/" + cfg.request);
    await snap(page, "request");
    await page.evaluate(() => document.getElementById("reason").removeAttribute("required"));
    await page.click("button.deny");
    seen.deny_without_reason = await page.textContent("main");
    // Approve with a reason: the page asks the key, bound to this request.
    await page.goto(cfg.console + "/console/requests/" + cfg.request);
    await page.fill("#reason", "CHG-2024 reviewed");
    await Promise.all([page.waitForURL(cfg.console + "/console/requests/" + cfg.request), page.click("button.approve")]);
    await page.waitForSelector(".status-approved");
    seen.after_approval = await page.textContent("main");
    await snap(page, "approved");

    // A form posted from another site: SameSite=Strict keeps the session
    // cookie home, and the CSRF token is missing anyway.
    const evil = await ctx.newPage();
    await evil.setContent(`<form id="f" method="post" action="${cfg.console}/console/requests/${cfg.other}/decide">
      <input name="decision" value="approve"><input name="reason" value="forged"></form>`);
    const [resp] = await Promise.all([evil.waitForNavigation(), evil.evaluate(() => document.getElementById("f").submit())]);
    seen.cross_site_status = resp ? resp.status() : 0;
    seen.cross_site_body = await evil.textContent("body");

    // carol, the requester: her own request offers no decision.
    const carolCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const carolPage = await carolCtx.newPage();
    await signIn(carolPage, cfg.requester);
    await carolPage.goto(cfg.console + "/console/requests/" + cfg.other);
    seen.own_request_has_decide = (await carolPage.$("form.decide")) !== null;
    await snap(carolPage, "own-request");
  } finally {
    await browser.close();
  }
  seen.errors = errors;
  console.log(JSON.stringify(seen));
})().catch((e) => { console.error(e); process.exit(1); });
