import { useEffect, useRef, type ReactNode } from 'react';
import { IconX } from './icons';

export function Modal({
  title,
  onClose,
  children,
  width = 520,
  testId,
}: {
  title: ReactNode;
  onClose: () => void;
  children: ReactNode;
  width?: number;
  testId?: string;
}) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') {
        e.stopPropagation();
        onClose();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [onClose]);
  return (
    <div
      className="modal-backdrop"
      onMouseDown={(e) => {
        if (e.target === e.currentTarget) onClose();
      }}
    >
      <div className="modal" style={{ maxWidth: width }} ref={ref} role="dialog" aria-modal="true" data-testid={testId}>
        <div className="modal-head">
          <h2>{title}</h2>
          <button className="icon-btn" onClick={onClose} aria-label="Close">
            <IconX />
          </button>
        </div>
        {children}
      </div>
    </div>
  );
}

export function ConfirmDialog({
  title,
  message,
  confirmLabel,
  danger,
  busy,
  onConfirm,
  onCancel,
}: {
  title: string;
  message: ReactNode;
  confirmLabel: string;
  danger?: boolean;
  busy?: boolean;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  return (
    <Modal title={title} onClose={onCancel} width={440} testId="confirm-dialog">
      <div className="modal-body">
        <p className="confirm-text">{message}</p>
      </div>
      <div className="modal-foot">
        <button className="btn" onClick={onCancel}>
          Cancel
        </button>
        <button
          className={danger ? 'btn btn-danger' : 'btn btn-primary'}
          onClick={onConfirm}
          disabled={busy}
          autoFocus
          data-testid="confirm-ok"
        >
          {busy ? <span className="spinner" /> : null}
          {confirmLabel}
        </button>
      </div>
    </Modal>
  );
}
