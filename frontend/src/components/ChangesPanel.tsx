import { useCallback, useMemo, useRef, useState } from 'react';
import { api, errorMessage, isLive, type DiffFile, type ReviewComment, type Task, type TaskDiff } from '../api';
import { useOnScreen, usePageVisible, usePoll } from '../hooks';
import { IconChevron, IconComment, IconCommit, IconRefresh, Spinner } from './icons';
import { useToast } from './Toasts';
import { Loading, lazyPart } from './Loading';
import type { Review } from './FilePatch';

// The patch view (react-diff-view) loads when a file is first opened.
const FilePatch = lazyPart(() => import('./FilePatch'), 'FilePatch');

const STATUS_LETTER: Record<DiffFile['status'], string> = {
  added: 'A',
  modified: 'M',
  deleted: 'D',
  renamed: 'R',
};

function FileRow({
  file,
  open,
  onToggle,
  flagged,
  review,
}: {
  file: DiffFile;
  open: boolean;
  onToggle: () => void;
  flagged: boolean;
  review: Review;
}) {
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
        {review.comments.length > 0 && (
          <span className="diff-comments" title={`${review.comments.length} review comment${review.comments.length === 1 ? '' : 's'}`}>
            <IconComment size={11} /> {review.comments.length}
          </span>
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
      {open && (
        <Loading className="patch-note">
          <FilePatch file={file} review={review} />
        </Loading>
      )}
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
  const [comments, setComments] = useState<ReviewComment[]>([]);
  const [sending, setSending] = useState(false);
  const lastComments = useRef('');
  const taskId = task.id;

  const loadComments = useCallback(async () => {
    try {
      const c = await api.comments(taskId);
      const json = JSON.stringify(c);
      if (json !== lastComments.current) {
        lastComments.current = json;
        setComments(c);
      }
    } catch {
      // The diff's own error says what is wrong; comments come back with it.
    }
  }, [taskId]);

  const refresh = useCallback(
    async (manual = false) => {
      if (manual) setLoading(true);
      try {
        const d = await api.diff(taskId);
        // After the diff: it brought the work out, which `addressed` is read from.
        await loadComments();
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
    [taskId, toast, loadComments],
  );

  const addComment = useCallback(
    async (path: string, line: number, body: string) => {
      try {
        await api.addComment(taskId, { path, line, body });
        await loadComments();
        return true;
      } catch (e) {
        toast.error(e, 'Comment');
        return false;
      }
    },
    [taskId, loadComments, toast],
  );
  const removeComment = useCallback(
    async (id: string) => {
      try {
        await api.deleteComment(taskId, id);
      } catch (e) {
        toast.error(e, 'Delete comment');
      }
      await loadComments();
    },
    [taskId, loadComments, toast],
  );
  const reviews = useMemo(() => {
    const by = new Map<string, Review>();
    const forPath = (path: string): Review => {
      let r = by.get(path);
      if (!r) {
        r = { comments: comments.filter((c) => c.path === path), add: addComment, remove: removeComment };
        by.set(path, r);
      }
      return r;
    };
    return forPath;
  }, [comments, addComment, removeComment]);
  const unsent = comments.filter((c) => !c.sent_at).length;
  const addressed = comments.filter((c) => c.addressed).length;
  const sendComments = async () => {
    if (!unsent || sending) return;
    setSending(true);
    try {
      const r = await api.sendComments(taskId);
      toast.notify(r.delivered ? 'Review comments sent to the agent.' : 'The agent is busy: the review comments wait in its message queue.', 'success');
      await loadComments();
    } catch (e) {
      toast.error(e, 'Send to agent');
    } finally {
      setSending(false);
    }
  };

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
          <FileRow key={f.path} file={f} open={open.has(f.path)} onToggle={() => toggle(f.path)} flagged={flagged} review={reviews(f.path)} />
        ))}
        {loadError && diff && <div className="inline-warn">Refresh failed: {loadError}</div>}
      </div>

      {comments.length > 0 && (
        <div className="review-bar" data-testid="review-bar">
          <span>
            {comments.length} review comment{comments.length === 1 ? '' : 's'}
            {unsent > 0 && <span className="muted"> · {unsent} not sent</span>}
            {addressed > 0 && <span className="review-addressed"> · {addressed} addressed</span>}
          </span>
          <span className="grow" />
          <button
            className="btn btn-xs btn-primary"
            data-testid="review-send"
            disabled={!unsent || sending || !isLive(task.status)}
            title={isLive(task.status) ? 'Types the comments to the agent as one message (queued while it is busy)' : 'Start the task to send comments'}
            onClick={sendComments}
          >
            {sending ? <Spinner size={11} /> : null} Send to agent
          </button>
        </div>
      )}

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
