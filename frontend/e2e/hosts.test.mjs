// End-to-end test of Docker hosts (issue 17) in the web UI, against a running
// `anycode serve` and a real second Docker engine on this machine (scripts/test.sh
// starts one: its own data-root, exec-root, bridge, API on tcp://127.0.0.1:PORT).
//
// Settings → Docker hosts lists `local`; the Add form adds the second engine (its
// CPUs, memory and load bar show), a second add of the same name and an endpoint
// that does not answer show the API's code and message inline; the New Task
// dialog's Host picker offers "Automatic (most free)" and each host with its load;
// a task created there shows the host's badge in the list and the header, and the
// host's Remove is disabled (with why) while the task is on it; once the task is
// deleted, Remove removes the host.
//
//   ANYCODE_URL, ANYCODE_TOKEN, ANYCODE_E2E_REPO, ANYCODE_ARTIFACTS, CHROMIUM: as main-job.test.mjs
//   ANYCODE_E2E_DOCKER_HOST=tcp://127.0.0.1:PORT   the second engine (else skipped)
//   ANYCODE_E2E_REMOTE_TASK=0                      skip the task on the second engine
//                                                  (it copies the sandbox image there)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { BASE_URL, TOKEN, loginUrl, launchContext, shot, pageApi, ensureProject } from './common.mjs';

const REPO = process.env.ANYCODE_E2E_REPO;
const SECOND = process.env.ANYCODE_E2E_DOCKER_HOST;
const REMOTE_TASK = process.env.ANYCODE_E2E_REMOTE_TASK !== '0';
const missing = [!(BASE_URL && TOKEN) && 'ANYCODE_URL and ANYCODE_TOKEN', !REPO && 'ANYCODE_E2E_REPO', !SECOND && 'ANYCODE_E2E_DOCKER_HOST'].filter(Boolean);
const NAME = `box${process.pid % 1000}`;

let ctx;
let page;
const log = [];

before(async () => {
  if (missing.length) return;
  ctx = await launchContext('anycode-e2e-hosts-', { chromium, fs, os, path }, 1440, 1000);
  page = ctx.context.pages()[0] ?? (await ctx.context.newPage());
  page.on('console', (m) => {
    if (m.type() === 'error') log.push(`[console.error] ${m.text()}`);
  });
});

after(async () => {
  if (log.length) console.log(`browser log:\n  ${log.slice(-30).join('\n  ')}`);
  await ctx?.close();
});

const api = (method, p, body) => pageApi(page)(method, p, body);

test('hosts: add a second Docker engine in Settings, pick it for a task, see its badge, remove it', { timeout: 600_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(', ')}`);
    return;
  }
  await page.goto(await loginUrl());
  const project = await ensureProject(api, REPO, fs.realpathSync);
  let r;
  assert.ok(project?.id, 'the e2e repository is a project');
  await page.reload();

  // Settings → Docker hosts: `local` answers.
  await page.getByTestId('settings-button').click();
  const dialog = page.getByTestId('settings-dialog');
  const section = dialog.getByTestId('hosts-section');
  await section.getByTestId('host-local').waitFor();
  assert.equal(await section.getByTestId('host-local').getAttribute('data-status'), 'reachable');
  assert.match(await section.getByTestId('host-capacity-local').textContent(), /\d+ CPUs · [\d.]+ GiB/);
  assert.equal(await section.getByTestId('host-remove-local').count(), 0, '`local` cannot be removed');

  // Add the second engine with the form (keyboard: type, Enter submits).
  await section.getByTestId('host-name').fill(NAME);
  await section.getByTestId('host-endpoint').fill(SECOND);
  await section.getByTestId('host-max-running').fill('2');
  await section.getByTestId('host-max-running').press('Enter');
  const row = section.getByTestId(`host-${NAME}`);
  await row.waitFor({ timeout: 30_000 });
  assert.equal(await row.getAttribute('data-status'), 'reachable');
  assert.match(await row.textContent(), new RegExp(SECOND.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  assert.match(await section.getByTestId(`host-capacity-${NAME}`).textContent(), /\d+ CPUs · [\d.]+ GiB · 0 tasks · at most 2 running/);
  assert.match(await section.getByTestId(`host-load-${NAME}`).textContent(), /0\/2 running/);
  assert.equal(await section.getByTestId('host-name').inputValue(), '', 'the form is cleared');
  await row.scrollIntoViewIfNeeded();
  await shot(page, 'hosts-settings.png');

  // The API's errors, inline with their code: the same name again, an engine that does not answer.
  await section.getByTestId('host-name').fill(NAME);
  await section.getByTestId('host-endpoint').fill(SECOND);
  await section.getByTestId('host-add').click();
  await section.getByTestId('host-add-error').waitFor();
  assert.match(await section.getByTestId('host-add-error').textContent(), /ALREADY_EXISTS: .*exists already/);
  await section.getByTestId('host-name').fill('nobody');
  await section.getByTestId('host-endpoint').fill('tcp://127.0.0.1:9');
  await section.getByTestId('host-add').click();
  await page.waitForFunction(() => /HOST_UNREACHABLE: host nobody does not answer/.test(document.querySelector('[data-testid="host-add-error"]')?.textContent ?? ''));
  await section.getByTestId('host-add-error').scrollIntoViewIfNeeded();
  await shot(page, 'hosts-add-error.png');
  assert.equal(await section.getByTestId('host-nobody').count(), 0, 'nothing kept on error');
  await page.keyboard.press('Escape');

  // New task: the Host picker, Automatic by default, each host with its load.
  await page.getByTestId(`new-task-${project.id}`).click();
  const nt = page.getByTestId('new-task-dialog');
  const picker = nt.getByTestId('task-host');
  await picker.waitFor();
  const options = await picker.locator('option').allTextContents();
  assert.equal(options[0], 'Automatic (most free)');
  assert.equal(await picker.inputValue(), '', 'Automatic is the default');
  assert.ok(options.some((o) => /^local \(\d+ running, [\d.]+\/\d+ CPUs free\)$/.test(o)), options.join(' | '));
  assert.ok(options.some((o) => new RegExp(`^${NAME} \\(0/2 running, [\\d.]+/\\d+ CPUs free\\)$`).test(o)), options.join(' | '));
  const hosts = (await api('GET', '/api/hosts')).body;
  const box = hosts.find((h) => h.name === NAME);
  await nt.getByTestId('task-title').fill('On the second engine');
  await nt.getByTestId('task-agent').selectOption('shell');
  await picker.selectOption(box.id);
  assert.match(await nt.getByTestId('task-host-hint').textContent(), /nothing of this computer is mounted/);
  await picker.scrollIntoViewIfNeeded();
  await shot(page, 'hosts-new-task.png');

  if (!REMOTE_TASK) {
    await page.keyboard.press('Escape');
  } else {
    // Created there (the sandbox image is copied to it first): the badge in the list and the header.
    // The picked host goes in the request (Automatic could pick the same host: equal
    // CPUs, and ties go to the lower id).
    const sent = page.waitForRequest((q) => q.method() === 'POST' && q.url().endsWith(`/api/projects/${project.id}/tasks`));
    await nt.getByTestId('task-submit').click();
    assert.equal(JSON.parse((await sent).postData()).host, box.id, 'the picker sends the host');
    await page.getByTestId('task-view').waitFor({ timeout: 480_000 });
    const taskId = await page.getByTestId('task-view').getAttribute('data-task-id');
    const task = (await api('GET', `/api/tasks/${taskId}`)).body;
    assert.equal(task.host, box.id, 'the task runs on the picked host');
    await page.getByTestId(`host-badge-${taskId}`).first().waitFor();
    assert.equal(await page.locator(`[data-testid="host-badge-${taskId}"]`).count(), 2, 'in the list and in the header');
    assert.match(await page.getByTestId('task-view').getByTestId(`host-badge-${taskId}`).textContent(), new RegExp(NAME));
    await shot(page, 'hosts-task-badge.png');

    // Remove is disabled while the task is on the host, and says why.
    await page.getByTestId('settings-button').click();
    const remove = section.getByTestId(`host-remove-${NAME}`);
    await page.waitForFunction((n) => /1 task/.test(document.querySelector(`[data-testid="host-capacity-${n}"]`)?.textContent ?? ''), NAME);
    assert.equal(await remove.getAttribute('aria-disabled'), 'true');
    assert.match(await remove.getAttribute('title'), /1 task is on .*: delete it first/);
    // Playwright does not click an aria-disabled button: the keyboard does (twice: Remove asks once more).
    await remove.focus();
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    await page.waitForTimeout(500);
    assert.equal(await section.getByTestId(`host-${NAME}`).count(), 1, 'still there');
    await page.keyboard.press('Escape');
    r = await api('DELETE', `/api/tasks/${taskId}`);
    assert.equal(r.status, 204, JSON.stringify(r.body));
  }

  // Remove (asks once more), then it is gone.
  await page.getByTestId('settings-button').click();
  const remove = section.getByTestId(`host-remove-${NAME}`);
  await page.waitForFunction((n) => document.querySelector(`[data-testid="host-remove-${n}"]`)?.getAttribute('aria-disabled') === 'false', NAME);
  await remove.focus();
  await page.keyboard.press('Enter');
  assert.match(await remove.textContent(), /Really remove\?/);
  await page.keyboard.press('Enter');
  await section.getByTestId(`host-${NAME}`).waitFor({ state: 'detached' });
  r = await api('GET', '/api/hosts');
  assert.deepEqual(r.body.map((h) => h.name), ['local']);
});
