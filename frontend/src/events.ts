// Live task states over `WS /ws/events`: a snapshot of every task, then each change
// (see the server's openapi.json, x-websockets). Reconnects with backoff; after a
// reconnect the server's snapshot replaces whatever was missed. While the socket is
// down the app falls back to polling GET /api/tasks.

import { useEffect, useRef, useState } from 'react';
import { eventsWsUrl, type Task } from './api';

export type EventsState = 'connecting' | 'live' | 'offline';

export interface EventHandlers {
  /** Every task now (first frame, and again after the client fell behind). */
  snapshot: (tasks: Task[]) => void;
  /** A task was created or changed: the whole task. */
  task: (task: Task) => void;
  /** A task was deleted. */
  deleted: (id: string) => void;
}

type Frame = { type: 'snapshot'; tasks: Task[] } | { type: 'task'; task: Task } | { type: 'task_deleted'; id: string };

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15_000;

/** For tests and debugging: the socket's state and how many frames it delivered. */
declare global {
  interface Window {
    __anycodeEvents?: { state: EventsState; frames: number; snapshots: number; connects: number };
  }
}

function stats() {
  if (!window.__anycodeEvents) window.__anycodeEvents = { state: 'connecting', frames: 0, snapshots: 0, connects: 0 };
  return window.__anycodeEvents;
}

/**
 * Subscribes to task events while `enabled`; returns the socket's state. `live`
 * means a snapshot arrived and changes stream in; the handlers may change between
 * renders without reconnecting.
 */
export function useTaskEvents(enabled: boolean, handlers: EventHandlers): EventsState {
  const [state, setState] = useState<EventsState>('connecting');
  const h = useRef(handlers);
  h.current = handlers;

  useEffect(() => {
    if (!enabled || typeof WebSocket === 'undefined') {
      setState('offline');
      return;
    }
    let ws: WebSocket | null = null;
    let timer: ReturnType<typeof setTimeout> | null = null;
    let backoff = BACKOFF_MIN_MS;
    let stopped = false;
    const set = (s: EventsState) => {
      stats().state = s;
      setState(s);
    };

    const connect = () => {
      timer = null;
      if (stopped) return;
      stats().connects++;
      const sock = new WebSocket(eventsWsUrl());
      ws = sock;
      sock.onmessage = (ev) => {
        if (typeof ev.data !== 'string') return;
        let f: Frame;
        try {
          f = JSON.parse(ev.data) as Frame;
        } catch {
          return;
        }
        const st = stats();
        st.frames++;
        if (f.type === 'snapshot') {
          st.snapshots++;
          backoff = BACKOFF_MIN_MS;
          h.current.snapshot(f.tasks);
          set('live');
        } else if (f.type === 'task') {
          h.current.task(f.task);
        } else if (f.type === 'task_deleted') {
          h.current.deleted(f.id);
        }
      };
      sock.onclose = () => {
        if (ws !== sock) return;
        ws = null;
        if (stopped) return;
        set('offline');
        // Jitter, so many tabs do not reconnect in step after a server restart.
        const delay = backoff * (0.75 + Math.random() * 0.5);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
        timer = setTimeout(connect, delay);
      };
    };

    // Coming back (tab shown, network back, phone woke up): retry now, not at the
    // end of a long backoff.
    const retryNow = () => {
      if (stopped || ws || document.visibilityState === 'hidden') return;
      if (timer) clearTimeout(timer);
      backoff = BACKOFF_MIN_MS;
      connect();
    };
    document.addEventListener('visibilitychange', retryNow);
    window.addEventListener('online', retryNow);
    set('connecting');
    connect();
    return () => {
      stopped = true;
      document.removeEventListener('visibilitychange', retryNow);
      window.removeEventListener('online', retryNow);
      if (timer) clearTimeout(timer);
      const sock = ws;
      ws = null;
      sock?.close();
    };
  }, [enabled]);

  return state;
}
