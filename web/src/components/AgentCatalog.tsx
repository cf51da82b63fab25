import { useEffect, useRef, useState, type KeyboardEvent } from 'react';
import { describeError, type AgentDetail, type AgentSummary, type Api } from '../api';
import { contractGroups } from '../catalog';

interface Props {
  api: Api;
  /** The window is shown and on top. */
  active: boolean;
  /** Starts a conversation with the agent (as the launcher does). */
  onOpenAgent: (name: string) => void;
  /** Starts a run of an agent that holds no conversation (the debugger shows it). */
  onStartAgent: (name: string) => void;
  /** The agent whose conversation is being opened, if any. */
  opening: string | null;
}

/** The agent catalog: every agent this server has, and for the one selected, its contract. */
export function AgentCatalog({ api, active, onOpenAgent, onStartAgent, opening }: Props) {
  const [agents, setAgents] = useState<AgentSummary[] | null>(null);
  const [listError, setListError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);
  const [detail, setDetail] = useState<AgentDetail | null>(null);
  const [detailError, setDetailError] = useState<string | null>(null);
  const root = useRef<HTMLDivElement>(null);
  const list = useRef<HTMLUListElement>(null);

  useEffect(() => {
    let live = true;
    api.agents().then(
      (r) => {
        if (!live) return;
        const sorted = [...(r.agents ?? [])].sort((a, b) => a.name.localeCompare(b.name));
        setAgents(sorted);
        setSelected((s) => s ?? sorted[0]?.name ?? null);
      },
      (e) => live && setListError(`Cannot list the agents: ${describeError(e)}`),
    );
    return () => {
      live = false;
    };
  }, [api]);

  useEffect(() => {
    if (!selected) return;
    let live = true;
    setDetail(null);
    setDetailError(null);
    api.agent(selected).then(
      (d) => live && setDetail(d),
      (e) => live && setDetailError(`Cannot read agent ${selected}: ${describeError(e)}`),
    );
    return () => {
      live = false;
    };
  }, [api, selected]);

  useEffect(() => {
    if (active && !root.current?.contains(document.activeElement)) root.current?.focus();
  }, [active]);

  // Up and down move through the list, as in the launcher.
  const onListKey = (e: KeyboardEvent) => {
    if (!agents || agents.length === 0 || (e.key !== 'ArrowDown' && e.key !== 'ArrowUp')) return;
    e.preventDefault();
    const i = Math.max(0, agents.findIndex((a) => a.name === selected));
    const next = e.key === 'ArrowDown' ? Math.min(agents.length - 1, i + 1) : Math.max(0, i - 1);
    setSelected(agents[next].name);
    list.current?.querySelectorAll<HTMLButtonElement>('button')[next]?.focus();
  };

  const summary = agents?.find((a) => a.name === selected) ?? null;
  const groups = contractGroups(detail);
  const actions = detail?.graph?.actions;

  return (
    <div className="tool catalog" ref={root} tabIndex={-1} data-testid="catalog-window" aria-label="Agent catalog">
      {listError && (
        <p className="tool-error" role="alert">
          {listError}
        </p>
      )}
      <div className="catalog-panes">
        <ul className="catalog-list" ref={list} aria-label="Agents" onKeyDown={onListKey}>
          {agents === null && !listError && <li className="tool-note">Loading…</li>}
          {agents?.length === 0 && <li className="tool-note">This server has no agents.</li>}
          {agents?.map((a) => (
            <li key={a.name}>
              <button
                type="button"
                className={`catalog-agent${a.name === selected ? ' selected' : ''}`}
                aria-current={a.name === selected ? 'true' : undefined}
                data-testid="catalog-agent"
                data-agent={a.name}
                onClick={() => setSelected(a.name)}
              >
                <span className="catalog-name">{a.name}</span>
                <span className={`latency latency-${(a.latency ?? 'SRT').toLowerCase()}`}>{a.latency ?? 'SRT'}</span>
              </button>
            </li>
          ))}
        </ul>
        <section className="catalog-detail" aria-live="polite" data-testid="catalog-detail" data-agent={selected ?? undefined}>
          {selected && (
            <header className="catalog-head">
              <div>
                <h3>{selected}</h3>
                {(detail?.description || summary?.description) && <p className="tool-note">{detail?.description || summary?.description}</p>}
              </div>
              {summary?.conversable !== false ? (
                <button
                  type="button"
                  className="tool-button"
                  data-testid="catalog-talk"
                  disabled={opening === selected}
                  onClick={() => onOpenAgent(selected)}
                >
                  {opening === selected ? 'Opening…' : 'Talk to it'}
                </button>
              ) : (
                <button
                  type="button"
                  className="tool-button"
                  data-testid="catalog-start"
                  disabled={opening === selected}
                  title="It holds no conversation: start a run of it on the server and watch it in the run debugger"
                  onClick={() => onStartAgent(selected)}
                >
                  {opening === selected ? 'Starting…' : 'Start a run'}
                </button>
              )}
            </header>
          )}
          {detailError && (
            <p className="tool-error" role="alert">
              {detailError}
            </p>
          )}
          {detail && !detail.contract && <p className="tool-note">This agent has no contract: no kernel admits it.</p>}
          {groups.map((g) => (
            <div key={g.title} className="catalog-group" data-testid="catalog-group" data-title={g.title}>
              <h4>{g.title}</h4>
              <dl>
                {g.facts.map((f, i) => (
                  <div key={`${f.label}-${i}`} className="catalog-fact" data-label={f.label}>
                    <dt>{f.label}</dt>
                    <dd>
                      {f.value}
                      {f.note && <span className={`catalog-note${f.tone ? ` ${f.tone}` : ''}`}>{f.note}</span>}
                    </dd>
                  </div>
                ))}
              </dl>
            </div>
          ))}
          {detail && Array.isArray(actions) && (
            <p className="tool-note">
              Its graph has {actions.length} {actions.length === 1 ? 'action' : 'actions'}
              {detail.listening_action ? `; a message goes to ${detail.listening_action}` : ''}.
            </p>
          )}
        </section>
      </div>
    </div>
  );
}
