// App keyboard shortcuts. Ctrl+Shift+T / Ctrl+Shift+N are what we advertise; browsers keep
// those for themselves in normal windows (they work in app windows / PWAs), so Alt+Shift+T /
// Alt+Shift+N do the same everywhere.

export type Shortcut = 'new-shell' | 'new-task';

export function matchShortcut(e: KeyboardEvent): Shortcut | null {
  if (e.type !== 'keydown' || !e.shiftKey) return null;
  const mod = ((e.ctrlKey || e.metaKey) && !e.altKey) || (e.altKey && !e.ctrlKey && !e.metaKey);
  if (!mod) return null;
  // e.code is layout-independent and unaffected by Alt on macOS.
  if (e.code === 'KeyT' || e.key.toLowerCase() === 't') return 'new-shell';
  if (e.code === 'KeyN' || e.key.toLowerCase() === 'n') return 'new-task';
  return null;
}
