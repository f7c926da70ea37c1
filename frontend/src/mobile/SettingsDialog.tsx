// Settings at the desk: serve on the local network, pair a phone (code + QR), the
// paired devices with their role, last seen and Revoke, and the Docker hosts.

import { useCallback, useEffect, useState } from 'react';
import { devicesApi, errorMessage, type DeviceRole, type LanStatus, type PairedDevice, type Pairing } from '../api';
import { timeAgo, usePoll } from '../hooks';
import { Modal } from '../components/Modal';
import { useToast } from '../components/Toasts';
import { Spinner } from '../components/icons';
import { HostsSection } from '../components/Hosts';
import {
  getRendererChoice,
  getScrollback,
  type RendererChoice,
  SCROLLBACK_MAX,
  SCROLLBACK_MIN,
  setRendererChoice,
  setScrollback,
} from '../terminal/registry';

/** The terminals' scrollback, in lines (this browser's setting, kept in localStorage). */
function TerminalSection() {
  const [lines, setLines] = useState(String(getScrollback()));
  const [renderer, setRenderer] = useState<RendererChoice>(getRendererChoice());
  const commit = () => {
    const n = Number(lines);
    if (Number.isFinite(n) && lines.trim() !== '') setScrollback(n);
    setLines(String(getScrollback()));
  };
  return (
    <section className="settings-section">
      <h3>Terminal</h3>
      <label className="switch-row">
        <span>
          <strong>Scrollback</strong>
          <span className="muted small block">
            Lines each terminal tab keeps in this window ({SCROLLBACK_MIN.toLocaleString()}–{SCROLLBACK_MAX.toLocaleString()}). More
            lines take more memory: about 10 MB per 5,000 full lines of a wide tab.
          </span>
        </span>
        <input
          type="number"
          className="input"
          style={{ width: '8em' }}
          min={SCROLLBACK_MIN}
          max={SCROLLBACK_MAX}
          step={1000}
          value={lines}
          onChange={(e) => setLines(e.target.value)}
          onBlur={commit}
          onKeyDown={(e) => {
            if (e.key === 'Enter') commit();
          }}
          data-testid="scrollback-input"
        />
      </label>
      <label className="switch-row">
        <span>
          <strong>Renderer</strong>
          <span className="muted small block">
            Auto draws with WebGL where the GPU does it and with the DOM otherwise (and in the desktop app on Linux, whose
            webview does not say). Applies to tabs shown from now on.
          </span>
        </span>
        <select
          className="input"
          style={{ width: '8em' }}
          value={renderer}
          onChange={(e) => {
            const v = e.target.value as RendererChoice;
            setRendererChoice(v);
            setRenderer(v);
          }}
          data-testid="renderer-select"
        >
          <option value="auto">Auto</option>
          <option value="dom">DOM</option>
          <option value="webgl">WebGL</option>
        </select>
      </label>
    </section>
  );
}

function Countdown({ until }: { until: number }) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  const left = Math.max(0, Math.round((until - now) / 1000));
  if (left === 0) return <span className="pairing-expired">expired: make a new code</span>;
  return (
    <span data-testid="pairing-countdown">
      valid for {Math.floor(left / 60)}:{String(left % 60).padStart(2, '0')}, once
    </span>
  );
}

function PairBox({ lan }: { lan: LanStatus | null }) {
  const toast = useToast();
  const [role, setRole] = useState<DeviceRole>('watch');
  const [pairing, setPairing] = useState<(Pairing & { until: number }) | null>(null);
  const [busy, setBusy] = useState(false);
  const make = async () => {
    setBusy(true);
    try {
      const p = await devicesApi.newPairing(role);
      setPairing({ ...p, until: Date.now() + p.expires_in * 1000 });
    } catch (e) {
      toast.error(e, 'Pairing');
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="settings-section" data-testid="pair-box">
      <h3>Pair a phone</h3>
      <p className="muted small">
        Open the link on the phone (or scan the QR code) and enter the code. <strong>Watch</strong> sees tasks, terminals and
        diffs; <strong>Control</strong> can also type, start and stop tasks and commit.
      </p>
      <div className="role-choice" role="radiogroup" aria-label="Role">
        {(['watch', 'control'] as DeviceRole[]).map((r) => (
          <label key={r} className={`role-option${role === r ? ' selected' : ''}`}>
            <input type="radio" name="pair-role" value={r} checked={role === r} onChange={() => setRole(r)} data-testid={`pair-role-${r}`} />
            {r === 'watch' ? 'Watch (read-only)' : 'Control'}
          </label>
        ))}
        <button className="btn btn-primary" onClick={make} disabled={busy || !lan?.enabled} data-testid="pair-make">
          {busy ? <Spinner size={12} /> : null} {pairing ? 'New code' : 'Show code'}
        </button>
      </div>
      {!lan?.enabled && <p className="muted small">Turn on “Serve on local network” first.</p>}
      {pairing && (
        <div className="pairing" data-testid="pairing">
          <div className="pairing-qr" data-testid="pairing-qr" dangerouslySetInnerHTML={{ __html: pairing.qr_svg }} />
          <div className="pairing-info">
            <div className="pairing-code mono" data-testid="pairing-code">
              {pairing.code}
            </div>
            <div className="muted small">
              {pairing.role === 'watch' ? 'Watch only' : 'Control'} · <Countdown until={pairing.until} />
            </div>
            <a className="pairing-url mono small" href={pairing.url} data-testid="pairing-url" target="_blank" rel="noreferrer">
              {pairing.url}
            </a>
          </div>
        </div>
      )}
    </section>
  );
}

function DeviceList({ devices, onRevoke }: { devices: PairedDevice[] | null; onRevoke: (d: PairedDevice) => void }) {
  if (devices === null) return <Spinner size={14} />;
  if (devices.length === 0) return <p className="muted small">No paired devices.</p>;
  return (
    <ul className="device-list" data-testid="device-list">
      {devices.map((d) => (
        <li key={d.id} className="device" data-testid={`device-${d.id}`}>
          <span className={`dot ${d.sockets > 0 ? 'dot-running' : 'dot-stopped'}`} title={d.sockets > 0 ? 'Connected' : 'Not connected'} />
          <span className="device-main">
            <span className="device-name">{d.name}</span>
            <span className="muted small">
              <span className={`chip role-${d.role}`}>{d.role}</span> · last seen {d.last_seen ? timeAgo(d.last_seen) : 'never'}
              {d.sockets > 0 ? ` · ${d.sockets} open terminal${d.sockets > 1 ? 's' : ''}` : ''}
            </span>
          </span>
          <button className="btn btn-danger-ghost btn-xs" onClick={() => onRevoke(d)} data-testid={`revoke-${d.id}`}>
            Revoke
          </button>
        </li>
      ))}
    </ul>
  );
}

export function SettingsDialog({ onClose }: { onClose: () => void }) {
  const toast = useToast();
  const [lan, setLan] = useState<LanStatus | null>(null);
  const [lanBusy, setLanBusy] = useState(false);
  const [devices, setDevices] = useState<PairedDevice[] | null>(null);

  const load = useCallback(async () => {
    try {
      const [l, d] = await Promise.all([devicesApi.lan(), devicesApi.devices()]);
      setLan(l);
      setDevices(d);
    } catch (e) {
      toast.error(e, 'Settings');
    }
  }, [toast]);
  usePoll(load, 3000, true);

  const toggleLan = async () => {
    if (!lan) return;
    setLanBusy(true);
    try {
      setLan(await devicesApi.setLan(!lan.enabled));
    } catch (e) {
      toast.notify(errorMessage(e), 'error');
    } finally {
      setLanBusy(false);
    }
  };

  const revoke = async (d: PairedDevice) => {
    try {
      await devicesApi.revoke(d.id);
      toast.notify(`Revoked ${d.name}: its session and open terminals are closed.`, 'success');
      setDevices((l) => l?.filter((x) => x.id !== d.id) ?? null);
      load();
    } catch (e) {
      toast.error(e, 'Revoke');
    }
  };

  return (
    <Modal title="Settings" onClose={onClose} width={680} testId="settings-dialog">
      <div className="modal-body settings-body">
      <section className="settings-section">
        <label className="switch-row">
          <span>
            <strong>Serve on local network</strong>
            <span className="muted small block">
              Lets paired phones on the same network watch and drive tasks. Off: only this computer can connect.
            </span>
          </span>
          <button
            role="switch"
            aria-checked={!!lan?.enabled}
            className={`switch${lan?.enabled ? ' on' : ''}`}
            onClick={toggleLan}
            disabled={!lan || lanBusy}
            data-testid="lan-toggle"
          >
            <span className="switch-knob" />
          </button>
        </label>
        {lan?.enabled && (
          <p className="muted small" data-testid="lan-urls">
            Listening on {lan.urls.map((u) => <code key={u}>{u}</code>)}
          </p>
        )}
      </section>
      <PairBox lan={lan} />
      <section className="settings-section">
        <h3>Paired devices</h3>
        <DeviceList devices={devices} onRevoke={revoke} />
      </section>
      <HostsSection />
      <TerminalSection />
      </div>
    </Modal>
  );
}
