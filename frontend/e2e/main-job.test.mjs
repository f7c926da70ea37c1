// End-to-end test of the main job, against a running `anycode serve`:
// add a project, create a shell task, run commands in its terminal, see the change
// in the Changes panel, commit it.
//
//   ANYCODE_URL=http://127.0.0.1:7878 ANYCODE_TOKEN=…  (the server; the token from its data dir's `token` file)
//   ANYCODE_E2E_REPO=/path/to/a/git/repo         (added as a project)
//   ANYCODE_ARTIFACTS=dir                         (screenshots; default e2e/artifacts)
//   ANYCODE_E2E_KEEP=1                            (keep the task instead of deleting it at the end)
//   CHROMIUM=/usr/bin/chromium                    (browser binary)
//
// Run: npm run e2e   (node --test e2e/)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, shot as shotOf, BASE_URL, TOKEN, loginUrl } from './common.mjs';

const URL_WITH_TOKEN = BASE_URL && TOKEN ? BASE_URL : '';
const REPO = process.env.ANYCODE_E2E_REPO;
const KEEP = process.env.ANYCODE_E2E_KEEP === '1';


const missing = [!URL_WITH_TOKEN && 'ANYCODE_URL and ANYCODE_TOKEN', !REPO && 'ANYCODE_E2E_REPO'].filter(Boolean);

let context;
let page;
let userDataDir;
const browserLog = [];

before(async () => {
  if (missing.length) return;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'anycode-e2e-'));
  // A fresh --user-data-dir; Playwright passes it to Chromium itself.
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1440, height: 900 },
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') browserLog.push(`[console.${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => browserLog.push(`[pageerror] ${e.message}`));
  page.on('requestfailed', (r) => browserLog.push(`[requestfailed] ${r.method()} ${r.url()} ${r.failure()?.errorText ?? ''}`));
});

after(async () => {
  if (browserLog.length) console.log(`browser log:\n  ${browserLog.slice(-40).join('\n  ')}`);
  await context?.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
});

const shot = (name, opts = {}) => shotOf(page, name, opts);

/** Lines of the xterm buffer of terminal `id` (window.__anycode test hook). */
const bufferLines = (id) =>
  page.evaluate((tid) => {
    const term = window.__anycode?.terminals.get(tid);
    if (!term) return null;
    const b = term.buffer.active;
    const out = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
    return out;
  }, id);

async function waitForBuffer(id, predicate, what, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  let lines = null;
  while (Date.now() < deadline) {
    lines = await bufferLines(id);
    if (lines && predicate(lines)) return lines;
    await page.waitForTimeout(200);
  }
  const tail = (lines ?? []).filter((l) => l.trim()).slice(-15).join('\n    ');
  const state = await page.getByTestId(`terminal-${id}`).getAttribute('data-state').catch(() => null);
  const status = await page.getByTestId('task-status').textContent().catch(() => null);
  throw new Error(
    `timed out waiting for ${what} in terminal ${id} (socket: ${state}, task: ${status}); last lines:\n    ${tail}`,
  );
}

/** Type into the focused xterm (its hidden textarea receives the key events). */
async function typeInTerminal(termId, text) {
  await page.locator(`[data-testid="terminal-${termId}"] .xterm`).click();
  await page.keyboard.type(text, { delay: 15 });
  await page.keyboard.press('Enter');
}

const apiGet = (p) =>
  page.evaluate(async (u) => {
    const r = await fetch(u, { credentials: 'same-origin' });
    if (!r.ok) throw new Error(`${u}: ${r.status} ${await r.text()}`);
    return r.json();
  }, p);

test('main job: project → shell task → terminal → diff → commit', { timeout: 600_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(' and ')} (e.g. ANYCODE_URL=http://127.0.0.1:7878 ANYCODE_TOKEN=… ANYCODE_E2E_REPO=/path/to/repo)`);
    return;
  }

  // 1. Open a one-time login link: the code becomes a session cookie, then we land on `/`.
  await page.goto(await loginUrl(), { waitUntil: 'domcontentloaded' });
  await page.getByTestId('add-project').waitFor({ timeout: 20_000 });
  assert.equal(await page.getByTestId('unauthorized').count(), 0, 'the login link should sign us in');

  // 2. Add the project by path (if an earlier run already added it, reuse it).
  const repoReal = fs.realpathSync(REPO);
  const findProject = async () =>
    (await apiGet('/api/projects')).find((p) => {
      try {
        return p.path === REPO || fs.realpathSync(p.path) === repoReal;
      } catch {
        return p.path === REPO;
      }
    });
  let project = await findProject();
  if (!project) {
    await page.getByTestId('add-project').click();
    await page.getByTestId('project-path').fill(REPO);
    await page.getByTestId('project-submit').click();
    await page.getByTestId('add-project-dialog').waitFor({ state: 'detached', timeout: 20_000 }).catch(async (e) => {
      const msg = await page.locator('[data-testid="add-project-dialog"] .inline-error').textContent().catch(() => null);
      throw new Error(`adding the project failed: ${msg ?? e.message}`);
    });
    project = await findProject();
  }
  assert.ok(project, `project for ${REPO} should be listed by /api/projects`);
  t.diagnostic(`project ${project.id} (${project.path})`);

  // 3. New task: agent shell, title "E2E hello" (a unique branch so reruns work).
  await page.getByTestId(`new-task-${project.id}`).click();
  await page.getByTestId('task-title').fill('E2E hello');
  await page.getByTestId('task-agent').selectOption('shell');
  await page.waitForFunction(() => {
    const s = document.querySelector('[data-testid="task-base"]');
    return s && !s.disabled && s.value;
  }, null, { timeout: 20_000 }).catch(() => {}); // branches list is optional for the server default
  const branch = `anycode/e2e-hello-${Date.now().toString(36)}`;
  await page.getByTestId('task-branch').fill(branch);
  await page.getByTestId('task-submit').click();
  // Creating starts a container: allow time (first run may build/pull the image).
  await page.getByTestId('new-task-dialog').waitFor({ state: 'detached', timeout: 180_000 }).catch(async (e) => {
    const msg = await page.locator('[data-testid="new-task-dialog"] .inline-error').textContent().catch(() => null);
    throw new Error(`creating the task failed: ${msg ?? e.message}`);
  });
  await page.waitForFunction(() => /^#\/tasks\/[^/]+/.test(location.hash), null, { timeout: 10_000 });
  const taskId = decodeURIComponent((await page.evaluate(() => location.hash)).replace(/^#\/tasks\//, ''));
  t.diagnostic(`task ${taskId} on ${branch}`);
  await page.getByTestId(`task-item-${taskId}`).waitFor({ timeout: 10_000 });

  // 4. The agent terminal: wait until its socket is open and it has printed something (the prompt).
  const tab = page.locator('[data-testid^="term-tab-"]').first();
  await tab.waitFor({ timeout: 120_000 });
  const termId = (await tab.getAttribute('data-testid')).replace(/^term-tab-/, '');
  const pane = page.getByTestId(`terminal-${termId}`);
  await pane.waitFor({ state: 'visible', timeout: 30_000 });
  await page.waitForFunction(
    (id) => document.querySelector(`[data-testid="terminal-${id}"]`)?.getAttribute('data-state') === 'open',
    termId,
    { timeout: 60_000 },
  );
  // Usually a prompt; not fatal if the shell prints nothing before its first input.
  await waitForBuffer(termId, (l) => l.some((x) => x.trim() !== ''), 'the first output (prompt)', 30_000).catch((e) =>
    t.diagnostic(e.message),
  );

  // 5. Type a command; the shell evaluates it.
  await typeInTerminal(termId, 'echo $((6*7))');
  await waitForBuffer(termId, (l) => l.some((x) => /^\s*42\s*$/.test(x)), 'a line "42"');
  await shot('1-task-terminal.png');

  // 6. Make a change in the worktree.
  await typeInTerminal(termId, 'echo hi-from-e2e > e2e.txt');
  // Let the command run (its prompt comes back), then check the buffer has no error.
  await page.waitForTimeout(500);

  // 7. Changes panel: refresh until e2e.txt appears as added.
  const row = page.getByTestId('diff-file-e2e.txt');
  const deadline = Date.now() + 30_000;
  while (!(await row.isVisible())) {
    if (Date.now() > deadline) {
      const tail = ((await bufferLines(termId)) ?? []).filter((l) => l.trim()).slice(-8).join('\n    ');
      const status = await page.getByTestId('task-status').textContent().catch(() => null);
      throw new Error(`e2e.txt did not appear in the Changes panel (task: ${status}); terminal:\n    ${tail}`);
    }
    await page.getByTestId('diff-refresh').click();
    await page.waitForTimeout(1000);
  }
  assert.equal(await row.getAttribute('data-status'), 'added', 'e2e.txt should be an added file');
  await row.click(); // expand its patch
  await page.locator('.diff-file.open .diff-code-insert', { hasText: 'hi-from-e2e' }).first().waitFor({ timeout: 10_000 });
  await shot('2-diff.png');

  // 8. Commit.
  await page.getByTestId('commit-message').fill('E2E: add e2e.txt');
  const commitBtn = page.getByTestId('commit-button');
  assert.equal(await commitBtn.isEnabled(), true, 'Commit should be enabled with files and a message');
  await commitBtn.click();
  const result = page.getByTestId('commit-result');
  await result.waitFor({ timeout: 30_000 }).catch(async (e) => {
    const toasts = await page.getByTestId('toast').allTextContents().catch(() => []);
    throw new Error(`no "Committed" after Commit${toasts.length ? `; the UI said: ${toasts.join(' | ')}` : ''} (${e.message})`);
  });
  const text = (await result.textContent()) ?? '';
  assert.match(text, /Committed\s+[0-9a-f]{7}/, `commit result: ${text}`);
  t.diagnostic(text.trim());
  await shot('3-after-commit.png');

  // 9. Phone viewport of the task view.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(600);
  await shot('4-phone-task.png');
  await shot('4-phone-task-full.png', { fullPage: true });
  await page.setViewportSize({ width: 1440, height: 900 });

  // 10. Clean up: delete the task through the UI (the branch is kept).
  if (!KEEP) {
    await page.getByTestId('task-delete').click();
    await page.getByTestId('confirm-ok').click();
    await page.getByTestId(`task-item-${taskId}`).waitFor({ state: 'detached', timeout: 60_000 });
  }
});
