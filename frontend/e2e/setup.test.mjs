// The dev container setup in the browser (issue 16): a task whose base commit has
// `.devcontainer/devcontainer.json` with a postCreateCommand shows a **Setup**
// terminal tab with the setup's live output; the setup ends `done`, then the agent
// (a shell here) starts. A branch of the test repository holds the file (made with
// git plumbing, so the owner's checkout is not touched). Screenshot of the tab.
//
//   ANYCODE_URL=http://127.0.0.1:7878 ANYCODE_TOKEN=…  ANYCODE_E2E_REPO=/path/to/repo
//   ANYCODE_ARTIFACTS=dir  CHROMIUM=/usr/bin/chromium
//
// Run: npm run e2e   (node --test e2e/)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { shot, BASE_URL, TOKEN, loginUrl, launchContext, api, repoProjectId } from './common.mjs';

const REPO = process.env.ANYCODE_E2E_REPO;
const missing = [!(BASE_URL && TOKEN) && 'ANYCODE_URL and ANYCODE_TOKEN', !REPO && 'ANYCODE_E2E_REPO'].filter(Boolean);
const DEVCONTAINER = JSON.stringify({
  postCreateCommand: 'echo preparing the project; sleep 2; echo SETUP-RAN-$((6*7))',
  forwardPorts: [5180],
});

let context;
let closeContext;

before(async () => {
  if (missing.length) return;
  ({ context, close: closeContext } = await launchContext('anycode-e2e-setup-', { chromium, fs, os, path }));
});

after(async () => {
  await closeContext?.();
});

/** A branch `name` of the test repository: its current HEAD plus a devcontainer.json (git plumbing, with an index of its own). */
function branchWithDevcontainer(name) {
  const index = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'anycode-e2e-index-')), 'index');
  const git = (args, input) =>
    execFileSync('git', ['-C', REPO, ...args], { input, env: { ...process.env, GIT_INDEX_FILE: index }, encoding: 'utf8' }).trim();
  const blob = git(['hash-object', '-w', '--stdin'], DEVCONTAINER);
  git(['read-tree', 'HEAD']);
  git(['update-index', '--add', '--cacheinfo', `100644,${blob},.devcontainer/devcontainer.json`]);
  const tree = git(['write-tree']);
  const commit = git(['-c', 'user.name=E2E', '-c', 'user.email=e2e@example.com', 'commit-tree', tree, '-p', 'HEAD', '-m', 'dev container'], '');
  git(['branch', '-f', name, commit]);
  fs.rmSync(path.dirname(index), { recursive: true, force: true });
}

const bufferText = (page, id) =>
  page.evaluate((tid) => {
    const term = window.__anycode?.terminals.get(tid);
    if (!term) return '';
    const b = term.buffer.active;
    const out = [];
    for (let i = 0; i < b.length; i++) out.push(b.getLine(i)?.translateToString(true) ?? '');
    return out.join('\n');
  }, id);

test('a dev container setup runs in its own terminal tab before the agent', { timeout: 180_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(' and ')}`);
    return;
  }
  const base = `e2e-setup-${Date.now().toString(36)}`;
  branchWithDevcontainer(base);
  const pid = await repoProjectId(fs, REPO);
  const created = await api('POST', `/api/projects/${pid}/tasks`, { title: 'E2E setup', agent: 'shell', base, branch: `anycode/${base}` });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  assert.ok(['pending', 'running'].includes(created.body.setup.status), JSON.stringify(created.body.setup));
  try {
    const page = await context.newPage();
    await page.goto(await loginUrl(), { waitUntil: 'domcontentloaded' });
    await page.waitForSelector('.app[data-events="live"]', { timeout: 20_000 });
    await page.click(`[data-testid="task-item-${id}"]`);

    // The Setup tab appears with the live output.
    const deadline = Date.now() + 60_000;
    let setupId = null;
    while (!setupId) {
      assert.ok(Date.now() < deadline, 'no setup terminal');
      const task = (await api('GET', `/api/tasks/${id}`)).body;
      setupId = task.terminals.find((x) => x.kind === 'setup')?.id ?? null;
      if (!setupId) await page.waitForTimeout(200);
    }
    const tab = page.getByTestId(`term-tab-${setupId}`);
    await tab.waitFor({ timeout: 20_000 });
    assert.match(await tab.textContent(), /Setup/);
    await tab.click();
    while (!(await bufferText(page, setupId)).includes('SETUP-RAN-42')) {
      assert.ok(Date.now() < deadline, `the setup's output never showed:\n${await bufferText(page, setupId)}`);
      await page.waitForTimeout(200);
    }
    const text = await bufferText(page, setupId);
    assert.match(text, /dev container setup/);
    assert.match(text, /preparing the project/);
    await shot(page, 'setup-1-tab.png');

    // Done, with exit code 0; the agent's shell runs after it.
    let setup;
    while ((setup = (await api('GET', `/api/tasks/${id}`)).body.setup).status !== 'done') {
      assert.ok(Date.now() < deadline, `setup: ${JSON.stringify(setup)}`);
      await page.waitForTimeout(200);
    }
    assert.equal(setup.exit_code, 0);
    const log = await fetch(`${BASE_URL}${setup.log_url}`, { headers: { Authorization: `Bearer ${TOKEN}` } }).then((r) => r.text());
    assert.match(log, /SETUP-RAN-42/);
    // forwardPorts are listed before anything listens on them.
    const ports = (await api('GET', `/api/tasks/${id}/ports`)).body;
    assert.ok(ports.some((p) => p.port === 5180 && p.forwarded && !p.listening), JSON.stringify(ports));
  } finally {
    await api('DELETE', `/api/tasks/${id}`);
    execFileSync('git', ['-C', REPO, 'branch', '-D', base]);
  }
});
