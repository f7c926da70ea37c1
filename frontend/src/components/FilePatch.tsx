// One file's patch in the Changes panel (react-diff-view), with its review comments:
// a chunk of its own, loaded when a file is first opened.

import { memo, useMemo, useState, type ReactNode } from 'react';
import { Decoration, Diff, Hunk, computeNewLineNumber, getChangeKey, parseDiff, type ChangeData, type FileData, type HunkData } from 'react-diff-view';
import type { DiffFile, ReviewComment } from '../api';
import { Spinner } from './icons';

const MAX_AUTO_LINES = 2500;

function parsePatch(patch: string): FileData | null {
  try {
    const files = parseDiff(patch, { nearbySequences: 'zip' });
    return files[0] ?? null;
  } catch {
    return null;
  }
}

/** What the Changes panel does with review comments (see the engine's `review.rs`). */
export interface Review {
  /** The task's comments on this file. */
  comments: ReviewComment[];
  add: (path: string, line: number, body: string) => Promise<boolean>;
  remove: (id: string) => void;
}

function CommentView({ c, onRemove }: { c: ReviewComment; onRemove: () => void }) {
  const state = c.addressed ? 'addressed' : c.sent_at ? 'sent' : 'draft';
  return (
    <div className={`review-comment ${state}`} data-testid={`review-comment-${c.line}`} data-state={state}>
      <span className="review-state">{state === 'addressed' ? '✓ addressed' : state === 'sent' ? 'sent' : 'not sent'}</span>
      <span className="review-body">{c.body}</span>
      <button className="link-btn" title="Delete this comment" onClick={onRemove}>
        Delete
      </button>
    </div>
  );
}

function CommentForm({ onSave, onCancel }: { onSave: (body: string) => Promise<boolean>; onCancel: () => void }) {
  const [body, setBody] = useState('');
  const [saving, setSaving] = useState(false);
  const save = async () => {
    if (!body.trim() || saving) return;
    setSaving(true);
    const ok = await onSave(body.trim());
    setSaving(false);
    if (ok) onCancel();
  };
  return (
    <div className="review-form">
      <textarea
        className="input"
        data-testid="review-input"
        rows={2}
        autoFocus
        placeholder="Comment for the agent (Ctrl+Enter to add, Esc to cancel)"
        value={body}
        onChange={(e) => setBody(e.target.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
            e.preventDefault();
            save();
          } else if (e.key === 'Escape') {
            e.preventDefault();
            onCancel();
          }
        }}
      />
      <div className="review-form-actions">
        <button className="btn btn-xs btn-ghost" onClick={onCancel}>
          Cancel
        </button>
        <button className="btn btn-xs btn-primary" data-testid="review-add" disabled={!body.trim() || saving} onClick={save}>
          {saving ? <Spinner size={11} /> : null} Add comment
        </button>
      </div>
    </div>
  );
}

/** The new-side line of a change, or null for a deleted line (comments go on the new side). */
function newLine(change: ChangeData): number | null {
  return change.type === 'delete' ? null : computeNewLineNumber(change);
}

export const FilePatch = memo(function FilePatch({ file, review }: { file: DiffFile; review: Review }) {
  const lineCount = useMemo(() => file.patch.split('\n').length, [file.patch]);
  const [forced, setForced] = useState(false);
  const [drafting, setDrafting] = useState<number | null>(null);
  const parsed = useMemo(() => (file.binary ? null : parsePatch(file.patch)), [file.patch, file.binary]);
  const widgets = useMemo(() => {
    const out: Record<string, ReactNode> = {};
    if (!parsed) return out;
    for (const h of parsed.hunks) {
      for (const ch of h.changes) {
        const line = newLine(ch);
        if (line === null) continue;
        const here = review.comments.filter((c) => c.line === line);
        if (here.length === 0 && drafting !== line) continue;
        out[getChangeKey(ch)] = (
          <div className="review-thread">
            {here.map((c) => (
              <CommentView key={c.id} c={c} onRemove={() => review.remove(c.id)} />
            ))}
            {drafting === line && (
              <CommentForm onSave={(body) => review.add(file.path, line, body)} onCancel={() => setDrafting(null)} />
            )}
          </div>
        );
      }
    }
    return out;
  }, [parsed, review, drafting, file.path]);
  const gutterEvents = useMemo(
    () => ({
      onClick: ({ change }: { change: ChangeData | null }) => {
        const line = change ? newLine(change) : null;
        if (line !== null) setDrafting(line);
      },
    }),
    [],
  );

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
      <Diff
        viewType="unified"
        diffType={parsed.type}
        hunks={parsed.hunks}
        gutterType="default"
        widgets={widgets}
        gutterEvents={gutterEvents}
        className="diff-reviewable"
      >
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

