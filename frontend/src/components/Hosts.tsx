// Docker hosts (issue 17): the Settings section that lists, adds and removes them
// (and offers the user's Docker contexts), the host picker of the New Task dialog,
// and a task's host badge and "host does not answer" warning.

import { useCallback, useEffect, useState, useSyncExternalStore } from 'react';
import {
  ApiError,
  errorMessage,
  formatBytes,
  hostLoad,
  hostsApi,
  LOCAL_HOST,
  type DockerContext,
  type HostInfo,
  type NewHost,
  type Task,
} from '../api';
import { usePoll } from '../hooks';
import { IconAlert, Spinner } from './icons';
import './hosts.css';

// ---- the hosts every view shares (names for badges), refreshed on demand ----

let known: HostInfo[] | null = null;
let loading: Promise<void> | null = null;
const listeners = new Set<() => void>();
const askedFor = new Set<string>();

/** Loads `GET /api/hosts` again (after an add or remove, or for an unknown host id). */
export function refreshHosts(): Promise<void> {
  if (loading) return loading;
  loading = hostsApi
    .list()
    .then((l) => {
      known = l;
      listeners.forEach((f) => f());
    })
    .catch(() => {})
    .finally(() => {
      loading = null;
    });
  return loading;
}

function setKnown(l: HostInfo[]) {
  known = l;
  listeners.forEach((f) => f());
}

/** The hosts as last loaded (by Settings, the host picker or `useHostName`); `null` until then. */
export function useKnownHosts(): HostInfo[] | null {
  return useSyncExternalStore(
    (cb) => {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    () => known,
  );
}

/**
 * A host's name from its id (the id while the list is loading or when it is gone).
 * Only a task on a remote host asks for the list: with every task local, nothing is fetched.
 */
export function useHostName(id: string): string {
  const list = useKnownHosts();
  const h = list?.find((x) => x.id === id);
  useEffect(() => {
    // A host not known yet (first use, or added elsewhere: the CLI, another
    // browser): load the list, once per unknown id (a removed host stays unknown).
    if (!h && id !== LOCAL_HOST && !askedFor.has(id)) {
      askedFor.add(id);
      refreshHosts();
    }
  }, [h, id]);
  return h?.name ?? id;
}

// ---- a task's host ----

/** A small badge naming the task's host, when it is not this machine. */
export function HostBadge({ task, compact, testId }: { task: Task; compact?: boolean; testId?: string }) {
  const name = useHostName(task.host);
  if (task.host === LOCAL_HOST) return null;
  const down = !!task.host_error;
  return (
    <span
      className={`host-badge${compact ? ' host-badge-compact' : ' meta-item'}${down ? ' host-badge-down' : ''}`}
      data-testid={testId ?? `host-badge-${task.id}`}
      title={down ? `Host ${name} does not answer: ${task.host_error}` : `Runs on the Docker host ${name}`}
    >
      <svg viewBox="0 0 16 16" width="11" height="11" aria-hidden="true" fill="none" stroke="currentColor" strokeWidth="1.6">
        <rect x="2" y="2.5" width="12" height="4.5" rx="1" />
        <rect x="2" y="9" width="12" height="4.5" rx="1" />
      </svg>
      {down && <span className="sr-only">unreachable host </span>}
      {name}
      {down && compact && ' ⚠'}
    </span>
  );
}

/** The task view's warning while the task's host does not answer. */
export function HostWarning({ task }: { task: Task }) {
  const name = useHostName(task.host);
  if (!task.host_error) return null;
  return (
    <div className="task-error host-warning" role="alert" data-testid="host-warning">
      <IconAlert size={14} />
      <span>
        <strong>Host {name} does not answer</strong> ({task.host_error}). This task keeps its state and its work; it comes back
        when the host does. The rest of AnyCode keeps working.
      </span>
    </div>
  );
}

// ---- the New Task dialog's picker ----

/** The label of a host in the picker: its name and load. */
function pickerLabel(h: HostInfo): string {
  if (h.status !== 'reachable') return `${h.name} (does not answer)`;
  const free = h.cpus != null ? `${Math.max(0, Math.round((h.cpus - h.reserved_cpus) * 10) / 10)}/${h.cpus} CPUs free` : '';
  const full = h.max_running != null && h.running_tasks >= h.max_running ? ', full: the task queues' : '';
  return `${h.name} (${h.running_tasks}${h.max_running != null ? `/${h.max_running}` : ''} running${free ? `, ${free}` : ''}${full})`;
}

/**
 * The host a new task goes to: "Automatic" (the answering host with the most free
 * CPUs) or one host; hosts that do not answer are listed but cannot be picked.
 * Shown only when there is more than `local`.
 */
export function HostPicker({ value, onChange }: { value: string; onChange: (id: string) => void }) {
  const [hosts, setHosts] = useState<HostInfo[] | null>(known);
  useEffect(() => {
    let cancelled = false;
    hostsApi
      .list()
      .then((l) => {
        if (cancelled) return;
        setHosts(l);
        setKnown(l);
      })
      .catch(() => {});
    return () => {
      cancelled = true;
    };
  }, []);
  if (!hosts || hosts.length < 2) return null;
  const picked = hosts.find((h) => h.id === value);
  return (
    <label className="field">
      <span className="field-label">Host</span>
      <select className="input" data-testid="task-host" value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">Automatic (most free)</option>
        {hosts.map((h) => (
          <option key={h.id} value={h.id} disabled={h.status !== 'reachable'}>
            {pickerLabel(h)}
          </option>
        ))}
      </select>
      <span className="field-hint" data-testid="task-host-hint">
        {picked
          ? picked.id === LOCAL_HOST
            ? 'This computer’s Docker engine.'
            : `On ${picked.endpoint}: the repository and the sandbox image are copied there; nothing of this computer is mounted.`
          : 'The answering host with the most free CPUs that is below its own limit.'}
      </span>
    </label>
  );
}

// ---- Settings → Hosts ----

function LoadBar({ host }: { host: HostInfo }) {
  const { fraction, label } = hostLoad(host);
  const pct = Math.round(fraction * 100);
  return (
    <span className="host-load" data-testid={`host-load-${host.name}`}>
      <span
        className="host-load-bar"
        role="meter"
        aria-label={`Load of ${host.name}`}
        aria-valuemin={0}
        aria-valuemax={100}
        aria-valuenow={pct}
        aria-valuetext={label}
      >
        <span className={`host-load-fill${fraction >= 1 ? ' full' : fraction >= 0.75 ? ' high' : ''}`} style={{ width: `${pct}%` }} />
      </span>
      <span className="muted small">{label}</span>
    </span>
  );
}

function HostRow({ host, onRemoved }: { host: HostInfo; onRemoved: () => void }) {
  const [confirm, setConfirm] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const local = host.id === LOCAL_HOST;
  const blocked = host.tasks > 0;
  const reason = blocked
    ? `${host.tasks} task${host.tasks > 1 ? 's are' : ' is'} on ${host.name}: delete ${host.tasks > 1 ? 'them' : 'it'} first`
    : `Remove ${host.name} (nothing on it is touched)`;
  useEffect(() => {
    if (!confirm) return;
    const t = setTimeout(() => setConfirm(false), 4000);
    return () => clearTimeout(t);
  }, [confirm]);
  const remove = async () => {
    if (blocked || busy) return;
    if (!confirm) {
      setConfirm(true);
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await hostsApi.remove(host.id);
      onRemoved();
    } catch (e) {
      setError(e instanceof ApiError ? `${e.code}: ${e.message}` : errorMessage(e));
      setBusy(false);
      setConfirm(false);
    }
  };
  const up = host.status === 'reachable';
  return (
    <li className="host" data-testid={`host-${host.name}`} data-status={host.status}>
      <span className={`dot ${up ? 'dot-running' : 'dot-error'}`} title={up ? 'Answers' : 'Does not answer'} aria-label={up ? 'reachable' : 'unreachable'} />
      <span className="host-main">
        <span className="host-title">
          <span className="host-name">{local ? 'local' : host.name}</span>
          {local && <span className="chip">this computer</span>}
          <span className="mono muted small host-endpoint" title={host.endpoint}>
            {host.endpoint || 'Docker engine'}
          </span>
        </span>
        <span className="muted small" data-testid={`host-capacity-${host.name}`}>
          {up ? `${host.cpus ?? '?'} CPUs · ${formatBytes(host.memory_bytes)}` : 'does not answer'} · {host.tasks} task{host.tasks === 1 ? '' : 's'}
          {host.max_running != null && ` · at most ${host.max_running} running`}
          {host.tls && ' · TLS'}
        </span>
        {up && <LoadBar host={host} />}
        {host.image && host.image.status !== 'done' && (
          <span className={host.image.status === 'failed' ? 'host-error small' : 'muted small'} data-testid={`host-image-${host.name}`}>
            {host.image.status === 'failed'
              ? `Copying the sandbox image failed: ${host.image.error ?? 'unknown error'} (tried again when a task needs it)`
              : `Copying the sandbox image: ${formatBytes(host.image.copied_bytes)}${host.image.total_bytes ? ` of ${formatBytes(host.image.total_bytes)}` : ''}`}
            {host.image.status === 'copying' && host.image.total_bytes > 0 && (
              <progress max={host.image.total_bytes} value={Math.min(host.image.copied_bytes, host.image.total_bytes)} aria-label="image copy" />
            )}
          </span>
        )}
        {host.error && (
          <span className="host-error small" data-testid={`host-error-${host.name}`}>
            {host.error}
          </span>
        )}
        {error && (
          <span className="inline-error" role="alert">
            {error}
          </span>
        )}
      </span>
      {!local && (
        <button
          className={`btn btn-danger-ghost btn-xs${blocked ? ' is-disabled' : ''}`}
          aria-disabled={blocked || busy}
          title={reason}
          onClick={remove}
          data-testid={`host-remove-${host.name}`}
        >
          {busy ? <Spinner size={11} /> : null} {confirm ? 'Really remove?' : 'Remove'}
        </button>
      )}
    </li>
  );
}

/** A Docker context's name as a host name (`[A-Za-z0-9._-]`). */
function hostNameOf(context: string): string {
  return context.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '').slice(0, 64) || 'context';
}

function ContextList({ hosts, onAdded }: { hosts: HostInfo[]; onAdded: (h: HostInfo) => void }) {
  const [contexts, setContexts] = useState<DockerContext[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  useEffect(() => {
    let cancelled = false;
    hostsApi
      .contexts()
      .then((c) => !cancelled && setContexts(c))
      .catch((e) => !cancelled && setLoadError(errorMessage(e)));
    return () => {
      cancelled = true;
    };
  }, []);
  if (loadError) return <p className="inline-warn">Could not read your Docker contexts: {loadError}</p>;
  if (!contexts) return null;
  if (contexts.length === 0)
    return (
      <p className="muted small" data-testid="contexts-empty">
        No Docker contexts on this computer (<code>docker context create NAME --docker host=ssh://user@box</code> makes one).
      </p>
    );
  const add = async (c: DockerContext) => {
    setBusy(c.name);
    setErrors((e) => ({ ...e, [c.name]: '' }));
    try {
      onAdded(await hostsApi.add({ name: hostNameOf(c.name), context: c.name }));
    } catch (e) {
      setErrors((x) => ({ ...x, [c.name]: e instanceof ApiError ? `${e.code}: ${e.message}` : errorMessage(e) }));
    } finally {
      setBusy(null);
    }
  };
  return (
    <ul className="host-list" data-testid="context-list">
      {contexts.map((c) => {
        const added = hosts.find((h) => h.name === hostNameOf(c.name) || (h.endpoint === c.endpoint && h.id !== LOCAL_HOST));
        return (
          <li key={c.name} className="host host-context" data-testid={`context-${c.name}`}>
            <span className="host-main">
              <span className="host-title">
                <span className="host-name">{c.name}</span>
                {c.current && <span className="chip">current</span>}
                <span className="mono muted small host-endpoint" title={c.endpoint}>
                  {c.endpoint}
                </span>
              </span>
              {c.description && <span className="muted small">{c.description}</span>}
              {c.problem && <span className="host-error small">Cannot be used: {c.problem}</span>}
              {errors[c.name] && (
                <span className="inline-error" role="alert">
                  {errors[c.name]}
                </span>
              )}
            </span>
            <button
              className="btn btn-xs"
              disabled={!!c.problem || !!added || busy !== null}
              title={added ? `Added as ${added.name}` : c.problem ? c.problem : `Add ${c.name} as a host`}
              onClick={() => add(c)}
              data-testid={`context-add-${c.name}`}
            >
              {busy === c.name ? <Spinner size={11} /> : null} {added ? 'Added' : 'Add'}
            </button>
          </li>
        );
      })}
    </ul>
  );
}

function AddHostForm({ onAdded }: { onAdded: (h: HostInfo) => void }) {
  const [name, setName] = useState('');
  const [endpoint, setEndpoint] = useState('');
  const [ca, setCa] = useState('');
  const [cert, setCert] = useState('');
  const [key, setKey] = useState('');
  const [maxRunning, setMaxRunning] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const tlsGiven = [ca, cert, key].filter((v) => v.trim()).length;
  const maxBad = maxRunning.trim() !== '' && !/^[1-9][0-9]*$/.test(maxRunning.trim());
  const tlsBad = tlsGiven > 0 && tlsGiven < 3;
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (busy || !name.trim() || !endpoint.trim() || maxBad || tlsBad) return;
    setBusy(true);
    setError(null);
    const body: NewHost = { name: name.trim(), endpoint: endpoint.trim() };
    if (tlsGiven === 3) body.tls = { ca: ca.trim(), cert: cert.trim(), key: key.trim() };
    if (maxRunning.trim()) body.max_running = Number(maxRunning.trim());
    try {
      const h = await hostsApi.add(body);
      setName('');
      setEndpoint('');
      setCa('');
      setCert('');
      setKey('');
      setMaxRunning('');
      onAdded(h);
    } catch (err) {
      setError(err instanceof ApiError ? `${err.code}: ${err.message}` : errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  const isTcp = endpoint.trim().startsWith('tcp://');
  return (
    <form className="host-form" onSubmit={submit} data-testid="host-form" aria-label="Add a host">
      <div className="field-row">
        <label className="field host-form-name">
          <span className="field-label">Name</span>
          <input className="input" data-testid="host-name" value={name} onChange={(e) => setName(e.target.value)} placeholder="workstation" spellCheck={false} autoCapitalize="off" />
        </label>
        <label className="field">
          <span className="field-label">Endpoint</span>
          <input
            className="input mono"
            data-testid="host-endpoint"
            value={endpoint}
            onChange={(e) => setEndpoint(e.target.value)}
            placeholder="ssh://me@box  ·  tcp://box:2376"
            spellCheck={false}
            autoCapitalize="off"
          />
        </label>
        <label className="field host-form-max">
          <span className="field-label">Max running</span>
          <input className="input" data-testid="host-max-running" inputMode="numeric" value={maxRunning} onChange={(e) => setMaxRunning(e.target.value)} placeholder="no limit" />
        </label>
      </div>
      <details className="field advanced" open={isTcp || tlsGiven > 0} data-testid="host-tls">
        <summary>TLS client files (for tcp://), as paths on this computer</summary>
        <div className="field-row">
          <label className="field">
            <span className="field-label">CA</span>
            <input className="input mono" data-testid="host-tls-ca" value={ca} onChange={(e) => setCa(e.target.value)} placeholder="~/.docker/box/ca.pem" spellCheck={false} />
          </label>
          <label className="field">
            <span className="field-label">Certificate</span>
            <input className="input mono" data-testid="host-tls-cert" value={cert} onChange={(e) => setCert(e.target.value)} placeholder="cert.pem" spellCheck={false} />
          </label>
          <label className="field">
            <span className="field-label">Key</span>
            <input className="input mono" data-testid="host-tls-key" value={key} onChange={(e) => setKey(e.target.value)} placeholder="key.pem" spellCheck={false} />
          </label>
        </div>
      </details>
      {(tlsBad || maxBad) && (
        <p className="field-hint field-hint-warn">{tlsBad ? 'Give all three TLS files, or none.' : 'Max running: a whole number, at least 1.'}</p>
      )}
      {error && (
        <div className="inline-error" role="alert" data-testid="host-add-error">
          {error}
        </div>
      )}
      <div className="host-form-foot">
        <span className="muted small">AnyCode connects first: the host must answer to be added.</span>
        <button type="submit" className="btn btn-primary btn-xs" disabled={busy || !name.trim() || !endpoint.trim() || tlsBad || maxBad} data-testid="host-add">
          {busy ? <Spinner size={11} /> : null} {busy ? 'Connecting…' : 'Add host'}
        </button>
      </div>
    </form>
  );
}

/** Settings → Docker hosts. */
export function HostsSection() {
  const [hosts, setHosts] = useState<HostInfo[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const load = useCallback(async () => {
    try {
      const l = await hostsApi.list();
      setHosts(l);
      setKnown(l);
      setError(null);
    } catch (e) {
      setError(errorMessage(e));
    }
  }, []);
  // Faster while an image is being copied, so its progress moves.
  const copying = !!hosts?.some((h) => h.image?.status === 'copying');
  usePoll(load, copying ? 1000 : 5000, true);
  const added = (h: HostInfo) => {
    setHosts((l) => (l ? [...l.filter((x) => x.id !== h.id), h] : [h]));
    load();
  };
  return (
    <section className="settings-section" data-testid="hosts-section">
      <h3>Docker hosts</h3>
      <p className="muted small">
        Where sandboxes run. A new task goes to the answering host with the most free CPUs (below its own limit) unless you
        pick one. On a remote host nothing of this computer is mounted: the task’s repository and the sandbox image are
        copied there.
      </p>
      {error && <p className="inline-error">{error}</p>}
      {hosts === null && !error && <Spinner size={14} />}
      {hosts && (
        <ul className="host-list" data-testid="host-list">
          {hosts.map((h) => (
            <HostRow key={h.id} host={h} onRemoved={load} />
          ))}
        </ul>
      )}
      <h4 className="settings-sub">Add a host</h4>
      <AddHostForm onAdded={added} />
      <h4 className="settings-sub">Your Docker contexts</h4>
      <ContextList hosts={hosts ?? []} onAdded={added} />
    </section>
  );
}
