import { useCallback, useEffect, useRef, useState } from 'react';
import { describeError, type AgentDetail, type AgentSummary, type Api, type RunRecord } from '../api';
import { StreamClient, streamUrl, type ConnectionState } from '../stream';
import { ChatWindow } from './ChatWindow';
import { Launcher } from './Launcher';
import { Taskbar } from './Taskbar';
import { Window, type Rect } from './Window';

const TASKBAR_HEIGHT = 52;
const MIN_W = 300;
const MIN_H = 240;

interface Win {
  id: string;
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
  const zTop = useRef(10);
  const launcherButton = useRef<HTMLButtonElement>(null);
  const details = useRef(new Map<string, Promise<AgentDetail>>());

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

  useEffect(() => {
    if (!notice) return;
    const t = setTimeout(() => setNotice(null), 8000);
    return () => clearTimeout(t);
  }, [notice]);

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
    requestAnimationFrame(() =>
      document.querySelector<HTMLButtonElement>(`[data-testid="taskbar-item"][data-run="${CSS.escape(id)}"]`)?.focus(),
    );
  };

  const close = (id: string) => {
    setWins((ws) => ws.filter((w) => w.id !== id));
    // The window below takes the focus; with none left, the launcher button does.
    requestAnimationFrame(() => {
      if (!document.querySelector('.window:not([hidden])')) launcherButton.current?.focus();
    });
  };

  const setRect = (id: string, rect: Rect) => setWins((ws) => ws.map((w) => (w.id === id ? { ...w, rect: fit(rect) } : w)));

  const addWindow = (id: string, agent: string) => {
    const z = ++zTop.current;
    setWins((ws) => {
      if (ws.some((w) => w.id === id)) return ws.map((w) => (w.id === id ? { ...w, z, minimized: false } : w));
      const a = area();
      const n = ws.length % 8;
      const w = Math.min(460, a.w - 24);
      const h = Math.min(580, a.h - 24);
      const x = Math.max(12, Math.min(a.w - w - 12, Math.round(a.w / 2 - w / 2 - 140 + n * 36)));
      const y = Math.max(12, Math.min(a.h - h - 12, 40 + n * 30));
      return [...ws, { id, agent, title: uniqueTitle(agent, ws), rect: fit({ x, y, w, h }), z, minimized: false }];
    });
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

  const openConversation = (run: RunRecord) => {
    addWindow(run.run_id, run.agent);
    setLauncherOpen(false);
  };

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
            agent={w.agent}
            rect={w.rect}
            z={w.z}
            focused={w.id === topId}
            minimized={w.minimized}
            onFocus={() => focus(w.id)}
            onRect={(r) => setRect(w.id, r)}
            onMinimize={() => minimize(w.id)}
            onClose={() => close(w.id)}
          >
            <ChatWindow
              api={api}
              stream={stream}
              runId={w.id}
              agent={w.agent}
              agentDetail={agentDetail}
              active={w.id === topId}
            />
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
          onOpenConversation={openConversation}
          onClose={() => closeLauncher()}
        />
      )}
      <Taskbar
        items={wins.map((w) => ({ id: w.id, title: w.title, agent: w.agent, minimized: w.minimized, focused: w.id === topId }))}
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
