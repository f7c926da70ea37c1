import { memo, useCallback, useMemo, useRef, useState } from 'react';
import { Decoration, Diff, Hunk, parseDiff, type FileData, type HunkData } from 'react-diff-view';
import { api, errorMessage, type DiffFile, type Task, type TaskDiff } from '../api';
import { useOnScreen, usePageVisible, usePoll } from '../hooks';
import { IconChevron, IconCommit, IconRefresh, Spinner } from './icons';
import { useToast } from './Toasts';

const STATUS_LETTER: Record<DiffFile['status'], string> = {
  added: 'A',
  modified: 'M',
  deleted: 'D',
  renamed: 'R',
};

const MAX_AUTO_LINES = 2500;

function parsePatch(patch: string): FileData | null {
  try {
    const files = parseDiff(patch, { nearbySequences: 'zip' });
    return files[0] ?? null;
  } catch {
    return null;
  }
}

const FilePatch = memo(function FilePatch({ file }: { file: DiffFile }) {
  const lineCount = useMemo(() => file.patch.split('\n').length, [file.patch]);
  const [forced, setForced] = useState(false);
  const parsed = useMemo(() => (file.binary ? null : parsePatch(file.patch)), [file.patch, file.binary]);

  if (file.binary) return <div className="patch-note">Binary file not shown.</div>;
  if (lineCount > MAX_AUTO_LINES && !forced)
    return (
      <div className="patch-note">
        Large diff ({lineCount.toLocaleString()} lines).{' '}
        <button className="link-btn" onClick={() => setForced(true)}>
          Show it anyway
        </button>
      </div>
    );
  if (!parsed) return <pre className="patch-raw">{file.patch}</pre>;
  if (parsed.hunks.length === 0)
    return (
      <div className="patch-note">
        {file.status === 'renamed' ? 'Renamed without content changes.' : file.status === 'added' ? 'Empty file.' : 'No textual changes (mode or metadata only).'}
      </div>
    );
  return (
    <div className="patch">
      <Diff viewType="unified" diffType={parsed.type} hunks={parsed.hunks} gutterType="default">
        {(hunks: HunkData[]) =>
          hunks.flatMap((h, i) => [
            <Decoration key={`d${i}-${h.content}`}>
              <div className="hunk-header mono">{h.content}</div>
            </Decoration>,
            <Hunk key={`h${i}-${h.content}`} hunk={h} />,
          ])
        }
      </Diff>
    </div>
  );
});

function FileRow({ file, open, onToggle, flagged }: { file: DiffFile; open: boolean; onToggle: () => void; flagged: boolean }) {
  const slash = file.path.lastIndexOf('/');
  const dir = slash >= 0 ? file.path.slice(0, slash + 1) : '';
  const name = slash >= 0 ? file.path.slice(slash + 1) : file.path;
  return (
    <div className={`diff-file${open ? ' open' : ''}`}>
      <button
        className="diff-file-row"
        data-testid={`diff-file-${file.path}`}
        data-status={file.status}
        onClick={onToggle}
        aria-expanded={open}
        title={file.old_path && file.old_path !== file.path ? `${file.old_path} → ${file.path}` : file.path}
      >
        <IconChevron size={13} className="chev" />
        <span className={`badge badge-${file.status}`} title={file.status}>
          {STATUS_LETTER[file.status] ?? '?'}
        </span>
        <span className="diff-path mono">
          {file.old_path && file.old_path !== file.path && <span className="diff-old">{file.old_path} → </span>}
          <span className="diff-dir">{dir}</span>
          <span className="diff-name">{name}</span>
        </span>
        {flagged && (
          <span
            className={`diff-state ${file.uncommitted ? 'dirty' : 'clean'}`}
            title={file.uncommitted ? 'Has uncommitted changes' : 'Committed on the branch'}
          />
        )}
        <span className="diff-counts mono">
          {file.binary ? (
            <span className="muted">bin</span>
          ) : (
            <>
              <span className="add">+{file.additions}</span> <span className="del">−{file.deletions}</span>
            </>
          )}
        </span>
      </button>
      {open && <FilePatch file={file} />}
    </div>
  );
}

/** Mount with `key={task.id}` so state starts fresh per task. */
export function ChangesPanel({ task }: { task: Task }) {
  const toast = useToast();
  const [diff, setDiff] = useState<TaskDiff | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [open, setOpen] = useState<Set<string>>(new Set());
  const [message, setMessage] = useState('');
  const [committing, setCommitting] = useState(false);
  const [committed, setCommitted] = useState<string | null>(null);
  const pageVisible = usePageVisible();
  const [screenRef, onScreen] = useOnScreen<HTMLDivElement>();
  const lastJson = useRef('');
  const taskId = task.id;

  const refresh = useCallback(
    async (manual = false) => {
      if (manual) setLoading(true);
      try {
        const d = await api.diff(taskId);
        const json = JSON.stringify(d);
        if (json !== lastJson.current) {
          lastJson.current = json;
          setDiff(d);
        }
        setLoadError(null);
      } catch (e) {
        setLoadError(errorMessage(e));
        if (manual) toast.error(e, 'Diff');
      } finally {
        if (manual) setLoading(false);
      }
    },
    [taskId, toast],
  );

  const canPoll = pageVisible && onScreen && task.status !== 'creating';
  usePoll(() => refresh(false), 3000, canPoll, [taskId]);

  const files = diff?.files ?? [];
  const totals = useMemo(
    () => files.reduce((a, f) => ({ add: a.add + f.additions, del: a.del + f.deletions }), { add: 0, del: 0 }),
    [files],
  );

  const toggle = (path: string) =>
    setOpen((s) => {
      const n = new Set(s);
      if (n.has(path)) n.delete(path);
      else n.add(path);
      return n;
    });

  const allOpen = files.length > 0 && files.every((f) => open.has(f.path));

  // The diff is against the base, so committed files stay listed. If the server marks
  // files with `uncommitted`, only those count for the Commit button.
  const flagged = files.some((f) => typeof f.uncommitted === 'boolean');
  const pending = flagged ? files.filter((f) => f.uncommitted).length : files.length;
  const canCommit = pending > 0 && message.trim() !== '' && !committing;
  const commit = async () => {
    if (!canCommit) return;
    setCommitting(true);
    setCommitted(null);
    try {
      const { sha } = await api.commit(taskId, message.trim());
      setCommitted(sha.slice(0, 7));
      setMessage('');
      setCommitting(false);
      await refresh(false);
    } catch (e) {
      toast.error(e, 'Commit failed');
      setCommitting(false);
    }
  };

  return (
    <div className="changes" ref={screenRef}>
      <div className="panel-head">
        <span className="panel-title">Changes</span>
        {diff && (
          <span className="panel-sub">
            {files.length} file{files.length === 1 ? '' : 's'}
            {files.length > 0 && (
              <span className="mono">
                {' '}
                <span className="add">+{totals.add}</span> <span className="del">−{totals.del}</span>
              </span>
            )}
          </span>
        )}
        <span className="grow" />
        {files.length > 0 && (
          <button className="btn btn-xs btn-ghost" onClick={() => setOpen(allOpen ? new Set() : new Set(files.map((f) => f.path)))}>
            {allOpen ? 'Collapse all' : 'Expand all'}
          </button>
        )}
        <button
          className="btn btn-xs btn-ghost"
          data-testid="diff-refresh"
          onClick={() => refresh(true)}
          disabled={loading}
          title="Refresh (auto-refreshes every 3 s)"
        >
          {loading ? <Spinner size={12} /> : <IconRefresh size={13} />} Refresh
        </button>
      </div>

      <div className="diff-list">
        {loadError && !diff && <div className="inline-error">{loadError}</div>}
        {!diff && !loadError && (
          <div className="panel-empty">
            {task.status === 'creating' ? 'Waiting for the worktree…' : (
              <>
                <Spinner /> Loading changes…
              </>
            )}
          </div>
        )}
        {diff && files.length === 0 && (
          <div className="panel-empty block">
            <p>
              No changes against <span className="mono">{task.base}</span>
              {diff.base ? <span className="mono muted"> ({diff.base.slice(0, 7)})</span> : null} yet.
            </p>
            <p>Files the agent or your shells change in the worktree show up here.</p>
          </div>
        )}
        {files.map((f) => (
          <FileRow key={f.path} file={f} open={open.has(f.path)} onToggle={() => toggle(f.path)} flagged={flagged} />
        ))}
        {loadError && diff && <div className="inline-warn">Refresh failed: {loadError}</div>}
      </div>

      <div className="commit-box">
        <textarea
          className="input mono"
          data-testid="commit-message"
          rows={3}
          placeholder={pending ? `Commit message (${navigator.platform.includes('Mac') ? '⌘' : 'Ctrl'}+Enter to commit)` : 'Nothing to commit'}
          value={message}
          onChange={(e) => {
            setMessage(e.target.value);
            if (committed) setCommitted(null);
          }}
          onKeyDown={(e) => {
            if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
              e.preventDefault();
              commit();
            }
          }}
        />
        <div className="commit-actions">
          {committed && (
            <span className="commit-ok" data-testid="commit-result">
              Committed <span className="mono">{committed}</span>
            </span>
          )}
          <span className="grow" />
          <button className="btn btn-primary" data-testid="commit-button" disabled={!canCommit} onClick={commit}>
            {committing ? <Spinner size={12} /> : <IconCommit size={14} />}
            Commit{pending ? ` ${pending} file${pending === 1 ? '' : 's'}` : ''}
          </button>
        </div>
      </div>
    </div>
  );
}
