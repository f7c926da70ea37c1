// The web UI's chunks, against a running `anycode serve` (env as in main-job.test.mjs):
// the task list loads only the entry chunk (no xterm.js, no diff view, no dialogs);
// opening a task loads the task view and draws its terminal; Replay loads the
// recording player. Each chunk is served with a JavaScript or CSS content type.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { BASE_URL, TOKEN, api, launchContext, loginUrl, repoProjectId, shot } from './common.mjs';

const REPO = process.env.ANYCODE_E2E_REPO;
const missing = [!(BASE_URL && TOKEN) && 'ANYCODE_URL and ANYCODE_TOKEN', !REPO && 'ANYCODE_E2E_REPO'].filter(Boolean);

let close = async () => {};
after(() => close());

/** The file names (`assets/…`) of the scripts and style sheets `page` has fetched. */
const assetsOf = (page) =>
  page.evaluate(() =>
    performance
      .getEntriesByType('resource')
      .map((e) => new URL(e.name).pathname)
      .filter((p) => p.startsWith('/assets/'))
      .map((p) => p.slice(1)),
  );

test('chunks: the task list loads the entry only; a task, its terminal and Replay load theirs', { timeout: 180_000 }, async (t) => {
  if (missing.length) {
    t.skip(`set ${missing.join(', ')}`);
    return;
  }
  const pid = await repoProjectId(fs, REPO);
  const created = await api('POST', `/api/projects/${pid}/tasks`, { title: 'Chunks', agent: 'shell', branch: `anycode/e2e-chunks-${Date.now().toString(36)}` });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  const errors = [];
  try {
    const ctx = await launchContext('anycode-e2e-chunks-', { chromium, fs, os, path });
    close = ctx.close;
    const page = await ctx.context.newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(await loginUrl(), { waitUntil: 'domcontentloaded' });
    await page.waitForSelector(`[data-testid="task-item-${id}"]`, { timeout: 20_000 });
    await page.waitForSelector('.app[data-events="live"]', { timeout: 20_000 });

    // ---- the task list: the entry chunk and its style sheet, nothing else ----
    const idle = await assetsOf(page);
    t.diagnostic(`task list: ${idle.join(', ')}`);
    assert.deepEqual(
      idle.map((a) => a.replace(/-[\w-]{8}\.(js|css)$/, '.$1')).sort(),
      ['assets/index.css', 'assets/index.js'],
      `the task list loaded more than its entry chunk: ${idle.join(', ')}`,
    );
    // The entry itself stays small: xterm.js, the diff view and the dialogs are not in it
    // (everything in one file was 956 KB).
    const entryBytes = await page.evaluate(() =>
      performance.getEntriesByType('resource').filter((e) => /\/assets\/index-[\w-]+\.js$/.test(e.name)).map((e) => e.decodedBodySize)[0],
    );
    t.diagnostic(`entry chunk: ${entryBytes} bytes`);
    assert.ok(entryBytes > 0 && entryBytes < 300_000, `the entry chunk is ${entryBytes} bytes`);
    assert.ok(await page.evaluate(() => window.__anycode?.terminals instanceof Map), 'the terminals test hook exists before any terminal');

    // ---- a task: the task view's chunk, a terminal drawn ----
    await page.click(`[data-testid="task-item-${id}"]`);
    await page.waitForSelector('[data-testid="task-status"][data-status="running"]', { timeout: 60_000 });
    await page.waitForSelector('.terminal-pane.active .xterm-rows', { timeout: 20_000 });
    await page.click('.terminal-pane.active .xterm');
    await page.keyboard.type('echo chunk-$((6*7))\n');
    await page.waitForFunction(() => [...window.__anycode.terminals.values()].some((term) => {
      const b = term.buffer.active;
      for (let i = 0; i < b.length; i++) if (b.getLine(i)?.translateToString(true).trim() === 'chunk-42') return true;
      return false;
    }), null, { timeout: 20_000 });
    const task = await assetsOf(page);
    assert.ok(task.some((a) => /^assets\/TaskView-[\w-]+\.js$/.test(a)), `no task view chunk: ${task.join(', ')}`);
    assert.ok(!task.some((a) => a.startsWith('assets/RecordingDialog-')), 'the recording player loaded before Replay');
    await shot(page, 'chunks-1-task.png');

    // ---- Replay: the recording player's chunk and style sheet ----
    await page.click('[data-testid="task-recording"]');
    await page.waitForSelector('[data-testid="recording-player"] .ap-player', { timeout: 20_000 });
    const replay = await assetsOf(page);
    assert.ok(replay.some((a) => /^assets\/RecordingDialog-[\w-]+\.js$/.test(a)), `no recording player chunk: ${replay.join(', ')}`);
    assert.ok(replay.some((a) => /^assets\/RecordingDialog-[\w-]+\.css$/.test(a)), `no recording player style sheet: ${replay.join(', ')}`);
    await page.waitForTimeout(400); // the dialog's fade-in
    await shot(page, 'chunks-2-replay.png');

    // ---- every chunk fetched is served as JavaScript or CSS ----
    for (const a of replay) {
      const r = await fetch(`${BASE_URL}/${a}`);
      assert.equal(r.status, 200, a);
      assert.match(r.headers.get('content-type') ?? '', a.endsWith('.css') ? /^text\/css/ : /^(text|application)\/javascript/, a);
    }
    assert.deepEqual(errors, [], 'page errors');
  } finally {
    await api('DELETE', `/api/tasks/${id}`);
  }
});
