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
    // The form's post (with the assertion) is kept, to replay it.
    let captured = null;
    await page.route("**/decide", async (route) => { captured = route.request().postData(); await route.continue(); });
    await page.goto(cfg.console + "/console/requests/" + cfg.request);
    await page.fill("#reason", "CHG-2024 reviewed");
    await Promise.all([page.waitForURL(cfg.console + "/console/requests/" + cfg.request), page.click("button.approve")]);
    await page.waitForSelector(".status-approved");
    await page.unroute("**/decide");
    seen.after_approval = await page.textContent("main");
    seen.assertion_sent = new URLSearchParams(captured).get("assertion").length > 0;
    await snap(page, "approved");

    // The same assertion again: on the same request, and on another one
    // (with that form's own CSRF token): refused both times.
    const replayed = Object.fromEntries(new URLSearchParams(captured));
    let r = await page.request.post(cfg.console + "/console/requests/" + cfg.request + "/decide", { form: replayed, maxRedirects: 0 });
    seen.replay_same = r.status() + " " + (await r.text());
    await page.goto(cfg.console + "/console/requests/" + cfg.other);
    replayed.csrf = await page.getAttribute("form.decide input[name=csrf]", "value");
    r = await page.request.post(cfg.console + "/console/requests/" + cfg.other + "/decide", { form: replayed, maxRedirects: 0 });
    seen.replay_other = r.status() + " " + (await r.text());

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

    // carol asks in the console; bob approves (staging: no key needed);
    // carol claims the secret once, then revokes the token.
    await carolPage.goto(cfg.console + "/console/mine");
    await carolPage.fill("#owner", "search-team");
    await carolPage.fill("#purpose", "reindex");
    await carolPage.fill("#scopes", "search:write");
    await carolPage.fill("#services", "search");
    await carolPage.fill("#cidrs", "10.9.0.0/16");
    await carolPage.fill("#ticket", "CHG-99");
    await snap(carolPage, "ask");
    await Promise.all([carolPage.waitForURL(/\/console\/requests\/req_/), carolPage.click("form.ask button[type=submit]")]);
    const asked = carolPage.url().split("/").pop();
    seen.asked_status = await carolPage.textContent(".status");
    await page.goto(cfg.console + "/console/requests/" + asked);
    await page.fill("#reason", "reindex is fine");
    await Promise.all([page.waitForURL(cfg.console + "/console/requests/" + asked), page.click("button.approve")]);
    await page.waitForSelector(".status-approved");
    await carolPage.goto(cfg.console + "/console/requests/" + asked);
    const claimCSRF = await carolPage.getAttribute("form[action$='/claim'] input[name=csrf]", "value");
    const [claimResp] = await Promise.all([
      carolPage.waitForResponse((x) => x.url().endsWith("/claim")),
      carolPage.click("form[action$='/claim'] button[type=submit]"),
    ]);
    seen.claim_cache_control = claimResp.headers()["cache-control"];
    const secret = await carolPage.inputValue("#secret");
    seen.claimed_prefix = secret.slice(0, 3);
    seen.secret = secret; // for the test's check that no log holds it
    await snap(carolPage, "secret");
    r = await carolPage.request.post(cfg.console + "/console/requests/" + asked + "/claim", { form: { csrf: claimCSRF }, maxRedirects: 0 });
    const again = await r.text();
    seen.claim_again = r.status() + (again.includes(secret) ? " SHOWS THE SECRET" : "");
    await Promise.all([carolPage.waitForURL(/\/console\/tokens\/tok_/), carolPage.click("text=The token's page")]);
    seen.token_page_shows_secret = (await carolPage.content()).includes(secret);
    await carolPage.fill("#revoke-reason", "reindex done");
    await Promise.all([carolPage.waitForLoadState("load"), carolPage.click("form[action$='/revoke'] button[type=submit]")]);
    seen.after_revoke = await carolPage.textContent(".status");
    seen.revoked_token = carolPage.url().split("/").pop();
    await snap(carolPage, "revoked");
  } finally {
    await browser.close();
  }
  seen.errors = errors;
  console.log(JSON.stringify(seen));
})().catch((e) => { console.error(e); process.exit(1); });
