// "Ports": the TCP ports listening in the task's sandbox (looked up when the list
// opens or is refreshed: no polling), each with Open. Open goes through AnyCode's
// origin (same login as the UI), which hands the preview its own origin
// `http://<port>-<task>.localhost:<port>` and a cookie there.

import { useState } from 'react';
import { api, isLive, type PortView, type Task } from '../api';
import { useToast } from './Toasts';
import { IconRefresh, Spinner } from './icons';

export function PortsButton({ task }: { task: Task }) {
  const toast = useToast();
  const [ports, setPorts] = useState<PortView[] | null>(null);
  const [open, setOpen] = useState(false);
  const [loading, setLoading] = useState(false);
  if (!isLive(task.status) && task.status !== 'paused') return null;
  const load = async () => {
    setLoading(true);
    try {
      setPorts(await api.ports(task.id));
      setOpen(true);
    } catch (e) {
      toast.error(e, 'Ports');
    } finally {
      setLoading(false);
    }
  };
  return (
    <span className="openin">
      <button className="btn" data-testid="task-ports" onClick={() => (open ? setOpen(false) : load())} aria-expanded={open}>
        {loading ? <Spinner size={12} /> : null} Ports
      </button>
      {open && ports && (
        <div className="openin-menu" data-testid="ports-menu" role="dialog" aria-label="Ports listening in the sandbox">
          <div className="openin-row">
            <strong>Listening in the sandbox</strong>
            <button className="btn btn-small" data-testid="ports-refresh" onClick={load} aria-label="Refresh">
              <IconRefresh size={12} />
            </button>
          </div>
          {ports.length === 0 && <div className="muted small">Nothing listens yet. Start a dev server in the sandbox, then refresh.</div>}
          {ports.map((p) => (
            <div className="openin-row" key={p.port} data-testid="port-row">
              <code>
                {p.port} {p.process ? `· ${p.process}` : ''} <span className="muted">{p.address}</span>
              </code>
              <a className="btn btn-small btn-primary" data-testid={`port-open-${p.port}`} href={p.url} target="_blank" rel="noopener">
                Open
              </a>
            </div>
          ))}
        </div>
      )}
    </span>
  );
}
