import { Component, lazy, Suspense, type ComponentType, type ReactNode } from 'react';
import { Spinner } from './icons';

const RELOADED_KEY = 'anycode.chunkReloadAt';

/**
 * `React.lazy` for the export `name` of the module `load` imports: a chunk of its own,
 * loaded when first rendered (inside a {@link Loading}). A chunk that fails to load is
 * most likely one of another build (AnyCode was upgraded or rebuilt while this page
 * stayed open: the old build's files are gone), so the page reloads, at most once a
 * minute; after that the error shows in the {@link Loading} box.
 */
export function lazyPart<M, K extends keyof M>(load: () => Promise<M>, name: K): M[K] extends ComponentType<infer P> ? ComponentType<P> : never {
  const Lazy = lazy(() =>
    load().then(
      (m) => ({ default: m[name] as ComponentType<unknown> }),
      (e) => {
        try {
          const last = Number(sessionStorage.getItem(RELOADED_KEY) ?? 0);
          if (Date.now() - last > 60_000) {
            sessionStorage.setItem(RELOADED_KEY, String(Date.now()));
            location.reload();
            return new Promise<never>(() => {});
          }
        } catch {
          /* no sessionStorage: show the error */
        }
        throw e;
      },
    ),
  );
  return Lazy as never;
}

class LoadFailed extends Component<{ className: string; children: ReactNode }, { failed: boolean }> {
  state = { failed: false };
  static getDerivedStateFromError() {
    return { failed: true };
  }
  render() {
    if (!this.state.failed) return this.props.children;
    return (
      <div className={this.props.className} role="alert" data-testid="chunk-failed">
        <span>
          This part of AnyCode did not load.{' '}
          <button className="btn btn-xs" onClick={() => location.reload()}>
            Reload
          </button>
        </span>
      </div>
    );
  }
}

/**
 * `children`, with a spinner in a box of `className` (e.g. `empty`, `modal-backdrop`)
 * while their code loads (components made with {@link lazyPart}), and a Reload button
 * there if it could not be loaded.
 */
export function Loading({ className, children }: { className: string; children: ReactNode }) {
  return (
    <LoadFailed className={className}>
      <Suspense
        fallback={
          <div className={className} data-testid="chunk-loading">
            <Spinner size={18} />
          </div>
        }
      >
        {children}
      </Suspense>
    </LoadFailed>
  );
}
