// The on-screen key bar under a terminal on touch screens: keys a phone keyboard
// lacks (Esc, Tab, Shift+Tab, Ctrl-C, Ctrl-D, arrows, Enter) and the font size.

import { useState } from 'react';
import { FONT_MAX, FONT_MIN, getFontSize, setFontSize } from '../terminal/registry';
import { getSession } from '../terminal/session';

interface Key {
  label: string;
  title: string;
  /** Bytes sent; arrows depend on the terminal's cursor-key mode. */
  seq: string | ((app: boolean) => string);
  id: string;
}

const arrow = (c: string) => (app: boolean) => (app ? `\x1bO${c}` : `\x1b[${c}`);

const KEYS: Key[] = [
  { id: 'esc', label: 'Esc', title: 'Escape', seq: '\x1b' },
  { id: 'tab', label: 'Tab', title: 'Tab', seq: '\t' },
  { id: 'shift-tab', label: '⇧Tab', title: "Shift+Tab (Claude Code's mode switch)", seq: '\x1b[Z' },
  { id: 'ctrl-c', label: '^C', title: 'Ctrl-C (interrupt)', seq: '\x03' },
  { id: 'ctrl-d', label: '^D', title: 'Ctrl-D (end of input)', seq: '\x04' },
  { id: 'left', label: '←', title: 'Left', seq: arrow('D') },
  { id: 'up', label: '↑', title: 'Up', seq: arrow('A') },
  { id: 'down', label: '↓', title: 'Down', seq: arrow('B') },
  { id: 'right', label: '→', title: 'Right', seq: arrow('C') },
  { id: 'enter', label: '⏎', title: 'Enter', seq: '\r' },
];

export function KeyBar({ terminalId, canType }: { terminalId: string | null; canType: boolean }) {
  const [size, setSize] = useState(getFontSize());
  const send = (k: Key) => {
    if (!terminalId) return;
    const s = getSession(terminalId);
    const seq = typeof k.seq === 'string' ? k.seq : k.seq(s.term.modes.applicationCursorKeysMode);
    s.input(seq);
  };
  const zoom = (d: number) => {
    setFontSize(getFontSize() + d);
    setSize(getFontSize());
  };
  // Buttons must not take the focus from the terminal: that would close the
  // phone's keyboard after every tap.
  const keep = (e: React.PointerEvent | React.MouseEvent) => e.preventDefault();
  return (
    <div className="keybar" data-testid="keybar" role="toolbar" aria-label="Terminal keys">
      {canType &&
        KEYS.map((k) => (
          <button
            key={k.id}
            type="button"
            className="keybar-key"
            data-testid={`key-${k.id}`}
            title={k.title}
            aria-label={k.title}
            onPointerDown={keep}
            onMouseDown={keep}
            onClick={() => send(k)}
            disabled={!terminalId}
          >
            {k.label}
          </button>
        ))}
      {!canType && <span className="keybar-note">Watching: read-only</span>}
      <span className="keybar-spacer" />
      {(
        [
          ['font-smaller', 'Smaller text', 'A−', -1, size <= FONT_MIN],
          ['font-larger', 'Larger text', 'A+', 1, size >= FONT_MAX],
        ] as const
      ).map(([id, title, label, d, off]) => (
        <button
          key={id}
          type="button"
          className="keybar-key"
          data-testid={id}
          aria-label={title}
          title={title}
          onPointerDown={keep}
          onMouseDown={keep}
          onClick={() => zoom(d)}
          disabled={off}
        >
          {label}
        </button>
      ))}
    </div>
  );
}
