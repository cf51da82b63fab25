import { useEffect, useState, type Ref } from 'react';
import type { ConnectionState } from '../stream';

export interface TaskItem {
  id: string;
  title: string;
  agent: string;
  minimized: boolean;
  focused: boolean;
}

/** A button for one of the desktop's own windows (the consent inbox, the audit log). */
export interface ToolItem {
  id: 'consents' | 'audit' | 'runs' | 'catalog';
  label: string;
  /** A count to show on a badge (the requests waiting for an answer); none: no badge. */
  count?: number | null;
  window: 'closed' | 'minimized' | 'shown' | 'focused';
}

interface Props {
  items: TaskItem[];
  tools: ToolItem[];
  launcherOpen: boolean;
  launcherButton: Ref<HTMLButtonElement>;
  connection: ConnectionState;
  who: string | null;
  onLauncher: () => void;
  onItem: (id: string) => void;
  onTool: (id: ToolItem['id']) => void;
  onSignOut: () => void;
}

const TOOL_ICON: Record<ToolItem['id'], string> = {
  // A shield with a check: requests for consent.
  consents: 'M10 2.5l6 2.2v4.6c0 3.9-2.6 6.6-6 8.2-3.4-1.6-6-4.3-6-8.2V4.7l6-2.2zM7 10l2 2 4-4.2',
  // A list: the audit log.
  audit: 'M4 5h12M4 10h12M4 15h8',
  // A timeline with a branch: the run debugger.
  runs: 'M5 3v14M5 6h6M5 11h9M11 6l3 3',
  // A card with lines: the agent catalog.
  catalog: 'M3.5 4.5h13v11h-13zM6.5 8h7M6.5 11h5',
};

function Clock() {
  const [now, setNow] = useState(() => new Date());
  useEffect(() => {
    const t = setInterval(() => setNow(new Date()), 15_000);
    return () => clearInterval(t);
  }, []);
  return (
    <time className="clock" dateTime={now.toISOString()}>
      {now.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}
    </time>
  );
}

const CONNECTION: Record<ConnectionState, string> = {
  connecting: 'Connecting to the stream…',
  ready: 'Connected',
  offline: 'Offline: reconnecting…',
};

export function Taskbar(props: Props) {
  return (
    <nav className="taskbar" aria-label="Taskbar">
      <button
        type="button"
        ref={props.launcherButton}
        className={`launcher-button${props.launcherOpen ? ' open' : ''}`}
        data-testid="launcher-button"
        aria-label="Launcher"
        aria-haspopup="dialog"
        aria-expanded={props.launcherOpen}
        onClick={props.onLauncher}
      >
        <svg viewBox="0 0 20 20" aria-hidden="true">
          <circle cx="6" cy="6" r="2.4" />
          <circle cx="14" cy="6" r="2.4" />
          <circle cx="6" cy="14" r="2.4" />
          <circle cx="14" cy="14" r="2.4" />
        </svg>
        <span>Agents</span>
      </button>
      {props.tools.map((t) => {
        const count = typeof t.count === 'number' ? t.count : null;
        const label = `${t.label}${count !== null ? ` (${count} waiting)` : ''}${t.window === 'minimized' ? ' (minimized)' : ''}`;
        return (
          <button
            key={t.id}
            type="button"
            className={`tool-launch${t.window === 'focused' ? ' focused' : ''}${t.window !== 'closed' ? ' open' : ''}`}
            data-testid={`${t.id}-button`}
            data-run={t.id}
            aria-label={label}
            aria-pressed={t.window === 'focused'}
            title={t.window === 'focused' ? `Minimize ${t.label}` : t.window === 'closed' ? `Open ${t.label}` : `Show ${t.label}`}
            onClick={() => props.onTool(t.id)}
          >
            <svg viewBox="0 0 20 20" aria-hidden="true">
              <path d={TOOL_ICON[t.id]} />
            </svg>
            <span>{t.label}</span>
            {count !== null && (
              <span className={`badge${count === 0 ? ' zero' : ''}`} data-testid={`${t.id}-badge`} data-count={count} aria-hidden="true">
                {count}
              </span>
            )}
          </button>
        );
      })}
      <ul className="tasks">
        {props.items.map((item) => (
          <li key={item.id}>
            <button
              type="button"
              className={`task${item.focused ? ' focused' : ''}${item.minimized ? ' minimized' : ''}`}
              data-testid="taskbar-item"
              data-run={item.id}
              aria-label={`${item.title}${item.minimized ? ' (minimized)' : ''}`}
              aria-pressed={item.focused}
              title={item.minimized ? `Restore ${item.title}` : item.focused ? `Minimize ${item.title}` : `Show ${item.title}`}
              onClick={() => props.onItem(item.id)}
            >
              <span className="task-icon" aria-hidden="true">
                {item.agent.slice(0, 1).toUpperCase()}
              </span>
              <span className="task-title">{item.title}</span>
            </button>
          </li>
        ))}
      </ul>
      <div className="tray">
        <span
          className={`connection connection-${props.connection}`}
          role="status"
          title={CONNECTION[props.connection]}
          aria-label={CONNECTION[props.connection]}
          data-testid="connection"
          data-state={props.connection}
        />
        {props.who && <span className="who">{props.who}</span>}
        <Clock />
        <button type="button" className="sign-out" data-testid="sign-out" onClick={props.onSignOut}>
          Sign out
        </button>
      </div>
    </nav>
  );
}
