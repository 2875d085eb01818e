// The SPA end to end in a real Chromium (Debian's, through playwright-core):
// the API and the app on two origins, OTPGATE_CORS_ORIGINS set to exactly the
// app's; codes computed by otplib, independently of the server. Screenshots
// of every screen go to screenshots/; any browser console error that is not an
// API error answer the test provoked on purpose fails the run.
//
//   OTPGATE_BIN=../../target/debug/otpgate node e2e/flow.mjs
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { generate } from "otplib";
import { chromium } from "playwright-core";
import { build, preview } from "vite";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const bin = resolve(process.env.OTPGATE_BIN ?? join(root, "../../target/debug/otpgate"));
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const screenshots = join(root, "screenshots");
const USERNAME = "alice";
const PASSWORD = "correct horse battery staple";
const ACCESS_TTL_SECS = 33;

const freePort = () =>
  new Promise((done, fail) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => done(port));
    });
    server.on("error", fail);
  });

const [apiPort, appPort, foreignPort] = [await freePort(), await freePort(), await freePort()];
const API = `http://127.0.0.1:${apiPort}`;
const APP = `http://127.0.0.1:${appPort}`;
const FOREIGN = `http://127.0.0.1:${foreignPort}`;

const cleanups = [];
async function cleanup() {
  for (const step of cleanups.reverse()) await step().catch(() => {});
}

/** The TOTP code of `secret` at `offsetSteps` 30-second steps from now. */
const totp = (secret, offsetSteps = 0) =>
  generate({ secret, epoch: Math.floor(Date.now() / 1000) + offsetSteps * 30 });

async function startApi() {
  const dataDir = await mkdtemp(join(tmpdir(), "otpgate-e2e-"));
  cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
  const server = spawn(bin, ["serve"], {
    env: {
      ...process.env,
      DATABASE_URL: join(dataDir, "otpgate.db"),
      OTPGATE_DATA_DIR: dataDir,
      OTPGATE_BIND: `127.0.0.1:${apiPort}`,
      OTPGATE_BCRYPT_COST: "4",
      OTPGATE_CORS_ORIGINS: APP,
      // The client refreshes 30 s before expiry: its access tokens go stale
      // 3 s after they are issued, so the flow also refreshes on the fly.
      OTPGATE_ACCESS_TTL_SECS: String(ACCESS_TTL_SECS),
      RUST_LOG: "warn",
    },
    stdio: ["ignore", "inherit", "inherit"],
  });
  cleanups.push(async () => {
    server.kill("SIGTERM");
  });
  for (let attempt = 0; attempt < 200; attempt++) {
    if (server.exitCode !== null) throw new Error(`${bin} exited with ${server.exitCode}`);
    const ready = await fetch(`${API}/readyz`).then((r) => r.ok, () => false);
    if (ready) return;
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error("the API is not ready after 20 s");
}

/** Builds the app for this API and serves the build on `port`. */
async function serveApp(port) {
  const server = await preview({
    root,
    logLevel: "warn",
    preview: { host: "127.0.0.1", port, strictPort: true },
  });
  cleanups.push(() => server.close());
}

async function main() {
  await startApi();
  process.env.VITE_OTPGATE_API = API;
  await build({ root, logLevel: "warn" });
  await serveApp(appPort);
  await serveApp(foreignPort);

  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  cleanups.push(() => browser.close());

  await theFlow(browser);
  await aForeignOriginIsRefused(browser);
}

/** Console errors, failing the run unless they are API error answers the
 * test asked for (Chromium logs every 4xx fetch as a console error). */
function watchConsole(page, expectedApiErrors) {
  const unexpected = [];
  page.on("pageerror", (error) => unexpected.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() !== "error") return;
    const text = message.text();
    const status = text.match(/status of (\d{3})/)?.[1];
    const fromApi = message.location().url.startsWith(API);
    if (fromApi && status && expectedApiErrors.count > 0) {
      expectedApiErrors.count--;
      return;
    }
    unexpected.push(`${text} (${message.location().url})`);
  });
  return unexpected;
}

async function shoot(page, name) {
  await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

async function heading(page, text) {
  await page.getByRole("heading", { level: 1, name: text }).waitFor();
}

async function theFlow(browser) {
  const context = await browser.newContext({ acceptDownloads: true });
  await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: APP });
  const page = await context.newPage();
  const expectedApiErrors = { count: 0 };
  const consoleErrors = watchConsole(page, expectedApiErrors);

  await page.goto(APP);
  await heading(page, "Sign in");
  await shoot(page, "01-sign-in");

  await page.getByRole("button", { name: "Create an account" }).click();
  await heading(page, "Create an account");
  await page.getByLabel("Username").fill(USERNAME);
  assert.equal(await page.getByLabel("Password").getAttribute("autocomplete"), "new-password");
  await page.getByLabel("Password").fill("short");
  expectedApiErrors.count = 1;
  await page.getByRole("button", { name: "Create account" }).click();
  // The API's field error, next to its field.
  await page.locator(".field-error", { hasText: "8" }).waitFor();
  assert.equal(await page.getByLabel("Password").getAttribute("aria-invalid"), "true");
  await shoot(page, "02-register-invalid-password");
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Create account" }).click();

  await heading(page, "Set up two-factor authentication");
  const secret = (await page.locator("#secret").textContent()).trim();
  assert.match(secret, /^[A-Z2-7]{32}$/);
  await page.getByRole("button", { name: "Copy key" }).click();
  await page.getByText("Copied.").waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), secret);
  await shoot(page, "03-enrol");

  // A wrong code: not the code of any step the server accepts now.
  const accepted = new Set(await Promise.all([-1, 0, 1].map((step) => totp(secret, step))));
  let wrong = "000000";
  while (accepted.has(wrong)) wrong = String(Number(wrong) + 1).padStart(6, "0");
  const codeInput = page.getByLabel("6-digit code");
  assert.equal(await codeInput.getAttribute("autocomplete"), "one-time-code");
  assert.equal(await codeInput.getAttribute("inputmode"), "numeric");
  await codeInput.fill(wrong);
  expectedApiErrors.count = 1;
  const [wrongAnswer] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/2fa/verify")),
    page.getByRole("button", { name: "Turn on two-factor authentication" }).click(),
  ]);
  assert.equal(wrongAnswer.status(), 401);
  const problem = await wrongAnswer.json();
  assert.equal(problem.code, "invalid_otp");
  await page.getByRole("alert").filter({ hasText: problem.detail }).waitFor();
  await shoot(page, "04-wrong-code");

  await codeInput.fill(await totp(secret));
  await page.getByRole("button", { name: "Turn on two-factor authentication" }).click();
  await heading(page, "Your recovery codes");
  const codes = await page.locator("#recovery-codes li").allTextContents();
  assert.equal(codes.length, 10);
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download codes" }).click(),
  ]);
  assert.equal(await readFile(await download.path(), "utf8"), codes.join("\n") + "\n");
  await shoot(page, "05-recovery-codes");

  await page.getByRole("button", { name: "I have saved them" }).click();
  await heading(page, `Welcome, ${USERNAME}`);
  await page.getByRole("cell", { name: "two_factor_enabled" }).waitFor();
  await shoot(page, "06-signed-in");

  // A reload loses the access token (kept in memory only): the kept refresh
  // token gets a new one.
  const [refreshed] = await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/auth/refresh")),
    page.reload(),
  ]);
  assert.equal(refreshed.status(), 200);
  await heading(page, `Welcome, ${USERNAME}`);

  // Another authenticator: a code of the first one (its next step, newer
  // than the one just used), then a code of the new one to confirm it.
  await page.getByLabel("Name (e.g. spare phone)").fill("spare phone");
  await page.getByLabel("Code from an authenticator you already have").fill(await totp(secret, 1));
  await page.getByRole("button", { name: "Add", exact: true }).click();
  await heading(page, "Add spare phone");
  const spareSecret = (await page.locator("#secret").textContent()).trim();
  await shoot(page, "07-add-authenticator");
  await page.getByLabel("6-digit code").fill(await totp(spareSecret));
  await page.getByRole("button", { name: "Confirm" }).click();
  await heading(page, `Welcome, ${USERNAME}`);
  await page.getByRole("cell", { name: "spare phone", exact: true }).waitFor();
  await shoot(page, "08-two-authenticators");
  // Removed again with the spare's next code.
  await page.getByLabel("Code to remove spare phone").fill(await totp(spareSecret, 1));
  await page.getByRole("button", { name: "Remove spare phone" }).click();
  await page.getByRole("cell", { name: "authenticator_removed" }).waitFor();

  await page.getByRole("button", { name: "Sign out this device" }).click();
  await heading(page, "Sign in");
  await page.getByText("You are signed out.").waitFor();
  await shoot(page, "09-signed-out");
  await page.reload();
  await heading(page, "Sign in");

  // Signing in with a recovery code instead of the app's code.
  assert.equal(await page.getByLabel("Username").getAttribute("autocomplete"), "username");
  assert.equal(await page.getByLabel("Password").getAttribute("autocomplete"), "current-password");
  await page.getByLabel("Username").fill(USERNAME);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Continue" }).click();
  await heading(page, "Enter your code");
  await shoot(page, "10-code");
  await page.getByRole("button", { name: "Use a recovery code instead" }).click();
  await heading(page, "Use a recovery code");
  await page.getByLabel("Recovery code").fill(codes[0]);
  await shoot(page, "11-recovery-code");
  await page.getByRole("button", { name: "Sign in" }).click();
  await heading(page, `Welcome, ${USERNAME}`);
  await page.getByRole("cell", { name: "recovery_code_used" }).waitFor();
  await page.getByText("9 recovery codes left.").waitFor();

  // Once the access token is stale, the next screen's calls (four at once)
  // share one refresh: two would present the same refresh token, and the
  // second would revoke the session (reuse detection).
  await page.waitForTimeout((ACCESS_TTL_SECS - 30) * 1000 + 500);
  const refreshes = [];
  page.on("request", (request) => {
    if (request.url().endsWith("/auth/refresh") && request.method() === "POST") refreshes.push(request);
  });
  const rendered = ["/me", "/me/events", "/me/sessions", "/2fa/authenticators"].map((path) =>
    page.waitForResponse((r) => r.url() === `${API}/api/v1${path}` && r.request().method() === "GET"),
  );
  await page.getByRole("button", { name: "Sign out everywhere else" }).click();
  for (const answer of await Promise.all(rendered)) assert.equal(answer.status(), 200, answer.url());
  await heading(page, `Welcome, ${USERNAME}`);
  assert.equal(refreshes.length, 1, "one refresh before the stale token's calls");
  await page.getByRole("button", { name: "Sign out this device" }).click();
  await heading(page, "Sign in");

  await context.close();
  assert.equal(expectedApiErrors.count, 0, "an expected API error did not happen");
  assert.deepEqual(consoleErrors, [], "the browser console showed errors");
}

/** The same app served from an origin the API does not list: the browser
 * withholds the API's answers, and the page says the server is unreachable. */
async function aForeignOriginIsRefused(browser) {
  const context = await browser.newContext();
  const page = await context.newPage();
  const messages = [];
  page.on("console", (message) => messages.push(message.text()));
  await page.goto(FOREIGN);
  await heading(page, "Sign in");
  await page.getByLabel("Username").fill(USERNAME);
  await page.getByLabel("Password").fill(PASSWORD);
  const [failed] = await Promise.all([
    page.waitForEvent("requestfailed", (r) => r.url().startsWith(API)),
    page.getByRole("button", { name: "Continue" }).click(),
  ]);
  await page.getByRole("alert").filter({ hasText: "The server cannot be reached." }).waitFor();
  assert.ok(
    messages.some((text) => text.includes("blocked by CORS policy")),
    `no CORS refusal in the console for ${failed.url()}: ${messages.join("\n")}`,
  );
  await shoot(page, "12-foreign-origin-refused");
  await context.close();
}

const started = Date.now();
try {
  await main();
  console.log(`e2e: the SPA flow passed in Chromium in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (error) {
  console.error(error);
  process.exitCode = 1;
} finally {
  await cleanup();
}
