// The dashboard in a real headless Chromium (the system's, driven by playwright-core; no
// browser is downloaded), against a running `wisp serve`. Run by
// control-plane/tests/e2e_dashboard.rs, which starts the server and passes:
//   WISP_BASE            http://127.0.0.1:PORT
//   WISP_ADMIN_EMAIL     the first admin (one-time password, must be changed)
//   WISP_ADMIN_PASSWORD  that one-time password
//   WISP_ORG             the first organisation's slug
//   WISP_MODEL_FILE      an ONNX file to upload (iris)
//   WISP_ARTIFACTS       where screenshots go
//   CHROMIUM             the browser executable (default /usr/bin/chromium)
// Covers: the first-run flow from the forced password change to the first prediction in
// the try-it form with the checklist ticking; API keys (a secret shown once that works, then
// revoked), members (the viewer invited from the page), monitoring (uPlot charts), batch jobs
// (live progress, cancel), usage, the audit log, experiments (runs compared); an invited viewer who sees no write action
// and whose forged POST is refused; CSRF-less posts refused; another organisation invisible;
// every page without console errors, page errors or CSP violations, and axe-core without
// serious or critical violations; a screenshot of every page.
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import assert from "node:assert/strict";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const base = env("WISP_BASE");
const adminEmail = env("WISP_ADMIN_EMAIL");
const oneTimePassword = env("WISP_ADMIN_PASSWORD");
const org = env("WISP_ORG");
const modelFile = env("WISP_MODEL_FILE");
const artifacts = env("WISP_ARTIFACTS");
mkdirSync(artifacts, { recursive: true });
const newPassword = "my own long password";
const viewerEmail = "viewer@example.com";
const viewerPassword = "the viewer's password";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
let shots = 0;
// Documents the test loads on purpose with an error status (a wrong password's 401,
// another organisation's 404): Chromium logs "Failed to load resource" for them.
const expectedErrorUrls = new Set();

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const expected = msg.text().startsWith("Failed to load resource: the server responded with a status of")
      && expectedErrorUrls.has(msg.location().url);
    if (!expected) problems.push(`console error on ${page.url()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
  return page;
}

// Checks the page as it is now: no CSP violation reported, axe-core clean of serious and
// critical violations; saves a screenshot.
async function check(page, name) {
  await page.waitForLoadState("load");
  // Runtime evaluation, not a <script> tag: the page's CSP (rightly) refuses inline script.
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    await axe.run(document, { resultTypes: ["violations"] }));
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of bad) {
    problems.push(`axe ${v.impact} on ${name} (${page.url()}): ${v.id} — ${v.help}: ` +
      v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join("; "));
  }
  shots += 1;
  const file = path.join(artifacts, `${String(shots).padStart(2, "0")}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`checked ${name}: ${result.violations.length} axe findings (${bad.length} serious/critical), screenshot ${file}`);
}

async function api(method, url, token, body) {
  const response = await fetch(base + url, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${url}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function stepDone(page, id) {
  return (await page.locator(`#step-${id}`).getAttribute("data-done")) === "true";
}

// Reloads the home page until step `id` is ticked (usage events reach the database
// through the metering outbox, a moment after the call).
async function waitForStep(page, id) {
  for (let i = 0; i < 100; i++) {
    await page.goto(`${base}/orgs/${org}`);
    if ((await page.locator("#all-set").count()) > 0 || (await stepDone(page, id))) return;
    await page.waitForTimeout(200);
  }
  throw new Error(`checklist step ${id} never ticked`);
}

try {
  // --- Signed out: / leads to the sign-in page, which carries a CSRF token.
  const admin = await newPage();
  await admin.goto(base + "/");
  assert.match(admin.url(), /\/sign-in$/);
  await check(admin, "sign-in");

  // A wrong password: the same answer as the API (invalid_credentials).
  expectedErrorUrls.add(`${base}/sign-in`);
  await admin.fill("#email", adminEmail);
  await admin.fill("#password", "not the password");
  await admin.click("main button[type=submit]");
  assert.equal(await admin.locator("[data-error-code]").getAttribute("data-error-code"), "invalid_credentials");
  await check(admin, "sign-in-wrong-password");

  // --- The bootstrap admin's one-time password: forced to choose a new one first.
  await admin.fill("#email", adminEmail);
  await admin.fill("#password", oneTimePassword);
  await admin.click("main button[type=submit]");
  assert.match(admin.url(), /\/account\/password$/);
  await check(admin, "password-forced");
  // Any other page leads back here until it is changed.
  await admin.goto(`${base}/orgs/${org}/models`);
  assert.match(admin.url(), /\/account\/password$/);
  const cookies = await admin.context().cookies();
  const session = cookies.find((c) => c.name === "wisp_session");
  assert.ok(session, "a session cookie");
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, "Strict");
  await admin.fill("#current_password", oneTimePassword);
  await admin.fill("#new_password", newPassword);
  await admin.fill("#confirm_password", newPassword);
  await admin.click("main button[type=submit]");
  assert.match(admin.url(), new RegExp(`/orgs/${org}$`));

  // --- Home: the checklist, nothing done yet.
  await check(admin, "home-checklist-empty");
  for (const id of ["key", "model", "deploy", "predict", "mlflow"]) {
    assert.equal(await stepDone(admin, id), false, `step ${id} starts undone`);
  }

  // Step 1 as the checklist says: the curl command, with a token from the API's login.
  const login = await api("POST", "/v1/auth/login", "", { email: adminEmail, password: newPassword });
  const token = login.access_token;
  const key = await api("POST", `/v1/orgs/${org}/api-keys`, token,
    { name: "my-app", scopes: ["predict", "models:write"] });
  await admin.goto(`${base}/orgs/${org}`);
  assert.equal(await stepDone(admin, "key"), true, "the key step ticks");
  const keyStep = await admin.locator("#step-predict").textContent();
  assert.ok(keyStep.includes(key.prefix), "commands carry the key prefix");
  assert.ok(!(await admin.content()).includes(key.secret), "never the secret");

  // --- Models: empty state, create a model, upload a version with the progress bar.
  await admin.goto(`${base}/orgs/${org}/models`);
  await check(admin, "models-empty");
  await admin.fill("#name", "iris");
  await admin.fill("#description", "Iris species from petal and sepal sizes");
  await admin.click("form[action$='/models'] button[type=submit]");
  assert.match(admin.url(), new RegExp(`/orgs/${org}/models/iris$`));
  await check(admin, "model-no-version");
  await admin.setInputFiles("#upload-file", modelFile);
  await admin.fill("#upload-description", "first upload");
  await Promise.all([
    admin.waitForURL(/done=uploaded/),
    admin.click("form[data-upload] button[type=submit]"),
  ]);
  assert.equal(await admin.locator("#upload-progress").count(), 1);
  await check(admin, "model-uploaded");

  // Deploy version 1 (the page waits until it is ready).
  await admin.selectOption("#deploy-version", "1");
  await admin.click("form[action$='/deploy'] button[type=submit]");
  await admin.waitForURL(/done=deployed/);
  assert.equal(await admin.locator("[data-deployment-status]").getAttribute("data-deployment-status"), "ready");
  await check(admin, "model-deployed");

  // --- The try-it form: a real prediction through the pipeline.
  await admin.fill("#try-body", JSON.stringify({ inputs: { input: [[5.1, 3.5, 1.4, 0.2]] } }));
  await admin.click("form[hx-post] button[type=submit]");
  const output = admin.locator("#try-it-output");
  await output.waitFor();
  assert.equal(await output.getAttribute("data-status"), "200", await output.textContent());
  assert.ok((await output.textContent()).includes("outputs"));
  await check(admin, "model-try-it");

  // --- Monitoring: from the model's page, uPlot charts drawn from the data blocks.
  await admin.click("a[data-monitoring-link]");
  assert.match(admin.url(), /\/models\/iris\/monitoring$/);
  await admin.locator(".chart[data-drawn=true] canvas").first().waitFor();
  assert.ok((await admin.locator(".chart[data-drawn=true]").count()) >= 3, "calls, errors and latency charts");
  await check(admin, "monitoring-model");
  await admin.goto(`${base}/orgs/${org}/monitoring`);
  await check(admin, "monitoring-overview");

  // --- Batch jobs (the server runs one job at a time, in small chunks): a running job's
  // progress updates in place (htmx polling), and a job cancelled from its page is
  // cancelled for the API too.
  const rowsBody = '{"input": [5.1, 3.5, 1.4, 0.2]}\n'.repeat(4000);
  const submitJob = async () => {
    const response = await fetch(`${base}/v1/orgs/${org}/batch-jobs?model=iris&format=ndjson`, {
      method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "text/plain" }, body: rowsBody,
    });
    const text = await response.text();
    assert.equal(response.status, 201, text);
    return JSON.parse(text).id;
  };
  const runningJob = await submitJob();
  const queuedJob = await submitJob();
  await admin.goto(`${base}/orgs/${org}/batch`);
  assert.equal(await admin.locator(`tr[data-job='${runningJob}']`).count(), 1);
  await check(admin, "batch-list");
  await admin.goto(`${base}/orgs/${org}/batch/${runningJob}`);
  const firstDone = await admin.locator("[data-rows-done]").textContent();
  await admin.waitForFunction((first) => {
    const progress = document.querySelector("#job-progress");
    const done = document.querySelector("[data-rows-done]");
    return done.textContent !== first || !["queued", "running"].includes(progress.dataset.status);
  }, firstDone, { timeout: 60000 });
  await check(admin, "batch-progress");
  await admin.goto(`${base}/orgs/${org}/batch/${queuedJob}`);
  assert.ok(["queued", "running"].includes(await admin.locator("#job-progress").getAttribute("data-status")));
  await admin.click("form[action$='/cancel'] button[type=submit]");
  await admin.waitForURL(/done=cancelled/);
  assert.equal(await admin.locator("#job-progress").getAttribute("data-status"), "cancelled");
  assert.equal(await admin.locator("#job-progress[hx-trigger]").count(), 0, "polling stops once finished");
  assert.equal(await admin.locator("form[action$='/cancel']").count(), 0);
  assert.equal((await api("GET", `/v1/orgs/${org}/batch-jobs/${queuedJob}`, token)).status, "cancelled");
  await check(admin, "batch-cancelled");
  await admin.goto(`${base}/orgs/${org}/batch/${runningJob}`);
  if ((await admin.locator("form[action$='/cancel']").count()) > 0) {
    await admin.click("form[action$='/cancel'] button[type=submit]");
    await admin.waitForURL(/done=cancelled/);
  }

  // The checklist ticks model, deploy and predict.
  await waitForStep(admin, "predict");
  for (const id of ["key", "model", "deploy", "predict"]) {
    assert.equal(await stepDone(admin, id), true, `step ${id} done`);
  }
  await check(admin, "home-checklist-four");

  // Step 5, as the MLflow client does it: an experiment created with the key.
  await api("POST", "/api/2.0/mlflow/experiments/create", key.secret, { name: "first" });
  await admin.goto(`${base}/orgs/${org}`);
  assert.equal(await admin.locator("#all-set").count(), 1, "the checklist is done");
  await check(admin, "home-done");

  // --- Experiments: the MLflow data, runs compared with their metrics overlaid.
  const experiment = (await api("GET", "/api/2.0/mlflow/experiments/get-by-name?experiment_name=first", key.secret)).experiment;
  for (const [name, lr] of [["slow", 0.01], ["fast", 0.1]]) {
    const run = (await api("POST", "/api/2.0/mlflow/runs/create", key.secret,
      { experiment_id: experiment.experiment_id, run_name: name, start_time: Date.now() })).run;
    await api("POST", "/api/2.0/mlflow/runs/log-batch", key.secret, {
      run_id: run.info.run_id,
      params: [{ key: "lr", value: String(lr) }],
      metrics: [0, 1, 2, 3, 4].map((step) => ({ key: "loss", value: 1 / (step + 1) / (lr * 10), timestamp: Date.now(), step })),
    });
  }
  await admin.goto(`${base}/orgs/${org}/experiments`);
  await check(admin, "experiments");
  await admin.click("tr[data-experiment=first] a");
  assert.equal(await admin.locator("tr[data-run]").count(), 2);
  await check(admin, "experiment-runs");
  await admin.check("#pick-1");
  await admin.check("#pick-2");
  await admin.click("form[action$='/compare'] button[type=submit]");
  await admin.waitForURL(/\/compare\?run=/);
  await admin.locator(".chart[data-drawn=true] canvas").first().waitFor();
  assert.equal(await admin.locator("th[data-compared]").count(), 2);
  await check(admin, "experiment-compare");
  await admin.click("th[data-compared] a >> nth=0");
  await admin.locator(".chart[data-drawn=true] canvas").first().waitFor();
  assert.equal(await admin.locator("tr[data-param=lr]").count(), 1);
  await check(admin, "experiment-run");
  await admin.goto(`${base}/orgs/${org}/models`);
  await check(admin, "models-list");

  // --- CSRF: a POST without the token is refused, with the documented code.
  const forged = await admin.request.post(`${base}/orgs/${org}/models`, {
    form: { name: "forged" }, maxRedirects: 0,
  });
  assert.equal(forged.status(), 403);
  assert.ok((await forged.text()).includes("csrf_token_invalid"));
  const wrongToken = await admin.request.post(`${base}/orgs/${org}/models/iris/rollback`, {
    form: { _csrf: "0".repeat(64) }, maxRedirects: 0,
  });
  assert.equal(wrongToken.status(), 403);

  // --- Usage against the plan's quotas, with charts and the invoice preview.
  await admin.goto(`${base}/orgs/${org}/usage`);
  await admin.locator(".chart[data-drawn=true] canvas").first().waitFor();
  assert.equal(await admin.locator("[data-quota=calls_per_month]").count(), 1);
  assert.equal(await admin.locator("#preview-heading").count(), 1);
  await check(admin, "usage");

  // --- API keys page: a key created here shows its secret once, and it works.
  await admin.goto(`${base}/orgs/${org}/keys`);
  await check(admin, "keys-list");
  await admin.fill("#key-name", "from-the-browser");
  await admin.uncheck("input[name=scope][value=predict]");
  await admin.check("input[name=scope][value=read]");
  await admin.click("form[action$='/keys'] button[type=submit]");
  const secret = (await admin.locator("#new-secret").textContent()).trim();
  assert.match(secret, /^wisp_/);
  await check(admin, "keys-created");
  const viaKey = await api("GET", `/v1/orgs/${org}/models`, secret);
  assert.ok(viaKey.some((m) => m.name === "iris"), "the new key reads the models");
  await admin.goto(`${base}/orgs/${org}/keys`);
  assert.ok(!(await admin.content()).includes(secret), "the secret is never shown again");
  const createdRow = admin.locator("tr", { hasText: "from-the-browser" });
  await createdRow.locator("button", { hasText: "Revoke" }).click();
  await admin.waitForURL(/done=revoked/);
  const revokedResponse = await fetch(`${base}/v1/orgs/${org}/models`, { headers: { authorization: `Bearer ${secret}` } });
  assert.equal(revokedResponse.status, 401, "a revoked key is refused");
  await check(admin, "keys-revoked");

  // --- The audit log has the page's changes, filtered by action.
  await admin.goto(`${base}/orgs/${org}/audit`);
  await check(admin, "audit");
  await admin.fill("#action", "apikey.revoked");
  await admin.click("form.filters button[type=submit]");
  await admin.waitForURL(/action=apikey.revoked/);
  assert.equal(await admin.locator("tr[data-action='apikey.revoked']").count(), 1);
  assert.equal(await admin.locator("tr[data-action]").count(), 1);
  await check(admin, "audit-filtered");

  // --- A viewer, invited from the members page, joins through the invitation link.
  await admin.goto(`${base}/orgs/${org}/members`);
  await check(admin, "members");
  await admin.fill("#invite-email", viewerEmail);
  await admin.selectOption("#invite-role", "viewer");
  await admin.click("form[action$='/members'] button[type=submit]");
  const link = (await admin.locator("#invitation-link").textContent()).trim();
  assert.match(link, /\/invitations\/accept\?token=/);
  await check(admin, "members-invited");
  await api("POST", "/v1/orgs", token, { slug: "other-org" });
  const viewer = await newPage();
  await viewer.goto(base + new URL(link).pathname + new URL(link).search);
  await check(viewer, "invitation");
  await viewer.fill("#password", viewerPassword);
  await viewer.fill("#confirm_password", viewerPassword);
  await viewer.click("main button[type=submit]");
  assert.match(viewer.url(), new RegExp(`/orgs/${org}$`));
  await check(viewer, "viewer-home");
  await viewer.goto(`${base}/orgs/${org}/models/iris`);
  await check(viewer, "viewer-model");
  for (const selector of ["form[action$='/deploy']", "form[action$='/rollback']", "form[data-upload]",
    "form[action$='/alias']", "form[hx-post]"]) {
    assert.equal(await viewer.locator(selector).count(), 0, `a viewer sees no ${selector}`);
  }
  await viewer.goto(`${base}/orgs/${org}/models`);
  assert.equal(await viewer.locator("form[method=post][action$='/models']").count(), 0);
  await viewer.goto(`${base}/orgs/${org}/models/iris/monitoring`);
  await viewer.locator(".chart[data-drawn=true] canvas").first().waitFor();
  await check(viewer, "viewer-monitoring");
  assert.equal(await viewer.locator("main form[method=post]").count(), 0, "monitoring has no write control");
  await viewer.goto(`${base}/orgs/${org}/members`);
  await check(viewer, "viewer-members");
  assert.equal(await viewer.locator(`nav a[href$='/batch']`).count(), 0, "no batch entry for a viewer");
  // The pages the API refuses a viewer are refused too (403 forbidden).
  for (const area of ["keys", "batch", "usage", "audit"]) {
    const url = `${base}/orgs/${org}/${area}`;
    expectedErrorUrls.add(url);
    const response = await viewer.goto(url);
    assert.equal(response.status(), 403, url);
    assert.equal((await viewer.locator("[data-error-code]").textContent()).trim(), "forbidden");
  }
  await viewer.goto(`${base}/orgs/${org}/experiments`);
  await viewer.click("tr[data-experiment=first] a");
  assert.equal(await viewer.locator("tr[data-run]").count(), 2, "a viewer reads the runs");
  assert.equal(await viewer.locator("main form[method=post]").count(), 0, "experiments have no write control");
  await check(viewer, "viewer-experiment-runs");
  assert.equal(await viewer.locator("main form[method=post]").count(), 0, "a viewer sees no member control");
  assert.equal(await viewer.locator(`nav a[href$='/keys']`).count(), 0, "no keys entry for a viewer");
  // A forged POST with the viewer's own valid token: refused by the server (forbidden).
  const viewerToken = await viewer.evaluate(() =>
    JSON.parse(document.body.getAttribute("hx-headers"))["x-csrf-token"]);
  const refused = await viewer.request.post(`${base}/orgs/${org}/models/iris/deploy`, {
    form: { _csrf: viewerToken, version: "1" }, maxRedirects: 0,
  });
  assert.equal(refused.status(), 403);
  assert.ok((await refused.text()).includes("forbidden"));
  // Another organisation answers exactly like a missing one.
  for (const url of [`/orgs/other-org`, `/orgs/other-org/models`, `/orgs/no-such-org/models`]) {
    expectedErrorUrls.add(base + url);
    const response = await viewer.goto(base + url);
    assert.equal(response.status(), 404, url);
  }
  await check(viewer, "viewer-other-org-404");

  // --- The admin's org switcher lists both organisations; sign-out ends the session.
  await admin.goto(`${base}/orgs/${org}`);
  await admin.click(".switcher summary");
  assert.equal(await admin.locator(".switcher li a").count(), 2);
  await check(admin, "org-switcher");
  await admin.goto(`${base}/account/password`);
  await check(admin, "password-change");
  await admin.click("form[action='/sign-out'] button");
  assert.match(admin.url(), /\/sign-in$/);
  await admin.goto(`${base}/orgs/${org}`);
  assert.match(admin.url(), /\/sign-in/);

  // Logging out everywhere through the API ends the viewer's dashboard session too.
  const viewerLogin = await api("POST", "/v1/auth/login", "", { email: viewerEmail, password: viewerPassword });
  await api("POST", "/v1/auth/logout-all", viewerLogin.access_token);
  await viewer.goto(`${base}/orgs/${org}`);
  assert.match(viewer.url(), /\/sign-in/);
} finally {
  await browser.close();
}

if (problems.length > 0) {
  console.error(`${problems.length} problem(s):\n` + problems.join("\n"));
  process.exit(1);
}
console.log(`dashboard browser test passed; ${shots} screenshots in ${artifacts}`);
