// Browser half of `anycode-bench --browser`: drives AnyCode's real web UI in headless
// Chromium (Debian's chromium + playwright-core) and measures, in the page:
// - xterm.js throughput through the whole path (container → AnyCode → WebSocket →
//   xterm.js) against the same bytes written into an xterm.js from memory;
// - keystroke echo round trips measured from the page (key → xterm's parser);
// - a long `yes` flood: the page's event-loop lag and Ctrl-C → prompt latency.
// Usage: node bench/browser.mjs <url-with-token> <task-id> <flood-mb> <flood-secs>
// Prints one JSON object on stdout.
import { chromium } from 'playwright-core';

const [url, taskId, floodMbArg, floodSecsArg] = process.argv.slice(2);
const floodBytes = Number(floodMbArg || 20) * 1_000_000;
const floodSecs = Number(floodSecsArg || 30);
// Without a GPU, headless Chromium emulates one with SwiftShader in its GPU process,
// which runs at a raised priority and took 160 % CPU during a flood on a 2-core
// machine, starving the renderer, Docker and the server alike (the whole path reached
// 0.10x of xterm.js from memory). Desktops raster on the GPU; the closest stand-in
// here is Chromium's CPU raster in the renderer: --disable-software-rasterizer.
// SWIFTSHADER=1 measures with the emulated GPU instead.
const gpuArgs = process.env.SWIFTSHADER === '1' ? [] : ['--disable-software-rasterizer'];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', ...gpuArgs],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const renderer = process.env.RENDERER || 'dom';
await page.goto(url);
// RENDERER=dom (the default), webgl (forced, even when emulated; SWIFTSHADER=1 gives
// headless Chromium an emulated GPU) or auto (what the UI picks by itself). The
// from-memory terminal always uses the DOM renderer.
await page.evaluate((r) => localStorage.setItem('anycode.renderer', r), renderer);
await page.goto(`${new URL(url).origin}/#/tasks/${taskId}`);
await page.waitForFunction(() => window.__anycode && window.__anycode.terminals.size > 0, null, { timeout: 30000 });

// Open an extra shell tab through the UI and wait for its prompt.
const before = await page.evaluate(() => [...window.__anycode.terminals.keys()]);
await page.locator('[data-testid="add-terminal"]').click();
await page.waitForFunction((b) => [...window.__anycode.terminals.keys()].some((k) => !b.includes(k)), before, { timeout: 30000 });
const termId = await page.evaluate((b) => [...window.__anycode.terminals.keys()].find((k) => !b.includes(k)), before);
const bufferHas = (id, needle) =>
  page.waitForFunction(
    ([id, needle]) => {
      const t = window.__anycode.terminals.get(id);
      const b = t.buffer.active;
      for (let i = Math.max(0, b.length - t.rows - 5); i < b.length; i++) {
        if (b.getLine(i)?.translateToString(true).includes(needle)) return true;
      }
      return false;
    },
    [id, needle],
    { timeout: 120000, polling: 'raf' },
  );
await bufferHas(termId, '$');

const result = {};

// 1. Throughput through the whole path.
// PROFILE=<prefix> saves V8 CPU profiles of the page during this flood and the
// from-memory one (<prefix>.path.cpuprofile, <prefix>.memory.cpuprofile: DevTools'
// Performance panel opens them) and prints their top self times on stderr. With
// TRACE=1 it records Chromium's trace instead and prints, per busy thread, the self
// time of its top events (layout, paint, mojo messages…) and the renderer's frame
// and event counts.
const profile = process.env.PROFILE ? await page.context().newCDPSession(page) : null;
let traceEvents = [];
async function startProfile() {
  if (!profile) return;
  if (process.env.TRACE) {
    traceEvents = [];
    profile.on('Tracing.dataCollected', (e) => traceEvents.push(...e.value));
    await profile.send('Tracing.start', { categories: 'devtools.timeline,blink,cc,v8,toplevel,renderer.scheduler', transferMode: 'ReportEvents' });
    return;
  }
  await profile.send('Profiler.enable');
  await profile.send('Profiler.setSamplingInterval', { interval: 200 });
  await profile.send('Profiler.start');
}
async function stopProfile(what) {
  if (!profile) return;
  if (process.env.TRACE) {
    const done = new Promise((r) => profile.once('Tracing.tracingComplete', r));
    await profile.send('Tracing.end');
    await done;
    profile.removeAllListeners('Tracing.dataCollected');
    const names = new Map();
    for (const e of traceEvents) if (e.ph === 'M' && e.name === 'thread_name') names.set(`${e.pid}:${e.tid}`, e.args.name);
    const byThread = new Map();
    for (const e of traceEvents) if (e.ph === 'X' && e.dur != null) {
      const k = `${e.pid}:${e.tid}`;
      if (!byThread.has(k)) byThread.set(k, []);
      byThread.get(k).push(e);
    }
    for (const [k, evs] of byThread) {
      evs.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
      const self = new Map(); const stack = []; let total = 0;
      for (const e of evs) {
        while (stack.length && stack[stack.length - 1].ts + stack[stack.length - 1].dur <= e.ts) stack.pop();
        if (stack.length) { const p = stack[stack.length - 1]; self.set(p.name, (self.get(p.name) || 0) - e.dur); } else total += e.dur;
        self.set(e.name, (self.get(e.name) || 0) + e.dur);
        stack.push(e);
      }
      if (total < 200000) continue;
      const counts = {};
      for (const e of evs) if (['ProxyMain::BeginMainFrame', 'Paint', 'LocalFrameView::performLayout', 'FunctionCall', 'Receive mojo message'].includes(e.name)) counts[e.name] = (counts[e.name] || 0) + 1;
      console.error(`counts ${JSON.stringify(counts)}`);
      console.error(`trace ${what} thread ${names.get(k) || k}: ${(total / 1000).toFixed(0)} ms in top-level events`);
      for (const [n, us] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 14)) console.error(`  ${(us / 1000).toFixed(0).padStart(7)} ms  ${n}`);
    }
    return;
  }
  const { profile: p } = await profile.send('Profiler.stop');
  (await import('node:fs')).writeFileSync(`${process.env.PROFILE}.${what}.cpuprofile`, JSON.stringify(p));
  const self = new Map();
  const dt = new Map();
  p.samples.forEach((id, i) => dt.set(id, (dt.get(id) || 0) + (p.timeDeltas[i] || 0)));
  let total = 0;
  for (const n of p.nodes) {
    const key = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').pop()}:${n.callFrame.lineNumber}`;
    const us = dt.get(n.id) || 0;
    total += us;
    self.set(key, (self.get(key) || 0) + us);
  }
  const top = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25);
  console.error(`page CPU profile, ${what} (${(total / 1000).toFixed(0)} ms sampled), top self times:`);
  for (const [k, us] of top) console.error(`  ${(us / 1000).toFixed(0).padStart(7)} ms  ${((100 * us) / total).toFixed(1).padStart(5)} %  ${k}`);
}
await startProfile();
const line = 'AnyCode flood line 0123456789 abcdefghijklmnopqrstuvwxyz';
// Timed in the page, like the from-memory run: from the command to the parse of the
// marker that follows the flood (checked after each parsed write, not per frame).
result.path_ms = await page.evaluate(([id, n, line]) => {
  const t = window.__anycode.terminals.get(id);
  return new Promise((resolve) => {
    const start = performance.now();
    const done = t.onWriteParsed(() => {
      const b = t.buffer.active;
      for (let i = Math.max(0, b.length - t.rows - 5); i < b.length; i++) {
        if (b.getLine(i)?.translateToString(true).includes('flood-42-done')) {
          done.dispose();
          resolve(performance.now() - start);
          return;
        }
      }
    });
    t.input(`yes '${line}' | head -c ${n}; echo flood-$((40+2))-done\r`, true);
  });
}, [termId, floodBytes, line]);
await stopProfile('path');

// The same bytes from memory into an xterm.js of the same size and options.
await startProfile();
result.memory_ms = await page.evaluate(async ([id, n, line]) => {
  const live = window.__anycode.terminals.get(id);
  const T = live.constructor;
  const el = document.createElement('div');
  el.style.cssText = `position:fixed;left:0;top:0;width:${live.element.clientWidth}px;height:${live.element.clientHeight}px;z-index:9999`;
  document.body.appendChild(el);
  const t = new T({ cols: live.cols, rows: live.rows, scrollback: live.options.scrollback, fontFamily: live.options.fontFamily, fontSize: live.options.fontSize });
  t.open(el);
  const unit = line + '\r\n';
  let text = unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
  // yes | head -c cuts mid-line; the TTY turns \n into \r\n as above.
  const bytes = new TextEncoder().encode(text);
  const start = performance.now();
  // 64 KiB writes, at most 4 MiB ahead of the parser (xterm.js discards writes
  // beyond 50 MB of pending data), so the parser never waits for data.
  const chunk = 64 * 1024;
  const ahead = 4 * 1024 * 1024;
  let parsed = 0;
  let wake = null;
  for (let off = 0; off < bytes.length; off += chunk) {
    while (off - parsed >= ahead) await new Promise((r) => (wake = r));
    const piece = bytes.subarray(off, off + chunk);
    t.write(piece, () => {
      parsed += piece.length;
      if (wake) {
        const w = wake;
        wake = null;
        w();
      }
    });
  }
  while (parsed < bytes.length) await new Promise((r) => (wake = r));
  const ms = performance.now() - start;
  t.dispose();
  el.remove();
  return ms;
}, [termId, floodBytes, line]);
await stopProfile('memory');

// 2. Echo round trips measured from the page: key in → echoed char parsed by xterm.
await page.evaluate((id) => window.__anycode.terminals.get(id).input('clear\r', true), termId);
await page.waitForTimeout(500);
result.echo_ms = await page.evaluate(async (id) => {
  const t = window.__anycode.terminals.get(id);
  const samples = [];
  for (let i = 0; i < 300; i++) {
    const key = i % 2 === 0 ? 'a' : '\x7f';
    const start = performance.now();
    await new Promise((resolve) => {
      const d = t.onWriteParsed(() => {
        d.dispose();
        resolve();
      });
      t.input(key, true);
    });
    samples.push(performance.now() - start);
  }
  t.input('\x15', true);
  return samples;
}, termId);

// 3. A long flood: page responsiveness and Ctrl-C latency.
await page.evaluate(() => {
  window.__lag = [];
  let last = performance.now();
  window.__lagTimer = setInterval(() => {
    const now = performance.now();
    window.__lag.push(now - last - 50);
    last = now;
  }, 50);
});
const ctrlC = [];
const end = Date.now() + floodSecs * 1000;
let round = 0;
while (Date.now() < end) {
  round++;
  await page.evaluate((id) => window.__anycode.terminals.get(id).input("yes 'long flood 0123456789 abcdefghijklmnopqrstuvwxyz'\r", true), termId);
  await page.waitForTimeout(Math.min(3000, Math.max(500, end - Date.now())));
  const start = await page.evaluate(([id, round]) => {
    const t = window.__anycode.terminals.get(id);
    t.input('\x03', true);
    t.input(`echo ctrlc-${round}-$((1+1))\r`, true);
    return performance.now();
  }, [termId, round]);
  await bufferHas(termId, `ctrlc-${round}-2`);
  ctrlC.push((await page.evaluate(() => performance.now())) - start);
}
result.ctrl_c_ms = ctrlC;
result.lag_ms = await page.evaluate(() => {
  clearInterval(window.__lagTimer);
  return window.__lag;
});
result.renderer = renderer;
// What xterm.js actually rendered with: the WebGL addon draws into canvases, and the
// UI falls back to the DOM renderer where WebGL is unavailable.
result.renderer_used = await page.evaluate(() => (document.querySelector('.xterm-screen canvas') ? 'webgl' : 'dom'));
result.raster = gpuArgs.length ? 'cpu' : 'swiftshader';
console.log(JSON.stringify(result));
await browser.close();
