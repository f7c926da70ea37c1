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

// The same bytes from memory into an xterm.js of the same size and options.
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
