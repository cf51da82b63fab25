import { useEffect, useRef, type KeyboardEvent } from 'react';
import type { AgentSummary, RunRecord } from '../api';
import { ago } from '../time';

const LATENCY: Record<string, string> = {
  HRT: 'hard real-time',
  SRT: 'soft real-time',
  DT: 'delay-tolerant (runs in the background)',
};

interface Props {
  agents: AgentSummary[] | null;
  conversations: RunRecord[] | null;
  error: string | null;
  opening: string | null;
  onOpenAgent: (name: string) => void;
  /** Starts a run of an agent that holds no conversation. */
  onStartAgent: (name: string) => void;
  onOpenConversation: (run: RunRecord) => void;
  /** The desktop's own windows. */
  onOpenTool: (id: 'consents' | 'audit' | 'catalog') => void;
  /** Consent requests waiting for an answer (null: unknown). */
  pendingConsents: number | null;
  onClose: () => void;
}

/** The start menu: the agents to talk to, and the latest conversations to reopen. */
export function Launcher({
  agents,
  conversations,
  error,
  opening,
  onOpenAgent,
  onStartAgent,
  onOpenConversation,
  onOpenTool,
  pendingConsents,
  onClose,
}: Props) {
  const panel = useRef<HTMLDivElement>(null);
  // The agents one can talk to first, then by name.
  const sorted = agents
    ? [...agents].sort((a, b) => Number(a.conversable === false) - Number(b.conversable === false) || a.name.localeCompare(b.name))
    : null;

  useEffect(() => {
    // The first agent that can hold a conversation takes the focus (once the list is there).
    if (panel.current?.contains(document.activeElement)) return;
    panel.current?.querySelector<HTMLButtonElement>('.agent:not(:disabled)')?.focus();
  }, [agents]);

  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      onClose();
      return;
    }
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      const items = [...(panel.current?.querySelectorAll<HTMLButtonElement>('button:not(:disabled)') ?? [])];
      if (items.length === 0) return;
      e.preventDefault();
      const i = items.indexOf(document.activeElement as HTMLButtonElement);
      const next = e.key === 'ArrowDown' ? (i + 1) % items.length : (i - 1 + items.length) % items.length;
      items[next].focus();
    }
  };

  return (
    <div
      className="launcher"
      ref={panel}
      role="dialog"
      aria-label="Launcher"
      data-testid="launcher"
      onKeyDown={onKeyDown}
    >
      <h2 className="launcher-heading">Agents</h2>
      {error && (
        <p className="launcher-error" role="alert">
          {error}
        </p>
      )}
      {agents === null && !error && <p className="launcher-note">Loading…</p>}
      {agents?.length === 0 && <p className="launcher-note">No agents are loaded (choir serve --agents DIR).</p>}
      <ul className="agent-list">
        {sorted?.map((a) => {
          const conversable = a.conversable !== false;
          const latency = a.latency ?? '';
          return (
            <li key={a.name}>
              <button
                type="button"
                className="agent"
                data-testid={`agent-${a.name}`}
                disabled={opening !== null}
                aria-busy={opening === a.name}
                title={
                  conversable
                    ? `Start a conversation with ${a.name}`
                    : `${a.name} holds no conversation (no human action takes a "message"): start a run of it, watched in the run debugger`
                }
                onClick={() => (conversable ? onOpenAgent(a.name) : onStartAgent(a.name))}
              >
                <span className="agent-avatar" aria-hidden="true">
                  {a.name.slice(0, 1).toUpperCase()}
                </span>
                <span className="agent-text">
                  <span className="agent-name">
                    {a.name}
                    {!conversable && <span className="agent-tag">starts a run</span>}
                    {opening === a.name && <span className="agent-tag">opening…</span>}
                  </span>
                  {a.description && <span className="agent-description">{a.description}</span>}
                </span>
                {latency && (
                  <span className={`latency latency-${latency.toLowerCase()}`} title={LATENCY[latency] ?? latency}>
                    {latency}
                  </span>
                )}
              </button>
            </li>
          );
        })}
      </ul>
      {conversations && conversations.length > 0 && (
        <>
          <h2 className="launcher-heading">Recent conversations</h2>
          <ul className="recent-list">
            {conversations.slice(0, 6).map((run) => (
              <li key={run.run_id}>
                <button
                  type="button"
                  className="recent"
                  data-testid={`conversation-${run.run_id}`}
                  title={`Reopen conversation ${run.run_id}`}
                  onClick={() => onOpenConversation(run)}
                >
                  <span className="recent-agent">{run.agent}</span>
                  <span className="recent-meta">
                    {run.status} · {ago(run.updated_ms ?? run.created_ms)}
                  </span>
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
      <h2 className="launcher-heading">Oversight</h2>
      <ul className="recent-list">
        <li>
          <button type="button" className="recent" data-testid="tool-consents" onClick={() => onOpenTool('consents')}>
            <span className="recent-agent">Consent inbox</span>
            <span className="recent-meta">
              {pendingConsents === null ? 'approve or deny calls' : pendingConsents === 0 ? 'nothing waiting' : `${pendingConsents} waiting`}
            </span>
          </button>
        </li>
        <li>
          <button type="button" className="recent" data-testid="tool-audit" onClick={() => onOpenTool('audit')}>
            <span className="recent-agent">Audit log</span>
            <span className="recent-meta">every decision, verified</span>
          </button>
        </li>
        <li>
          <button type="button" className="recent" data-testid="tool-catalog" onClick={() => onOpenTool('catalog')}>
            <span className="recent-agent">Agent catalog</span>
            <span className="recent-meta">contracts: class, SLOs, capabilities, models</span>
          </button>
        </li>
      </ul>
    </div>
  );
}
