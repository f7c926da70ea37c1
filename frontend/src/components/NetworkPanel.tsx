import { useState } from 'react';
import { api, isLive, type NetworkMode, type Task, type TaskNetwork } from '../api';
import { usePageVisible, usePoll } from '../hooks';
import { useToast } from './Toasts';
import { Spinner } from './icons';
import './network.css';

const MODE_WORDS: Record<NetworkMode, string> = {
  allowlist: 'allow list',
  none: 'no network',
  open: 'open',
};

/** The header's chip: the task's network mode (click: the Network panel). */
export function NetworkChip({ task, open, onToggle }: { task: Task; open: boolean; onToggle: () => void }) {
  if (!task.network) return null;
  return (
    <button
      type="button"
      className={`meta-item chip chip-btn net-chip net-${task.network.mode}`}
      data-testid="task-network-mode"
      aria-expanded={open}
      onClick={onToggle}
      title="Network policy: what the sandbox may reach (click for details)"
    >
      net: {MODE_WORDS[task.network.mode]}
    </button>
  );
}

// The task's Network panel: hosts AnyCode's egress proxy refused, each with Allow
// (added to the task's allow list at once), and the mode (at the next start).
// Shown while open, and by itself whenever something was refused.
export function NetworkPanel({ task, open, onTaskChanged }: { task: Task; open: boolean; onTaskChanged: (t?: Task) => void }) {
  const toast = useToast();
  const visible = usePageVisible();
  const [net, setNet] = useState<TaskNetwork | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  usePoll(async () => setNet(await api.taskNetwork(task.id)), 4000, visible && !!task.network, [task.id]);
  if (!task.network || !net) return null;
  if (!open && net.blocked.length === 0) return null;

  const change = async (what: string, c: Parameters<typeof api.setTaskNetwork>[1]) => {
    setBusy(what);
    try {
      setNet(await api.setTaskNetwork(task.id, c));
      onTaskChanged();
    } catch (e) {
      toast.error(e, 'Network');
    } finally {
      setBusy(null);
    }
  };
  const pending = isLive(task.status) && net.running_mode && net.running_mode !== net.mode;
  return (
    <div className="net-panel" data-testid="network-panel">
      {net.blocked.length > 0 && (
        <div className="net-blocked" data-testid="network-blocked">
          <span className="net-label">blocked:</span>
          {net.blocked.map((b) => (
            <span key={b.host} className="net-host" title={`last ${b.last_at}`} data-host={b.host}>
              <span className="mono">{b.host}</span> <span className="muted">({b.count}×)</span>
              <button className="btn btn-xs" onClick={() => change(b.host, { add: [b.host] })} disabled={busy !== null} data-testid="network-allow">
                {busy === b.host ? <Spinner size={10} /> : null} Allow
              </button>
            </span>
          ))}
        </div>
      )}
      {open && (
        <div className="net-settings">
          <label className="net-mode">
            <span className="net-label">mode</span>
            <select
              className="input input-xs"
              value={net.mode}
              disabled={busy !== null}
              data-testid="network-mode-select"
              onChange={(e) => change('mode', { mode: e.target.value as NetworkMode })}
            >
              <option value="allowlist">allow list</option>
              <option value="none">none</option>
              <option value="open">open</option>
            </select>
            {pending && <span className="muted">takes effect at the next start</span>}
          </label>
          <span className="net-label">allowed ({net.allow.length}):</span>
          <span className="net-allow mono" data-testid="network-allow-list">
            {net.allow.join(', ')}
          </span>
        </div>
      )}
    </div>
  );
}
