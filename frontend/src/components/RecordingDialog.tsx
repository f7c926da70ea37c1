import { useEffect, useRef, useState } from 'react';
import * as AsciinemaPlayer from 'asciinema-player';
import 'asciinema-player/dist/bundle/asciinema-player.css';
import { Modal } from './Modal';

const SPEEDS = [0.5, 1, 2, 4, 8];

/**
 * Replays a terminal's asciicast recording (GET /api/terminals/{id}/recording) with
 * asciinema-player: play/pause, a seek bar, and a speed choice. Long idle stretches
 * are shortened to 2 s so a day-long agent session stays watchable.
 */
export function RecordingDialog({ terminalId, title, onClose }: { terminalId: string; title: string; onClose: () => void }) {
  const host = useRef<HTMLDivElement>(null);
  const [speed, setSpeed] = useState(1);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    const el = host.current;
    if (!el) return;
    let player: AsciinemaPlayer.Player | null = null;
    let cancelled = false;
    setError(null);
    // Fetch first so a missing recording shows the server's message, not a blank player.
    fetch(`/api/terminals/${encodeURIComponent(terminalId)}/recording`, { credentials: 'same-origin' })
      .then(async (r) => {
        const text = await r.text();
        if (!r.ok) {
          let msg = `HTTP ${r.status}`;
          try {
            msg = JSON.parse(text).error.message ?? msg;
          } catch {
            /* not JSON */
          }
          throw new Error(msg);
        }
        if (cancelled) return;
        player = AsciinemaPlayer.create({ data: text }, el, {
          speed,
          idleTimeLimit: 2,
          fit: 'width',
          controls: true,
          autoPlay: true,
          theme: 'asciinema',
        });
      })
      .catch((e: Error) => !cancelled && setError(e.message));
    return () => {
      cancelled = true;
      player?.dispose();
      el.innerHTML = '';
    };
  }, [terminalId, speed]);

  return (
    <Modal title={`Recording — ${title}`} onClose={onClose} width={1000} testId="recording-dialog">
      <div className="recording-toolbar">
        <span className="muted">Speed</span>
        {SPEEDS.map((s) => (
          <button
            key={s}
            className={`btn btn-small${s === speed ? ' btn-primary' : ''}`}
            onClick={() => setSpeed(s)}
            data-testid={`recording-speed-${s}`}
          >
            {s}×
          </button>
        ))}
        <a className="btn btn-small" href={`/api/terminals/${encodeURIComponent(terminalId)}/recording`} download="terminal.cast">
          Download .cast
        </a>
      </div>
      {error ? <div className="task-error">{error}</div> : <div ref={host} className="recording-player" data-testid="recording-player" />}
    </Modal>
  );
}
