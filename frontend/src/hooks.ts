import { useEffect, useRef, useState, useSyncExternalStore, type RefCallback } from 'react';

/** true while the browser tab is visible. */
export function usePageVisible(): boolean {
  return useSyncExternalStore(
    (cb) => {
      document.addEventListener('visibilitychange', cb);
      return () => document.removeEventListener('visibilitychange', cb);
    },
    () => document.visibilityState !== 'hidden',
  );
}

/**
 * Calls `fn` now and then every `ms` while `enabled`; never overlaps calls.
 * `fn` may change between renders without restarting the timer.
 */
export function usePoll(fn: () => Promise<unknown> | void, ms: number, enabled: boolean, deps: unknown[] = []) {
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    if (!enabled) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | null = null;
    const tick = async () => {
      try {
        await fnRef.current();
      } catch {
        /* callers handle their own errors */
      }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ms, enabled, ...deps]);
}

/** Route from the URL hash: `#/tasks/ID`. */
export function useHashRoute(): { taskId: string | null } {
  const hash = useSyncExternalStore(
    (cb) => {
      window.addEventListener('hashchange', cb);
      return () => window.removeEventListener('hashchange', cb);
    },
    () => location.hash,
  );
  const m = /^#\/tasks\/([^/?#]+)/.exec(hash);
  return { taskId: m ? decodeURIComponent(m[1]) : null };
}

export function navigateToTask(id: string | null) {
  const next = id ? `#/tasks/${encodeURIComponent(id)}` : '#/';
  if (location.hash !== next) location.hash = next;
}

/** true when the element is (at least partly) on screen. */
export function useOnScreen<T extends Element>(): [RefCallback<T>, boolean] {
  const [el, setEl] = useState<T | null>(null);
  const [onScreen, setOnScreen] = useState(true);
  useEffect(() => {
    if (!el || typeof IntersectionObserver === 'undefined') return;
    const io = new IntersectionObserver((entries) => {
      for (const e of entries) setOnScreen(e.isIntersecting);
    });
    io.observe(el);
    return () => io.disconnect();
  }, [el]);
  return [setEl, onScreen];
}

export function timeAgo(iso: string): string {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const s = Math.max(0, (Date.now() - t) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}
