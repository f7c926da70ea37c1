// Who this browser is (the owner at the desk, or a paired phone and its role).
// The server enforces roles; the UI only hides what a role cannot do.

import { createContext, useContext } from 'react';
import type { SessionInfo } from './api';

export const SessionContext = createContext<SessionInfo | null>(null);

export function useSessionInfo(): SessionInfo | null {
  return useContext(SessionContext);
}

/** Whether this browser may change things (the owner, or a control device). */
export function canControl(s: SessionInfo | null): boolean {
  return !s || s.role !== 'watch';
}
