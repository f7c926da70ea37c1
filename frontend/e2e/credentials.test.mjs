// End-to-end test of credentials (issue 5), against a running `anycode serve` that
// has a Secret Service and a Claude Code login expiring in about 40 minutes
// (scripts/test.sh sets both up): the Credentials dialog shows where each credential
// stands and saves/removes a key in the OS keyring without ever showing it; the New
// Task dialog says what the agent will get; the task view warns that the token
// expires within the hour.
//
//   ANYCODE_URL, ANYCODE_E2E_REPO, ANYCODE_ARTIFACTS, CHROMIUM: as main-job.test.mjs
//   ANYCODE_E2E_CLAUDE_LOGIN=1   the server's Claude Code login is there (else skipped)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { BASE_URL, TOKEN, loginUrl, pageApi, ensureProject } from './common.mjs';

const URL_WITH_TOKEN = BASE_URL && TOKEN ? BASE_URL : '';
const REPO = process.env.ANYCODE_E2E_REPO;
const ARTIFACTS = path.resolve(
  process.env.ANYCODE_ARTIFACTS || path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts'),
);
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const missing = [!URL_WITH_TOKEN && 'ANYCODE_URL and ANYCODE_TOKEN', !REPO && 'ANYCODE_E2E_REPO', !process.env.ANYCODE_E2E_CLAUDE_LOGIN && 'ANYCODE_E2E_CLAUDE_LOGIN'].filter(Boolean);
const KEY = 'sk-ant-api03-E2E-KEY-DO-NOT-SHOW-0123456789-wxyz';

let context;
let page;
let userDataDir;

before(async () => {
  if (missing.length) return;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anycode-e2e-cred-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-quic'],
    viewport: { width: 1440, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  await context?.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

const shot = async (name) => {
  const file = path.join(ARTIFACTS, name);
  await page.screenshot({ path: file });
  console.log(`screenshot: ${file}`);
};

const api = (method, p, body) => pageApi(page)(method, p, body);

test('credentials: status, save and remove a key, the task credential and its expiry warning', { timeout: 300_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(', ')}`);
    return;
  }
  await page.goto(await loginUrl());
  const project = await ensureProject(api, REPO, fs.realpathSync);
  assert.ok(project?.id, 'the e2e repository is a project');
  await page.reload();

  // Credentials dialog: the Claude login expiring soon, nothing else.
  await page.getByTestId('open-credentials').click();
  const dialog = page.getByTestId('credentials-dialog');
  await dialog.getByTestId('credentials-list').waitFor();
  const claude = dialog.getByTestId('cred-claude');
  assert.equal(await claude.getAttribute('data-state'), 'expiring');
  assert.match(await claude.textContent(), /max.*Claude Code login.*expires in (3\d|40) min/s);
  assert.equal(await dialog.getByTestId('cred-anthropic').getAttribute('data-state'), 'missing');
  assert.equal(await dialog.getByTestId('keyring-problem').count(), 0, 'the Secret Service answered');

  // Save an API key: only its display form ever shows.
  await dialog.getByTestId('cred-name').selectOption('anthropic-api-key');
  await dialog.getByTestId('cred-value').fill(KEY);
  await dialog.getByTestId('cred-save').click();
  await dialog.getByTestId('cred-saved').waitFor();
  assert.match(await dialog.getByTestId('cred-saved').textContent(), /sk-…wxyz/);
  await page.waitForFunction(() => document.querySelector('[data-testid="cred-anthropic"]')?.getAttribute('data-state') === 'ok');
  assert.match(await dialog.getByTestId('cred-anthropic').textContent(), /sk-…wxyz.*AnyCode keyring/s);
  assert.equal(await dialog.getByTestId('cred-value').inputValue(), '', 'the field is cleared');
  assert.ok(!(await page.content()).includes('E2E-KEY-DO-NOT-SHOW'), 'the key is nowhere in the page');
  await shot('credentials-dialog.png');
  // Remove it again.
  await dialog.getByTestId('cred-remove-anthropic').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="cred-anthropic"]')?.getAttribute('data-state') === 'missing');
  await page.keyboard.press('Escape');

  // New Task: the default credential of a claude task and what it is.
  await page.getByTestId(`new-task-${project.id}`).click();
  const nt = page.getByTestId('new-task-dialog');
  await nt.getByTestId('task-title').fill('Credentials e2e');
  await nt.getByTestId('task-agent').selectOption('claude');
  await page.waitForFunction(() => /CLAUDE_CODE_OAUTH_TOKEN/.test(document.querySelector('[data-testid="task-credential-hint"]')?.textContent ?? ''));
  assert.match(await nt.getByTestId('task-credential').locator('option').first().textContent(), /Default \(subscription\)/);
  assert.match(await nt.getByTestId('task-credential-hint').textContent(), /max.*expires in/);
  await shot('new-task-credential.png');
  await nt.getByTestId('task-submit').click();

  // The task view: the subscription chip and the expiry warning with a restart button.
  const warning = page.getByTestId('credential-warning');
  await warning.waitFor({ timeout: 120_000 });
  assert.match(await warning.getAttribute('data-warning'), /^expires in \d+ min$/);
  assert.match(await warning.textContent(), /Run `claude` on this machine/);
  assert.equal(await page.getByTestId('task-credential').textContent(), 'subscription');
  await shot('task-credential-warning.png');

  // Clean up: delete the task through the API.
  const taskId = await page.getByTestId('task-view').getAttribute('data-task-id');
  const del = await api('DELETE', `/api/tasks/${taskId}`);
  assert.equal(del.status, 204);
});
