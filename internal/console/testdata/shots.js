// Screenshots of console pages, for a person to look at: node shots.js
// <origin> <cookie-name> <cookie-value> <out-dir> <path>...
// Needs playwright-core (NODE_PATH) and Debian's Chromium.
const { chromium } = require("playwright-core");

(async () => {
  const [origin, name, value, out, ...paths] = process.argv.slice(2);
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync"],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addCookies([{ name, value, url: origin }]);
  const page = await context.newPage();
  const errors = [];
  // A CSP violation or a script error fails the run; a 404 page (asked
  // for on purpose) does not.
  page.on("console", (m) => { if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  for (const p of paths) {
    await page.goto(origin + p);
    const file = out + "/" + (p.replace(/[^a-z0-9]+/gi, "_").replace(/^_|_$/g, "") || "inbox") + ".png";
    await page.screenshot({ path: file, fullPage: true });
    console.log(file);
  }
  await browser.close();
  if (errors.length) { console.error(errors.join("\n")); process.exit(1); }
})();
