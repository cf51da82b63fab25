import { useEffect, useState, type Ref } from 'react';
import type { ConnectionState } from '../stream';

export interface TaskItem {
  id: string;
  title: string;
  agent: string;
  minimized: boolean;
  focused: boolean;
}

interface Props {
  items: TaskItem[];
  launcherOpen: boolean;
  launcherButton: Ref<HTMLButtonElement>;
  connection: ConnectionState;
  who: string | null;
  onLauncher: () => void;
  onItem: (id: string) => void;
  onSignOut: () => void;
}

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
