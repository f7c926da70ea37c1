import { useEffect, useState } from 'react';
import {
  api,
  errorMessage,
  slugify,
  type AgentKind,
  type Branches,
  type CredentialChoice,
  type CredentialsStatus,
  type Project,
  type Task,
} from '../api';
import { describeProvider } from './CredentialsDialog';
import { Modal } from './Modal';

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
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    let cancelled = false;
    api
      .branches(project.id)
      .then((b) => {
        if (cancelled) return;
        setBranches(b);
        setBase((cur) => cur || b.current || project.default_branch);
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

  const slug = slugify(title);
  const branchPlaceholder = `anycode/${slug || '<slug-of-title>'}`;

  const submit = async (e?: React.FormEvent) => {
    e?.preventDefault();
    if (!title.trim() || busy) return;
    setBusy(true);
    setError(null);
    try {
      const body: Parameters<typeof api.createTask>[1] = { title: title.trim(), agent };
      if (base) body.base = base;
      if (branch.trim()) body.branch = branch.trim();
      if (prompt.trim()) body.prompt = prompt;
      if (credential) body.credential = credential;
      if (!record) body.record = false;
      const task = await api.createTask(project.id, body);
      onCreated(task);
    } catch (err) {
      setError(errorMessage(err));
      setBusy(false);
    }
  };

  const branchOptions = branches
    ? Array.from(new Set([branches.current, ...branches.branches].filter(Boolean)))
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
                <option value="claude">Claude Code</option>
                <option value="shell">Shell</option>
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
              placeholder={agent === 'claude' ? 'What should the agent do?' : 'Not used by the shell agent'}
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
          <button type="submit" className="btn btn-primary" data-testid="task-submit" disabled={busy || !title.trim()}>
            {busy && <span className="spinner" />}
            {busy ? 'Starting container…' : 'Create task'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
