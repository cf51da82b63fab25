import { useCallback, useEffect, useRef, useState } from 'react';
import { ApiError, describeError, type AgentDetail, type AgentSummary, type Api, type ConsentRecord, type RunRecord } from '../api';
import { describeCall, isPending, pendingCount } from '../consents';
import { StreamClient, streamUrl, type ConnectionState, type RunListener } from '../stream';
import { AgentCatalog } from './AgentCatalog';
import { AuditViewer } from './AuditViewer';
import { ChatWindow } from './ChatWindow';
import { ConsentInbox } from './ConsentInbox';
import { Launcher } from './Launcher';
import { RunDebugger } from './RunDebugger';
import { Taskbar, type ToolItem } from './Taskbar';
import { Window, type Rect } from './Window';

const TASKBAR_HEIGHT = 52;
const MIN_W = 300;
const MIN_H = 240;
/** How often the pending consent requests are read (besides when a chat's turn ends waiting for one). */
const CONSENT_POLL_MS = 4000;

type ToolId = ToolItem['id'];

/** The desktop's own windows: their ids, titles and default sizes. */
const TOOLS: Record<ToolId, { title: string; icon: string; w: number; h: number }> = {
  consents: { title: 'Consents', icon: '✓', w: 540, h: 600 },
  audit: { title: 'Audit log', icon: '≡', w: 980, h: 560 },
  runs: { title: 'Runs', icon: 'R', w: 1180, h: 680 },
  catalog: { title: 'Agent catalog', icon: 'A', w: 860, h: 620 },
};

const isTool = (id: string): id is ToolId => Object.prototype.hasOwnProperty.call(TOOLS, id);

interface Win {
  id: string;
  kind: 'chat' | ToolId;
  /** The agent of a chat window ('' for the desktop's own windows). */
  agent: string;
  title: string;
  rect: Rect;
  z: number;
  minimized: boolean;
}

interface Props {
  api: Api;
  token: string;
  agents: AgentSummary[];
  onSignOut: () => void;
}

function area() {
  return { w: window.innerWidth, h: Math.max(MIN_H, window.innerHeight - TASKBAR_HEIGHT) };
}

const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, v));

/** Keeps a window's title bar within reach and its size sensible. */
function fit(r: Rect): Rect {
  const a = area();
  const w = clamp(Math.round(r.w), MIN_W, Math.max(MIN_W, a.w));
  const h = clamp(Math.round(r.h), MIN_H, Math.max(MIN_H, a.h));
  return { w, h, x: clamp(Math.round(r.x), 96 - w, a.w - 96), y: clamp(Math.round(r.y), 0, a.h - 40) };
}

function uniqueTitle(agent: string, wins: Win[]): string {
  const taken = new Set(wins.map((w) => w.title));
  if (!taken.has(agent)) return agent;
  for (let i = 2; ; i++) if (!taken.has(`${agent} (${i})`)) return `${agent} (${i})`;
}

export function Desktop({ api, token, agents: initialAgents, onSignOut }: Props) {
  const [stream, setStream] = useState<StreamClient | null>(null);
  const [connection, setConnection] = useState<ConnectionState>('connecting');
  const [who, setWho] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const [agents, setAgents] = useState<AgentSummary[] | null>(initialAgents);
  const [conversations, setConversations] = useState<RunRecord[] | null>(null);
  const [launcherOpen, setLauncherOpen] = useState(false);
  const [launcherError, setLauncherError] = useState<string | null>(null);
  const [opening, setOpening] = useState<string | null>(null);

  const [wins, setWins] = useState<Win[]>([]);
  /** The run the debugger was last asked to show (a chat window's "debug" button). */
  const [debugTarget, setDebugTarget] = useState<{ run: string; n: number } | null>(null);
  const zTop = useRef(10);
  const launcherButton = useRef<HTMLButtonElement>(null);
  const details = useRef(new Map<string, Promise<AgentDetail>>());

  const [pending, setPending] = useState<ConsentRecord[] | null>(null);
  const [consentError, setConsentError] = useState<string | null>(null);
  const [answered, setAnswered] = useState<ReadonlyMap<string, ConsentRecord>>(new Map());
  const consentRead = useRef(0);
  const consentsMissing = useRef(false);

  useEffect(() => {
    const s = new StreamClient(streamUrl(), token, { fetchSteps: (run, from) => api.steps(run, from) });
    s.onState = setConnection;
    s.onReady = ({ tenant, user }) => setWho(tenant && user ? `${user}@${tenant}` : user || null);
    s.onError = (message) => setNotice(`The stream says: ${message}`);
    setStream(s);
    setConnection(s.connection);
    return () => {
      s.close();
      setStream(null);
    };
  }, [api, token]);

  // The debugger follows its run on a connection of its own (the stream has one listener per run).
  const debugStream = useRef<StreamClient | null>(null);
  useEffect(
    () => () => {
      debugStream.current?.close();
      debugStream.current = null;
    },
    [api, token],
  );
  const follow = useCallback(
    (runId: string, cursor: number, listener: RunListener) => {
      if (!debugStream.current) {
        debugStream.current = new StreamClient(streamUrl(), token, { fetchSteps: (run, from) => api.steps(run, from) });
      }
      return debugStream.current.subscribe(runId, listener, cursor);
    },
    [api, token],
  );

  useEffect(() => {
    if (!notice) return;
    const t = setTimeout(() => setNotice(null), 8000);
    return () => clearTimeout(t);
  }, [notice]);

  // ---- consent requests ----

  /** Reads the pending requests (the latest read wins). */
  const refreshConsents = useCallback(async () => {
    const n = ++consentRead.current;
    try {
      const r = await api.consents('pending');
      if (n !== consentRead.current) return;
      consentsMissing.current = false;
      setPending((r.consents ?? []).filter(isPending));
      setConsentError(null);
    } catch (e) {
      if (n !== consentRead.current) return;
      // A server without consent requests: say so once, and stop asking.
      if (e instanceof ApiError && e.status === 404) consentsMissing.current = true;
      setConsentError(`Cannot read the consent requests: ${describeError(e)}`);
    }
  }, [api]);

  useEffect(() => {
    void refreshConsents();
    const t = setInterval(() => {
      if (!document.hidden && !consentsMissing.current) void refreshConsents();
    }, CONSENT_POLL_MS);
    return () => clearInterval(t);
  }, [refreshConsents]);

  const onAnswered = useCallback(
    (record: ConsentRecord) => {
      setAnswered((m) => new Map(m).set(record.id, record));
      void refreshConsents();
    },
    [refreshConsents],
  );

  const waiting = pending === null ? null : pendingCount(pending, answered);

  // A smaller browser window keeps every window's title bar within reach.
  useEffect(() => {
    const refit = () => setWins((ws) => ws.map((w) => ({ ...w, rect: fit(w.rect) })));
    window.addEventListener('resize', refit);
    return () => window.removeEventListener('resize', refit);
  }, []);

  const agentDetail = useCallback(
    (name: string) => {
      let p = details.current.get(name);
      if (!p) {
        p = api.agent(name);
        details.current.set(name, p);
        p.catch(() => details.current.delete(name));
      }
      return p;
    },
    [api],
  );

  // ---- windows ----

  const topId = wins.reduce<Win | null>((top, w) => (!w.minimized && (!top || w.z > top.z) ? w : top), null)?.id;

  const focus = useCallback((id: string) => {
    const z = ++zTop.current;
    setWins((ws) => ws.map((w) => (w.id === id ? { ...w, z, minimized: false } : w)));
  }, []);

  const minimize = (id: string) => {
    setWins((ws) => ws.map((w) => (w.id === id ? { ...w, minimized: true } : w)));
    // Keyboard users land on the window's taskbar button, which restores it.
    requestAnimationFrame(() => document.querySelector<HTMLButtonElement>(`.taskbar button[data-run="${CSS.escape(id)}"]`)?.focus());
  };

  const close = (id: string) => {
    setWins((ws) => ws.filter((w) => w.id !== id));
    // Answers given in the inbox stay in view until it closes.
    if (id === 'consents') setAnswered(new Map());
    // The window below takes the focus; with none left, the launcher button does.
    requestAnimationFrame(() => {
      if (!document.querySelector('.window:not([hidden])')) launcherButton.current?.focus();
    });
  };

  const setRect = (id: string, rect: Rect) => setWins((ws) => ws.map((w) => (w.id === id ? { ...w, rect: fit(rect) } : w)));

  /** Opens a window (a chat with `agent`, or one of the desktop's own), or brings it to the front. */
  const addWindow = useCallback((id: string, agent: string) => {
    const z = ++zTop.current;
    setWins((ws) => {
      if (ws.some((w) => w.id === id)) return ws.map((w) => (w.id === id ? { ...w, z, minimized: false } : w));
      const a = area();
      const n = ws.length % 8;
      if (isTool(id)) {
        // The desktop's own windows open to the right of the chats.
        const t = TOOLS[id];
        const w = Math.min(t.w, a.w - 24);
        const h = Math.min(t.h, a.h - 24);
        const x = Math.max(12, Math.min(a.w - w - 12, Math.round(a.w - w - 40 - n * 24)));
        const y = Math.max(12, Math.min(a.h - h - 12, 28 + n * 24));
        return [...ws, { id, kind: id, agent: '', title: t.title, rect: fit({ x, y, w, h }), z, minimized: false }];
      }
      const w = Math.min(460, a.w - 24);
      const h = Math.min(580, a.h - 24);
      const x = Math.max(12, Math.min(a.w - w - 12, Math.round(a.w / 2 - w / 2 - 140 + n * 36)));
      const y = Math.max(12, Math.min(a.h - h - 12, 40 + n * 30));
      return [...ws, { id, kind: 'chat', agent, title: uniqueTitle(agent, ws), rect: fit({ x, y, w, h }), z, minimized: false }];
    });
  }, []);

  const openDebugger = useCallback(
    (run: string) => {
      setDebugTarget((t) => ({ run, n: (t?.n ?? 0) + 1 }));
      addWindow('runs', '');
    },
    [addWindow],
  );

  const openConsents = useCallback(() => {
    addWindow('consents', '');
    void refreshConsents();
  }, [addWindow, refreshConsents]);

  /** A tool's taskbar button: opens its window, shows it, or minimizes it when it is on top. */
  const onTool = (id: ToolId) => {
    const w = wins.find((x) => x.id === id);
    if (w && !w.minimized && w.id === topId) minimize(id);
    else if (id === 'consents') openConsents();
    else addWindow(id, '');
  };

  const toolState = (id: ToolId): ToolItem['window'] => {
    const w = wins.find((x) => x.id === id);
    if (!w) return 'closed';
    if (w.minimized) return 'minimized';
    return w.id === topId ? 'focused' : 'shown';
  };

  const onTaskItem = (id: string) => {
    const w = wins.find((x) => x.id === id);
    if (!w) return;
    if (!w.minimized && w.id === topId) minimize(id);
    else focus(id);
  };

  // ---- the launcher ----

  const closeLauncher = useCallback((refocus = true) => {
    setLauncherOpen(false);
    if (refocus) launcherButton.current?.focus();
  }, []);

  const openLauncher = () => {
    setLauncherOpen(true);
    setLauncherError(null);
    api.agents().then(
      (r) => setAgents(r.agents ?? []),
      (e) => setLauncherError(`Cannot list the agents: ${describeError(e)}`),
    );
    api.conversations().then(
      (r) => setConversations(r.conversations ?? []),
      () => setConversations(null),
    );
  };

  useEffect(() => {
    if (!launcherOpen) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') closeLauncher();
    };
    const onPointer = (e: PointerEvent) => {
      const t = e.target as Element | null;
      if (!t?.closest('.launcher, .launcher-button')) closeLauncher(false);
    };
    document.addEventListener('keydown', onKey);
    document.addEventListener('pointerdown', onPointer);
    return () => {
      document.removeEventListener('keydown', onKey);
      document.removeEventListener('pointerdown', onPointer);
    };
  }, [launcherOpen, closeLauncher]);

  const openAgent = async (name: string) => {
    setOpening(name);
    setLauncherError(null);
    try {
      const r = await api.openConversation(name);
      addWindow(r.run_id, r.agent || name);
      setLauncherOpen(false);
    } catch (e) {
      setLauncherError(`Cannot start a conversation with ${name}: ${describeError(e)}`);
    } finally {
      setOpening(null);
    }
  };

  /** An agent that holds no conversation: a run of it starts on the server, watched in the debugger. */
  const startAgent = async (name: string) => {
    setOpening(name);
    setLauncherError(null);
    try {
      const r = await api.startRun(name);
      setLauncherOpen(false);
      openDebugger(r.run_id);
    } catch (e) {
      const message = `Cannot start a run of ${name}: ${describeError(e)}`;
      setLauncherError(message);
      setNotice(message);
    } finally {
      setOpening(null);
    }
  };

  const openConversation = (run: RunRecord) => {
    addWindow(run.run_id, run.agent);
    setLauncherOpen(false);
  };

  const openTool = (id: ToolId) => {
    setLauncherOpen(false);
    if (id === 'consents') openConsents();
    else addWindow(id, '');
  };

  /** What each run waits for consent to do, from the pending requests (the oldest first). */
  const consentHints = new Map<string, string>();
  for (const c of pending ?? []) {
    if (c.run_id && !answered.has(c.id) && !consentHints.has(c.run_id)) consentHints.set(c.run_id, describeCall(c.capability, c.argument));
  }

  return (
    <div className="desktop-shell">
      <main className="desktop" aria-label="Desktop">
        {wins.length === 0 && (
          <div className="wallpaper-hint" aria-hidden="true">
            <div className="wallpaper-mark">ChoirOS</div>
            <p>Open the launcher to talk to an agent.</p>
          </div>
        )}
        {wins.map((w) => (
          <Window
            key={w.id}
            id={w.id}
            title={w.title}
            agent={w.kind === 'chat' ? w.agent : undefined}
            icon={w.kind === 'chat' ? w.agent.slice(0, 1).toUpperCase() : TOOLS[w.kind].icon}
            system={w.kind !== 'chat'}
            rect={w.rect}
            z={w.z}
            focused={w.id === topId}
            minimized={w.minimized}
            onFocus={() => focus(w.id)}
            onRect={(r) => setRect(w.id, r)}
            onMinimize={() => minimize(w.id)}
            onClose={() => close(w.id)}
            actions={
              w.kind === 'chat' && (
                <button
                  type="button"
                  className="control debug"
                  data-testid="debug-run"
                  aria-label={`Debug the run of ${w.title}`}
                  title="Open this conversation's run in the debugger"
                  onClick={() => openDebugger(w.id)}
                >
                  debug
                </button>
              )
            }
          >
            {w.kind === 'consents' ? (
              <ConsentInbox
                api={api}
                pending={pending}
                error={consentError}
                answered={answered}
                active={w.id === topId}
                onAnswered={onAnswered}
                onRefresh={() => void refreshConsents()}
                onOpenRun={addWindow}
              />
            ) : w.kind === 'audit' ? (
              <AuditViewer api={api} visible={!w.minimized} active={w.id === topId} />
            ) : w.kind === 'catalog' ? (
              <AgentCatalog
                api={api}
                active={w.id === topId}
                opening={opening}
                onOpenAgent={(name) => void openAgent(name)}
                onStartAgent={(name) => void startAgent(name)}
              />
            ) : w.kind === 'runs' ? (
              <RunDebugger api={api} agentDetail={agentDetail} target={debugTarget} active={w.id === topId} onOpenChat={addWindow} follow={follow} />
            ) : (
              <ChatWindow
                api={api}
                stream={stream}
                runId={w.id}
                agent={w.agent}
                agentDetail={agentDetail}
                active={w.id === topId}
                consentHint={consentHints.get(w.id) ?? null}
                onWaitingConsent={refreshConsents}
                onOpenConsents={openConsents}
              />
            )}
          </Window>
        ))}
        {notice && (
          <div className="notice" role="alert">
            <span>{notice}</span>
            <button type="button" aria-label="Dismiss" onClick={() => setNotice(null)}>
              ×
            </button>
          </div>
        )}
      </main>
      {launcherOpen && (
        <Launcher
          agents={agents}
          conversations={conversations}
          error={launcherError}
          opening={opening}
          onOpenAgent={(name) => void openAgent(name)}
          onStartAgent={(name) => void startAgent(name)}
          onOpenConversation={openConversation}
          onOpenTool={openTool}
          pendingConsents={waiting}
          onClose={() => closeLauncher()}
        />
      )}
      <Taskbar
        items={wins
          .filter((w) => w.kind === 'chat')
          .map((w) => ({ id: w.id, title: w.title, agent: w.agent, minimized: w.minimized, focused: w.id === topId }))}
        tools={[
          { id: 'consents', label: 'Consents', count: waiting, window: toolState('consents') },
          { id: 'audit', label: 'Audit', window: toolState('audit') },
          { id: 'runs', label: 'Runs', window: toolState('runs') },
          { id: 'catalog', label: 'Catalog', window: toolState('catalog') },
        ]}
        onTool={onTool}
        launcherOpen={launcherOpen}
        launcherButton={launcherButton}
        connection={connection}
        who={who}
        onLauncher={() => (launcherOpen ? closeLauncher() : openLauncher())}
        onItem={onTaskItem}
        onSignOut={onSignOut}
      />
    </div>
  );
}
