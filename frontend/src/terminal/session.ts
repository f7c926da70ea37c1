// One terminal tab: an xterm instance plus its WebSocket to /ws/terminals/{id}.
// Loaded with the task view (a chunk of its own): the registry and the settings every
// terminal shares live in registry.ts, which the page loads at start.
//
// Sessions live in a registry outside React, so switching tabs (or tasks) never
// disposes the xterm: its element is simply moved/hidden, and switching back is instant.

import { Terminal, type ITheme } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import type { WebglAddon } from '@xterm/addon-webgl';
import { terminalWsUrl } from '../api';
import { matchShortcut } from '../shortcuts';
import {
  EAGER_OPEN,
  getFontSize,
  getScrollback,
  isReadOnly,
  markWebglBroken,
  sessionOf,
  testRegistry,
  webglUnusable,
  type RegisteredSession,
} from './registry';

const ACK_THRESHOLD = 32768;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 5000;

export const TERMINAL_THEME: ITheme = {
  background: '#0b0e14',
  foreground: '#d6deeb',
  cursor: '#a78bfa',
  cursorAccent: '#0b0e14',
  selectionBackground: '#3b3f5c',
  black: '#1b1f27',
  red: '#f0737a',
  green: '#8fd16f',
  yellow: '#e6c07b',
  blue: '#6cb6ff',
  magenta: '#c792ea',
  cyan: '#56d4dd',
  white: '#c8d0dc',
  brightBlack: '#5c6773',
  brightRed: '#ff8f95',
  brightGreen: '#a9e58b',
  brightYellow: '#ffd68a',
  brightBlue: '#8cc8ff',
  brightMagenta: '#dcb0ff',
  brightCyan: '#7ee8f0',
  brightWhite: '#f5f7fa',
};

export const TERMINAL_FONT =
  '"JetBrains Mono", "Fira Code", "Cascadia Code", "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace';

export type ConnState = 'connecting' | 'open' | 'reconnecting' | 'exited' | 'closed';

export interface SessionSnapshot {
  state: ConnState;
  exitCode: number | null | undefined;
  title: string | null;
}

export class TermSession implements RegisteredSession {
  readonly term: Terminal;
  readonly element: HTMLDivElement;
  private fit = new FitAddon();
  private webgl: WebglAddon | null = null;
  private ws: WebSocket | null = null;
  private generation = 0;
  private opened = false;
  private visible = false;
  private disposed = false;
  private wantConnect = true;
  private backoff = BACKOFF_MIN_MS;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private unacked = 0;
  private pendingWrites = 0;
  private encoder = new TextEncoder();
  private listeners = new Set<() => void>();
  private snap: SessionSnapshot = { state: 'connecting', exitCode: undefined, title: null };
  private fitFrame = 0;

  constructor(readonly id: string) {
    this.term = new Terminal({
      fontFamily: TERMINAL_FONT,
      fontSize: getFontSize(),
      disableStdin: isReadOnly(),
      lineHeight: 1.15,
      scrollback: getScrollback(),
      cursorBlink: true,
      theme: TERMINAL_THEME,
      allowProposedApi: false,
      macOptionIsMeta: true,
      convertEol: false,
    });
    this.term.loadAddon(this.fit);
    this.element = document.createElement('div');
    this.element.className = 'xterm-host';

    // Let app shortcuts (new shell / new task) through instead of sending them to the pty.
    this.term.attachCustomKeyEventHandler((ev) => matchShortcut(ev) === null);
    this.term.onData((d) => this.send(this.encoder.encode(d)));
    this.term.onBinary((d) => {
      const bytes = new Uint8Array(d.length);
      for (let i = 0; i < d.length; i++) bytes[i] = d.charCodeAt(i) & 0xff;
      this.send(bytes);
    });
    // A watch-only device never resizes the desk's terminal (the server drops it too).
    this.term.onResize(({ cols, rows }) => {
      if (!isReadOnly()) this.sendJson({ type: 'resize', cols, rows });
    });

    testRegistry().set(id, this.term);
    this.installTouchScroll();
    this.connect();
  }

  /**
   * Touch screens: a vertical swipe on the terminal scrolls its scrollback (xterm.js
   * does not do this itself). At either end of the scrollback the swipe is left to
   * the page, so the page still scrolls past the terminal.
   */
  private installTouchScroll() {
    const el = this.element;
    let lastY: number | null = null;
    let acc = 0;
    el.addEventListener(
      'touchstart',
      (e) => {
        lastY = e.touches.length === 1 ? e.touches[0].clientY : null;
        acc = 0;
      },
      { passive: true, capture: true },
    );
    el.addEventListener(
      'touchmove',
      (e) => {
        if (lastY === null || e.touches.length !== 1) return;
        const y = e.touches[0].clientY;
        acc += y - lastY;
        lastY = y;
        const lineHeight = el.clientHeight / Math.max(1, this.term.rows);
        const lines = Math.trunc(acc / lineHeight);
        if (lines === 0) return;
        acc -= lines * lineHeight;
        const buf = this.term.buffer.active;
        const before = buf.viewportY;
        this.term.scrollLines(-lines);
        if (buf.viewportY !== before && e.cancelable) e.preventDefault();
      },
      { passive: false, capture: true },
    );
    const end = () => {
      lastY = null;
    };
    el.addEventListener('touchend', end, { passive: true, capture: true });
    el.addEventListener('touchcancel', end, { passive: true, capture: true });
  }

  // ---- observable state for React ----

  subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  };

  getSnapshot = (): SessionSnapshot => this.snap;

  private update(patch: Partial<SessionSnapshot>) {
    this.snap = { ...this.snap, ...patch };
    this.listeners.forEach((fn) => fn());
  }

  // ---- DOM / visibility ----

  /**
   * Put the terminal into `host` (moving it if it lived elsewhere). xterm.js draws it
   * only once it is first shown (see `setVisible`): a hidden tab keeps its buffer and
   * its connection, but no renderer, DOM rows or glyph atlas.
   */
  mount(host: HTMLElement) {
    if (this.element.parentElement !== host) host.appendChild(this.element);
    if (EAGER_OPEN) this.open();
  }

  private open() {
    if (this.opened || this.disposed || !this.element.parentElement) return;
    this.term.open(this.element);
    this.opened = true;
  }

  unmount(host: HTMLElement) {
    if (this.element.parentElement === host) host.removeChild(this.element);
    this.setVisible(false);
  }

  /** Only the visible terminal holds a WebGL context. */
  setVisible(v: boolean) {
    if (this.visible === v) return;
    this.visible = v;
    if (v) {
      this.open();
      this.enableWebgl();
      this.scheduleFit();
    } else {
      this.disableWebgl();
    }
  }

  focus() {
    this.term.focus();
  }

  scheduleFit() {
    if (this.fitFrame) cancelAnimationFrame(this.fitFrame);
    this.fitFrame = requestAnimationFrame(() => {
      this.fitFrame = 0;
      this.fitNow();
    });
  }

  private fitNow() {
    if (!this.opened || this.disposed || !this.visible) return;
    const el = this.element;
    if (el.clientWidth < 10 || el.clientHeight < 10) return; // hidden
    try {
      this.fit.fit(); // fires onResize (→ resize message) only when the size changed
    } catch {
      /* renderer not ready yet */
    }
  }

  private enableWebgl() {
    if (this.webgl || !this.opened || webglUnusable()) return;
    // The addon is a chunk of its own, loaded by the first terminal that uses it
    // (never where the DOM renderer is the rule, e.g. the desktop app on Linux).
    loadWebgl().then(
      (Addon) => {
        // Shown still, and not given a renderer meanwhile?
        if (this.webgl || !this.visible || this.disposed || webglUnusable()) return;
        this.attachWebgl(Addon);
        this.scheduleFit(); // the renderers' cells may differ by a pixel
      },
      (e) => console.info('anycode: the WebGL renderer did not load, using the DOM renderer', e),
    );
  }

  private attachWebgl(Addon: typeof WebglAddon) {
    try {
      const addon = new Addon();
      addon.onContextLoss(() => {
        // Fall back to the DOM renderer; try again on the next show.
        if (this.webgl === addon) this.disableWebgl();
      });
      this.term.loadAddon(addon);
      this.webgl = addon;
    } catch (e) {
      markWebglBroken();
      console.info('anycode: WebGL renderer unavailable, using the DOM renderer', e);
    }
  }

  private disableWebgl() {
    const a = this.webgl;
    this.webgl = null;
    if (a) {
      try {
        a.dispose();
      } catch {
        /* already gone */
      }
    }
  }

  // ---- connection ----

  /** Whether the task is in a state where its processes may run (reconnect only then). */
  setConnectAllowed(allowed: boolean) {
    const was = this.wantConnect;
    this.wantConnect = allowed;
    if (!allowed) {
      if (this.reconnectTimer) {
        clearTimeout(this.reconnectTimer);
        this.reconnectTimer = null;
        this.update({ state: 'closed' });
      }
      return;
    }
    // The task (re)started: connect again, even after an exit.
    if (!was && !this.ws && !this.reconnectTimer) {
      this.backoff = BACKOFF_MIN_MS;
      this.connect();
    }
  }

  /** Reconnect after an exit (e.g. the task was started again). */
  revive() {
    if (this.ws || this.disposed) return;
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.backoff = BACKOFF_MIN_MS;
    this.connect();
  }

  private connect() {
    if (this.disposed) return;
    this.reconnectTimer = null;
    const gen = ++this.generation;
    const first = gen === 1;
    this.update({ state: first ? 'connecting' : 'reconnecting' });
    let ws: WebSocket;
    try {
      ws = new WebSocket(terminalWsUrl(this.id));
    } catch {
      this.scheduleReconnect();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    let gotExit = false;
    let resetDone = first;

    ws.onopen = () => {
      if (gen !== this.generation) return;
      this.backoff = BACKOFF_MIN_MS;
      this.unacked = 0;
      this.pendingWrites = 0;
      if (!resetDone) {
        // The server replays the scrollback on every connection.
        this.term.reset();
        resetDone = true;
      }
      this.update({ state: 'open', exitCode: undefined });
      // Announce flow control: from now on the server counts what we have not acked.
      this.sendJson({ type: 'ack', bytes: 0 });
      if (!isReadOnly()) this.sendJson({ type: 'resize', cols: this.term.cols, rows: this.term.rows });
      this.scheduleFit();
    };

    ws.onmessage = (ev) => {
      if (gen !== this.generation) return;
      if (typeof ev.data === 'string') {
        this.onControl(ev.data, () => (gotExit = true));
        return;
      }
      const chunk = new Uint8Array(ev.data as ArrayBuffer);
      const len = chunk.byteLength;
      this.pendingWrites++;
      this.term.write(chunk, () => {
        if (gen !== this.generation) return;
        this.pendingWrites--;
        this.unacked += len;
        if (this.unacked >= ACK_THRESHOLD || this.pendingWrites === 0) this.flushAck();
      });
    };

    ws.onclose = () => {
      if (gen !== this.generation) return;
      this.ws = null;
      if (gotExit || this.disposed) {
        if (!gotExit) this.update({ state: 'closed' });
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  private scheduleReconnect() {
    if (this.disposed) return;
    this.update({ state: this.wantConnect ? 'reconnecting' : 'closed' });
    if (!this.wantConnect) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  private onControl(text: string, markExit: () => void) {
    let msg: { type?: string; code?: number | null; title?: string };
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    switch (msg.type) {
      case 'exit': {
        markExit();
        const code = msg.code ?? null;
        // Dim note, and hide the cursor: the buffer stays readable and scrollable.
        const note = `\x1b[0;2m[process exited with code ${code === null ? 'unknown' : code}]\x1b[0m\r\n\x1b[?25l`;
        // After the queued output is parsed: start on a fresh line only if needed.
        this.term.write('', () => this.term.write((this.term.buffer.active.cursorX > 0 ? '\r\n' : '') + note));
        this.update({ state: 'exited', exitCode: code });
        // Nothing more comes on this socket. A restarted task (same agent terminal id)
        // reconnects through setConnectAllowed(true).
        this.closeSocket();
        break;
      }
      case 'resync':
        // We fell behind; the server sends the scrollback again.
        this.term.reset();
        break;
      case 'title':
        if (typeof msg.title === 'string') this.update({ title: msg.title });
        break;
      default:
        break; // unknown types are ignored
    }
  }

  private closeSocket() {
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      try {
        ws.close();
      } catch {
        /* ignore */
      }
    }
  }

  private flushAck() {
    if (this.unacked <= 0) return;
    const bytes = this.unacked;
    this.unacked = 0;
    this.sendJson({ type: 'ack', bytes });
  }

  private send(data: Uint8Array) {
    if (isReadOnly()) return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  /** Sends `text` as typed input (the on-screen key bar). */
  input(text: string) {
    this.send(this.encoder.encode(text));
  }

  /** Applies the shared font size and re-fits. */
  applyFontSize() {
    const size = getFontSize();
    if (this.term.options.fontSize !== size) {
      this.term.options.fontSize = size;
      this.scheduleFit();
    }
  }

  /** Applies the shared read-only flag. */
  applyReadOnly() {
    this.term.options.disableStdin = isReadOnly();
  }

  /** Applies the shared scrollback length. */
  applyScrollback() {
    this.term.options.scrollback = getScrollback();
  }

  /**
   * After the device slept (page hidden for a while) or came back online: a socket
   * that looks open may be dead, so connect afresh; the server replays the
   * scrollback, so no output is lost. A closed socket reconnects now, not after
   * the back-off.
   */
  wake(force: boolean) {
    if (this.disposed || !this.wantConnect || this.snap.state === 'exited') return;
    if (this.ws && this.ws.readyState === WebSocket.OPEN && !force) return;
    this.closeSocket();
    if (this.reconnectTimer) {
      clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
    }
    this.backoff = BACKOFF_MIN_MS;
    this.connect();
  }

  private sendJson(obj: unknown) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  dispose() {
    if (this.disposed) return;
    this.disposed = true;
    this.generation++;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    if (this.fitFrame) cancelAnimationFrame(this.fitFrame);
    try {
      this.ws?.close();
    } catch {
      /* ignore */
    }
    this.ws = null;
    this.disableWebgl();
    this.term.dispose();
    this.element.remove();
    testRegistry().delete(this.id);
    this.listeners.clear();
  }
}

let webglModule: Promise<typeof WebglAddon> | null = null;
/** The WebGL addon's class, its chunk loaded on first use. */
function loadWebgl(): Promise<typeof WebglAddon> {
  if (!webglModule) {
    webglModule = import('@xterm/addon-webgl').then((m) => m.WebglAddon);
    // A failed load (e.g. the server restarted with a new build) may be tried again.
    webglModule.catch(() => (webglModule = null));
  }
  return webglModule;
}

// ---- registry ----

/** The session of terminal `id` (made, and connected, on first use). */
export function getSession(id: string): TermSession {
  return sessionOf(id, () => new TermSession(id));
}
