import { useEffect, useState } from 'react';
import {
  api,
  ApiError,
  errorMessage,
  slugify,
  type AgentKind,
  type AgentProfile,
  type Branches,
  type PermissionMode,
  type CredentialChoice,
  type CredentialsStatus,
  type Issue,
  type Project,
  type Task,
  type NetworkMode,
} from '../api';
import { describeProvider } from './CredentialsDialog';
import { Modal } from './Modal';
import { HostPicker } from './Hosts';

/** When the server has no `GET /api/agents` (older servers): the two agents every server runs. */
const FALLBACK_AGENTS: AgentProfile[] = [
  { name: 'claude', title: 'Claude Code', hooks: true, image: '', image_ready: true, credential: 'subscription', credentials: ['none', 'subscription', 'api_key'], builtin: true, customized: false },
  { name: 'shell', title: 'Shell', hooks: false, image: '', image_ready: true, credential: 'none', credentials: ['none'], builtin: true, customized: false },
];

/** Claude Code's permission modes, with what each means. */
const PERMISSION_MODES: { value: PermissionMode; label: string; help: string }[] = [
  { value: 'default', label: 'Default', help: 'Asks before each tool that changes something: approve from here, the phone or the terminal.' },
  { value: 'acceptEdits', label: 'Accept edits', help: 'File edits go through without asking; commands and other tools still ask.' },
  { value: 'plan', label: 'Plan', help: 'Reads and plans only; makes no changes until you accept the plan.' },
  { value: 'auto', label: 'Auto', help: "Claude Code decides itself; its safety check runs on Anthropic's servers." },
  { value: 'bypassPermissions', label: 'Bypass permissions', help: 'Never asks. The agent still runs inside the sandbox, as a non-root user, on its own worktree.' },
];

/** A cap field: empty is the default; otherwise a positive number. */
function parseCap(v: string, integer: boolean): number | null | 'bad' {
  const t = v.trim();
  if (!t) return null;
  const n = Number(t);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) return 'bad';
  return n;
}

/** One resource cap: empty means the settings' default. */
function CapField(p: { label: string; testId: string; value: string; onChange: (v: string) => void; bad: boolean; decimal?: boolean; hint: string; badHint: string }) {
  return (
    <label className="field">
      <span className="field-label">{p.label}</span>
      <input
        className="input"
        data-testid={p.testId}
        inputMode={p.decimal ? 'decimal' : 'numeric'}
        placeholder="default"
        value={p.value}
        onChange={(e) => p.onChange(e.target.value)}
      />
      <span className={p.bad ? 'field-hint field-hint-warn' : 'field-hint'}>{p.bad ? p.badHint : p.hint}</span>
    </label>
  );
}

export function NewTaskDialog({
  project,
  onClose,
  onCreated,
}: {
  project: Project;
  onClose: () => void;
  onCreated: (t: Task) => void;
}) {
  const [title, setTitle] = useState('');
  const [agent, setAgent] = useState<AgentKind>('claude');
  const [branches, setBranches] = useState<Branches | null>(null);
  const [branchesError, setBranchesError] = useState<string | null>(null);
  const [base, setBase] = useState('');
  const [branch, setBranch] = useState('');
  const [prompt, setPrompt] = useState('');
  const [credential, setCredential] = useState<'' | CredentialChoice>('');
  const [creds, setCreds] = useState<CredentialsStatus | null>(null);
  const [record, setRecord] = useState(true);
  const [agents, setAgents] = useState<AgentProfile[] | null>(null);
  const [agentsNote, setAgentsNote] = useState<string | null>(null);
  const [permissionMode, setPermissionMode] = useState<'' | PermissionMode>('');
  const [cpus, setCpus] = useState('');
  const [memory, setMemory] = useState('');
  const [netMode, setNetMode] = useState<NetworkMode>('allowlist');
  const [netAllow, setNetAllow] = useState('');
  const [issues, setIssues] = useState<Issue[] | null>(null);
  const [issue, setIssue] = useState<number | null>(null);

  // A project on GitHub: its open issues to start from.
  useEffect(() => {
    if (!project.github) return;
    let cancelled = false;
    api
      .githubIssues(project.id)
      .then((list) => !cancelled && setIssues(list))
      .catch(() => !cancelled && setIssues(null));
    return () => {
      cancelled = true;
    };
  }, [project.id, project.github]);

  const pickIssue = (value: string) => {
    const picked = issues?.find((i) => String(i.number) === value) ?? null;
    setIssue(picked ? picked.number : null);
    if (picked) {
      setTitle(picked.title);
      setPrompt([picked.title, picked.body.trim(), picked.url].filter(Boolean).join('\n\n'));
    }
  };
  const [host, setHost] = useState('');

  useEffect(() => {
    let cancelled = false;
    api
      .agents()
      .then((list) => {
        if (cancelled) return;
        setAgents(list.length ? list : FALLBACK_AGENTS);
        if (list.length && !list.some((a) => a.name === 'claude')) setAgent(list[0].name);
      })
      .catch((e) => {
        if (cancelled) return;
        // An older server without profiles: the built-in two.
        setAgents(FALLBACK_AGENTS);
        if (!(e instanceof ApiError && e.status === 404)) setAgentsNote(`Could not list agents: ${errorMessage(e)}`);
      });
    return () => {
      cancelled = true;
    };
  }, []);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    api
      .branches(project.id)
      .then((b) => {
        if (cancelled) return;
        setBranches(b);
        setBase((cur) => cur || b.current || project.default_branch || '');
      })
      .catch((e) => !cancelled && setBranchesError(errorMessage(e)));
    return () => {
      cancelled = true;
    };
  }, [project.id, project.default_branch]);

  useEffect(() => {
    let cancelled = false;
    api
      .credentialsStatus()
      .then((c) => !cancelled && setCreds(c))
      .catch(() => {});
    return () => {
      cancelled = true;
    };
  }, []);

  // The server's default (see openapi.json), to say what "Default" means here.
  const claude = creds?.providers.find((p) => p.provider === 'claude');
  const apiKey = creds?.providers.find((p) => p.provider === 'anthropic');
  const defaultChoice: CredentialChoice =
    agent === 'shell' ? 'none' : claude && claude.state === 'missing' && apiKey && (apiKey.state === 'ok' || apiKey.state === 'expiring') ? 'api_key' : 'subscription';
  const effective = credential || defaultChoice;
  const credentialHint = (() => {
    if (effective === 'none') return 'The agent gets no credential (Claude Code then asks you to /login).';
    const p = effective === 'subscription' ? claude : apiKey;
    if (!p) return creds ? '' : 'Looking up credentials…';
    const what = effective === 'subscription' ? 'CLAUDE_CODE_OAUTH_TOKEN' : 'ANTHROPIC_API_KEY';
    if (p.state === 'missing') return `None found on this machine: the agent starts without it. ${p.hint ?? ''}`;
    if (p.state === 'expired') return `Expired: ${p.hint ?? ''}`;
    return `${describeProvider(p)} → $${what} of the agent process only.`;
  })();
  const credentialWarn = effective !== 'none' && !!credentialHint && /^(None found|Expired)/.test(credentialHint);

  const isClaude = agent === 'claude';
  const profile = agents?.find((a) => a.name === agent);
  const cpuCap = parseCap(cpus, false);
  const memCap = parseCap(memory, true);
  const capsBad = cpuCap === 'bad' || memCap === 'bad';

  const slug = slugify(title);
  const branchPlaceholder = `anycode/${slug || '<slug-of-title>'}`;

  const submit = async (e?: React.FormEvent) => {
    e?.preventDefault();
    if (!title.trim() || busy || capsBad) return;
    setBusy(true);
    setError(null);
    try {
      const body: Parameters<typeof api.createTask>[1] = { title: title.trim(), agent };
      if (base) body.base = base;
      if (branch.trim()) body.branch = branch.trim();
      if (prompt.trim()) body.prompt = prompt;
      if (issue != null) body.issue = issue;
      if (credential) body.credential = credential;
      if (!record) body.record = false;
      if (isClaude && permissionMode) body.permission_mode = permissionMode;
      if (typeof cpuCap === 'number') body.cpus = cpuCap;
      if (typeof memCap === 'number') body.memory_mb = memCap;
      if (host) body.host = host;
      const extra = netAllow.split(/[\s,]+/).map((h) => h.trim()).filter(Boolean);
      if (netMode !== 'allowlist' || extra.length) body.network = { mode: netMode, ...(extra.length ? { allow: extra } : {}) };
      const task = await api.createTask(project.id, body);
      onCreated(task);
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };

  const branchOptions = branches
    ? Array.from(new Set([branches.current, ...branches.branches].filter((b): b is string => !!b)))
    : [];

  return (
    <Modal
      title={
        <>
          New task <span className="modal-sub">in {project.name}</span>
        </>
      }
      onClose={busy ? () => {} : onClose}
      width={580}
      testId="new-task-dialog"
    >
      <form onSubmit={submit}>
        <div className="modal-body">
          {issues && issues.length > 0 && (
            <label className="field">
              <span className="field-label">
                From a GitHub issue <span className="muted">(optional)</span>
              </span>
              <select className="input" data-testid="task-issue" value={issue ?? ''} onChange={(e) => pickIssue(e.target.value)}>
                <option value="">None</option>
                {issues.map((i) => (
                  <option key={i.number} value={i.number}>
                    #{i.number} {i.title}
                  </option>
                ))}
              </select>
              <span className="field-hint">Its title and text become the task's; the pull request closes it.</span>
            </label>
          )}
          <label className="field">
            <span className="field-label">Title</span>
            <input
              className="input"
              data-testid="task-title"
              autoFocus
              placeholder="Fix the flaky login test"
              value={title}
              onChange={(e) => setTitle(e.target.value)}
            />
          </label>
          <div className="field-row">
            <label className="field">
              <span className="field-label">Agent</span>
              <select className="input" data-testid="task-agent" value={agent} onChange={(e) => setAgent(e.target.value as AgentKind)}>
                {(agents ?? FALLBACK_AGENTS).map((a) => (
                  <option key={a.name} value={a.name}>
                    {a.title || a.name}
                    {a.image_ready ? '' : ' (image built on first use)'}
                  </option>
                ))}
              </select>
            </label>
            <label className="field">
              <span className="field-label">Base branch</span>
              <select
                className="input mono"
                data-testid="task-base"
                value={base}
                onChange={(e) => setBase(e.target.value)}
                disabled={!branches}
              >
                {!branches && <option value="">{branchesError ? 'unavailable' : 'loading…'}</option>}
                {branchOptions.map((b) => (
                  <option key={b} value={b}>
                    {b}
                    {branches && b === branches.current ? ' (current)' : ''}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <label className="field">
            <span className="field-label">Branch</span>
            <input
              className="input mono"
              data-testid="task-branch"
              placeholder={branchPlaceholder}
              value={branch}
              onChange={(e) => setBranch(e.target.value)}
              spellCheck={false}
              autoCapitalize="off"
              autoCorrect="off"
            />
            <span className="field-hint">Created from the base branch; leave empty for the name shown.</span>
          </label>
          <label className="field">
            <span className="field-label">
              Prompt <span className="muted">(optional{agent === 'shell' ? ', for agents' : ''})</span>
            </span>
            <textarea
              className="input"
              data-testid="task-prompt"
              rows={4}
              placeholder={agent === 'shell' ? 'Not used by the shell agent' : 'What should the agent do? (sent as its first message)'}
              value={prompt}
              onChange={(e) => setPrompt(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
                  e.preventDefault();
                  submit();
                }
              }}
            />
          </label>
          {isClaude && (
            <label className="field">
              <span className="field-label">Permission mode</span>
              <select
                className="input"
                data-testid="task-permission-mode"
                value={permissionMode}
                onChange={(e) => setPermissionMode(e.target.value as '' | PermissionMode)}
              >
                <option value="">Claude Code's own (its settings decide)</option>
                {PERMISSION_MODES.map((m) => (
                  <option key={m.value} value={m.value}>
                    {m.label}
                  </option>
                ))}
              </select>
              <span className="field-hint" data-testid="task-permission-hint">
                {permissionMode
                  ? PERMISSION_MODES.find((m) => m.value === permissionMode)?.help
                  : 'Default asks before tools run; the others trade questions for speed.'}
              </span>
            </label>
          )}
          {profile && !profile.hooks && agent !== 'shell' && (
            <div className="field-hint">
              {profile.title || profile.name} has no hooks: AnyCode reads its state from the screen (idle with its prompt shown means waiting).
            </div>
          )}
          <label className="field field-inline">
            <input type="checkbox" data-testid="task-record" checked={record} onChange={(e) => setRecord(e.target.checked)} />
            <span>Record the agent terminal (replayable, kept in AnyCode's data dir)</span>
          </label>
          <label className="field">
            <span className="field-label">Credential</span>
            <select
              className="input"
              data-testid="task-credential"
              value={credential}
              onChange={(e) => setCredential(e.target.value as '' | CredentialChoice)}
            >
              <option value="">Default ({defaultChoice === 'api_key' ? 'API key' : defaultChoice})</option>
              <option value="subscription">Claude subscription</option>
              <option value="api_key">Anthropic API key</option>
              <option value="none">None</option>
            </select>
            <span className={credentialWarn ? 'field-hint field-hint-warn' : 'field-hint'} data-testid="task-credential-hint">
              {credentialHint}
            </span>
          </label>
          <div className="field-row">
            <label className="field">
              <span className="field-label">Network</span>
              <select className="input" data-testid="task-network" value={netMode} onChange={(e) => setNetMode(e.target.value as NetworkMode)}>
                <option value="allowlist">Allow list (default)</option>
                <option value="none">None</option>
                <option value="open">Open</option>
              </select>
              <span className="field-hint" data-testid="task-network-hint">
                {netMode === 'allowlist'
                  ? 'Through AnyCode\'s proxy to the agents\' APIs, GitHub and package registries only.'
                  : netMode === 'none'
                    ? 'No outbound network at all (hooks and terminals still work).'
                    : 'A direct route out through Docker\'s bridge.'}
              </span>
            </label>
            <label className="field">
              <span className="field-label">Also allow</span>
              <input
                className="input mono"
                data-testid="task-network-allow"
                value={netAllow}
                onChange={(e) => setNetAllow(e.target.value)}
                placeholder="example.com, *.example.org"
                disabled={netMode === 'none'}
              />
              <span className="field-hint">Host names, comma-separated; a gateway on this machine as host.docker.internal:PORT.</span>
            </label>
          </div>
          <HostPicker value={host} onChange={setHost} />
          <details className="field advanced" data-testid="task-advanced" open={!!(cpus || memory)}>
            <summary>Advanced: resource caps</summary>
            <div className="field-row">
              <CapField label="CPUs" testId="task-cpus" value={cpus} onChange={setCpus} bad={cpuCap === 'bad'} decimal
                hint="How many CPUs the sandbox may use (1.5 = one and a half)." badHint="A positive number, e.g. 1.5" />
              <CapField label="Memory (MiB)" testId="task-memory" value={memory} onChange={setMemory} bad={memCap === 'bad'}
                hint="Memory cap; empty uses the settings (config.toml)." badHint="A whole number of MiB, e.g. 2048" />
            </div>
          </details>
          {agentsNote && <div className="inline-warn">{agentsNote}</div>}
          {branchesError && <div className="inline-warn">Could not list branches: {branchesError}</div>}
          {error && (
            <div className="inline-error" role="alert">
              {error}
            </div>
          )}
        </div>
        <div className="modal-foot">
          <button type="button" className="btn" onClick={onClose} disabled={busy}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" data-testid="task-submit" disabled={busy || !title.trim() || capsBad}>
            {busy && <span className="spinner" />}
            {busy ? 'Starting container…' : 'Create task'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
