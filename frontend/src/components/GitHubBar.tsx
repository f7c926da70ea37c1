// The task's GitHub and conflict radar bar: whether the branch merges cleanly into
// its base right now (and which other tasks touch the same files), "Update from
// base", Push, Create PR, the pull request's link, state, checks and review, Merge.
import { useCallback, useState } from 'react';
import { gh, type Conflicts, type Project, type PullRequestInfo, type Task } from '../api';
import { usePageVisible, usePoll } from '../hooks';
import { useToast } from './Toasts';
import './github.css';
import { Spinner } from './icons';

type Busy = null | 'push' | 'pr' | 'merge' | 'update' | 'refresh';

function prLabel(pr: PullRequestInfo): string {
  if (pr.state === 'open' && pr.draft) return 'draft';
  return pr.state;
}

export function GitHubBar({ task, project, onTaskChanged }: { task: Task; project: Project | undefined; onTaskChanged: (t?: Task) => void }) {
  const toast = useToast();
  const visible = usePageVisible();
  const [radar, setRadar] = useState<Conflicts | null>(null);
  const [busy, setBusy] = useState<Busy>(null);
  const [draft, setDraft] = useState(false);
  const [method, setMethod] = useState<'merge' | 'squash' | 'rebase'>('squash');
  const [deleteBranch, setDeleteBranch] = useState(true);
  const onGitHub = !!project?.github;

  const loadRadar = useCallback(async () => {
    try {
      setRadar(await gh.conflicts(task.id));
    } catch {
      setRadar(null);
    }
  }, [task.id]);
  // The radar is cheap (in memory, no network): keep it fresh while the task is shown.
  usePoll(loadRadar, 8000, visible, [task.id]);

  const run = async (kind: Exclude<Busy, null>, f: () => Promise<string | void>) => {
    setBusy(kind);
    try {
      const msg = await f();
      if (msg) toast.notify(msg, 'success');
      onTaskChanged();
      loadRadar();
    } catch (e) {
      toast.error(e, { push: 'Push', pr: 'Pull request', merge: 'Merge', update: 'Update from base', refresh: 'Refresh' }[kind]);
    } finally {
      setBusy(null);
    }
  };

  const pr = task.pr;
  return (
    <div className="gh-bar" data-testid="gh-bar">
      {radar && (
        <span
          className={`gh-radar ${radar.clean ? 'ok' : 'bad'}`}
          data-testid="radar"
          data-clean={radar.clean}
          title={radar.clean ? `Merges cleanly into ${radar.base}` : `Would conflict with ${radar.base} in:\n${radar.conflicts.join('\n')}`}
        >
          {radar.clean ? `✓ merges cleanly into ${radar.base}` : `⚠ conflicts with ${radar.base}: ${radar.conflicts.slice(0, 3).join(', ')}${radar.conflicts.length > 3 ? '…' : ''}`}
          {radar.behind > 0 && <span className="muted"> · {radar.behind} behind</span>}
        </span>
      )}
      {radar && radar.overlaps.length > 0 && (
        <span
          className="gh-overlap"
          data-testid="radar-overlaps"
          title={radar.overlaps.map((o) => `${o.title} (${o.branch}): ${o.files.join(', ')}`).join('\n')}
        >
          ⇄ also changed by {radar.overlaps.map((o) => o.title).join(', ')}
        </span>
      )}
      {radar && radar.behind > 0 && (
        <button
          className="btn btn-xs"
          data-testid="update-from-base"
          disabled={busy !== null}
          title={`Merge ${radar.base} into ${task.branch} (only when that is clean)`}
          onClick={() =>
            run('update', async () => {
              const r = await gh.updateFromBase(task.id);
              return r.result === 'up_to_date' ? 'Already up to date.' : r.result === 'fast_forward' ? `Fast-forwarded to ${radar.base}.` : `Merged ${radar.base} into the branch.`;
            })
          }
        >
          {busy === 'update' && <Spinner size={11} />} Update from base
        </button>
      )}
      <span className="gh-spacer" />
      {onGitHub && (
        <>
          <button
            className="btn btn-xs"
            data-testid="gh-push"
            disabled={busy !== null}
            title={`Push ${task.branch} to ${project?.github}`}
            onClick={() =>
              run('push', async () => {
                const r = await gh.push(task.id);
                return `Pushed ${task.branch} (${r.sha.slice(0, 7)}).`;
              })
            }
          >
            {busy === 'push' && <Spinner size={11} />} Push
          </button>
          {!pr || pr.state === 'closed' ? (
            <>
              <label className="gh-check" title="Open the pull request as a draft">
                <input type="checkbox" checked={draft} onChange={(e) => setDraft(e.target.checked)} /> draft
              </label>
              <button
                className="btn btn-xs btn-primary"
                data-testid="gh-create-pr"
                disabled={busy !== null}
                onClick={() =>
                  run('pr', async () => {
                    const p = await gh.createPr(task.id, { draft });
                    return `Pull request #${p.number} is ${p.state}.`;
                  })
                }
              >
                {busy === 'pr' && <Spinner size={11} />} Create PR
              </button>
            </>
          ) : (
            <>
              <a className={`gh-pr state-${pr.state}`} href={pr.url} target="_blank" rel="noreferrer" data-testid="gh-pr-link" title={pr.refresh_error ?? `Refreshed ${pr.refreshed_at}`}>
                #{pr.number} {prLabel(pr)}
              </a>
              {pr.checks && pr.checks !== 'none' && (
                <span className={`chip gh-checks checks-${pr.checks}`} data-testid="gh-checks" title="Checks">
                  {pr.checks === 'success' ? '✓ checks' : pr.checks === 'failure' ? '✗ checks' : '… checks'}
                </span>
              )}
              {pr.review && pr.review !== 'none' && (
                <span className={`chip gh-review review-${pr.review}`} data-testid="gh-review">
                  {pr.review === 'approved' ? 'approved' : 'changes requested'}
                </span>
              )}
              {pr.refresh_error && (
                <span className="gh-stale" title={pr.refresh_error}>
                  ⚠
                </span>
              )}
              <button className="btn btn-xs" disabled={busy !== null} onClick={() => run('refresh', async () => void (await gh.refreshPr(task.id)))} title="Refresh from GitHub">
                {busy === 'refresh' ? <Spinner size={11} /> : '↻'}
              </button>
              {pr.state === 'open' && (
                <>
                  <select className="input input-xs" value={method} onChange={(e) => setMethod(e.target.value as typeof method)} aria-label="Merge method">
                    <option value="merge">merge commit</option>
                    <option value="squash">squash</option>
                    <option value="rebase">rebase</option>
                  </select>
                  <label className="gh-check" title="Delete the branch on GitHub after merging (your local branch stays)">
                    <input type="checkbox" checked={deleteBranch} onChange={(e) => setDeleteBranch(e.target.checked)} /> delete branch
                  </label>
                  <button
                    className="btn btn-xs btn-primary"
                    data-testid="gh-merge"
                    disabled={busy !== null}
                    onClick={() =>
                      run('merge', async () => {
                        const r = await gh.merge(task.id, method, deleteBranch);
                        return `Merged #${r.pr.number}: ${r.message}`;
                      })
                    }
                  >
                    {busy === 'merge' && <Spinner size={11} />} Merge
                  </button>
                </>
              )}
            </>
          )}
        </>
      )}
    </div>
  );
}
