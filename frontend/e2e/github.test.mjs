// End-to-end test of the GitHub flow in a real browser, against a running
// `anycode serve` whose ANYCODE_GITHUB_API points at a loopback GitHub stand-in.
// Driven by crates/cli/tests/github.rs (`browser_import_task_and_pull_request`),
// which starts both and scripts the stand-in's answers.
//
//   ANYCODE_E2E_GITHUB=1, ANYCODE_URL (the server's base URL), ANYCODE_TOKEN (its access token), ANYCODE_GH_TOKEN
//   (a token the stand-in accepts), ANYCODE_ARTIFACTS (screenshots), CHROMIUM.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { BASE_URL, TOKEN, loginUrl } from './common.mjs';

const ON = process.env.ANYCODE_E2E_GITHUB === '1';
const URL_WITH_TOKEN = BASE_URL && TOKEN ? BASE_URL : '';
const GH_TOKEN = process.env.ANYCODE_GH_TOKEN;
const ARTIFACTS = path.resolve(process.env.ANYCODE_ARTIFACTS || 'e2e/artifacts');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

let context;
let page;
let dir;

before(async () => {
  if (!ON) return;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'anycode-e2e-gh-'));
  context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'],
    viewport: { width: 1440, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
});

after(async () => {
  if (context) await context.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });

test('import from GitHub, radar, pull request', { skip: !ON && 'run by crates/cli/tests/github.rs' }, async () => {
  await page.goto(await loginUrl(), { waitUntil: 'domcontentloaded' });
  await page.getByTestId('add-project').click();
  await page.getByTestId('project-mode-github').click();
  await page.getByTestId('project-url').fill('octo/hello');
  // No token yet: save one (checked with GitHub), then the repository picker appears.
  await page.getByTestId('gh-token-input').fill(GH_TOKEN);
  await page.getByTestId('gh-token-save').click();
  await page.getByTestId('repo-picker').waitFor({ timeout: 20_000 });
  assert.match(await page.getByTestId('gh-token').textContent(), /octocat/);
  assert.match(await page.getByTestId('repo-picker').textContent(), /octo\/hello/);
  await shot('github-1-add-dialog');
  await page.getByTestId('project-submit').click();
  await page.getByTestId('add-project-dialog').waitFor({ state: 'detached', timeout: 20_000 });

  // The import becomes a ready project with a "+ Task" button.
  const newTask = page.locator('[data-testid^="new-task-"]');
  await newTask.first().waitFor({ timeout: 60_000 });
  await shot('github-2-imported');
  await newTask.first().click();
  // Start from a GitHub issue: the picker lists the open issues (not pull
  // requests), and picking one fills the title.
  const picker = page.getByTestId('task-issue');
  await picker.waitFor({ timeout: 20_000 });
  const options = await picker.locator('option').allTextContents();
  assert.deepEqual(options, ['None', '#12 Add a feature']);
  await picker.selectOption('12');
  assert.equal(await page.getByTestId('task-title').inputValue(), 'Add a feature');
  await shot('github-2b-issue-picked');
  await page.getByTestId('task-agent').selectOption('shell');
  await page.getByTestId('task-branch').fill('anycode/add-a-feature');
  await page.getByTestId('task-submit').click();
  await page.getByTestId('new-task-dialog').waitFor({ state: 'detached', timeout: 180_000 });

  // The task's GitHub bar: the radar says it merges cleanly; open a pull request.
  await page.getByTestId('radar').waitFor({ timeout: 20_000 });
  assert.equal(await page.getByTestId('radar').getAttribute('data-clean'), 'true');
  await page.getByTestId('gh-create-pr').click();
  await page.getByTestId('gh-pr-link').waitFor({ timeout: 30_000 });
  assert.match(await page.getByTestId('gh-pr-link').textContent(), /#7 open/);
  assert.equal(await page.getByTestId('gh-pr-link').getAttribute('href'), 'https://github.com/octo/hello/pull/7');
  await shot('github-3-pull-request');
});
