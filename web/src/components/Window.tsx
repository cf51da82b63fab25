import { useRef, type ReactNode, type PointerEvent as ReactPointerEvent } from 'react';

export interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Props {
  id: string;
  title: string;
  /** The agent of a chat window (its `data-agent`); none for the desktop's own windows. */
  agent?: string;
  /** The letter on the title bar's icon. */
  icon: string;
  /** A desktop window, not an agent's: another colour for its icon. */
  system?: boolean;
  rect: Rect;
  z: number;
  focused: boolean;
  minimized: boolean;
  onFocus: () => void;
  onRect: (rect: Rect) => void;
  onMinimize: () => void;
  onClose: () => void;
  /** Further title bar buttons, before minimize and close. */
  actions?: ReactNode;
  children: ReactNode;
}

/** Follows the pointer from a pointerdown until it is released, telling the distance moved. */
function track(e: ReactPointerEvent<HTMLElement>, onDelta: (dx: number, dy: number) => void, onEnd: () => void) {
  const el = e.currentTarget;
  const x0 = e.clientX;
  const y0 = e.clientY;
  el.setPointerCapture(e.pointerId);
  const move = (ev: PointerEvent) => onDelta(ev.clientX - x0, ev.clientY - y0);
  const end = () => {
    el.removeEventListener('pointermove', move);
    el.removeEventListener('pointerup', end);
    el.removeEventListener('pointercancel', end);
    onEnd();
  };
  el.addEventListener('pointermove', move);
  el.addEventListener('pointerup', end);
  el.addEventListener('pointercancel', end);
}

/** A desktop window: a title bar to drag, minimize and close buttons, a corner to resize. */
export function Window(props: Props) {
  const { id, title, agent, icon, system, rect, z, focused, minimized } = props;
  const ref = useRef<HTMLElement>(null);

  const startMove = (e: ReactPointerEvent<HTMLElement>) => {
    if (e.button !== 0 || (e.target as HTMLElement).closest('button')) return;
    e.preventDefault();
    const start = rect;
    ref.current?.classList.add('moving');
    track(
      e,
      (dx, dy) => props.onRect({ ...start, x: start.x + dx, y: start.y + dy }),
      () => ref.current?.classList.remove('moving'),
    );
  };

  const startResize = (e: ReactPointerEvent<HTMLElement>) => {
    if (e.button !== 0) return;
    e.preventDefault();
    e.stopPropagation();
    props.onFocus();
    const start = rect;
    ref.current?.classList.add('moving');
    track(
      e,
      (dx, dy) => props.onRect({ ...start, w: start.w + dx, h: start.h + dy }),
      () => ref.current?.classList.remove('moving'),
    );
  };

  return (
    <section
      ref={ref}
      className={`window${focused ? ' focused' : ''}`}
      role="dialog"
      aria-label={title}
      data-testid={`window-${id}`}
      data-agent={agent}
      hidden={minimized}
      style={{ left: rect.x, top: rect.y, width: rect.w, height: rect.h, zIndex: z }}
      onPointerDownCapture={() => {
        if (!focused) props.onFocus();
      }}
      onFocusCapture={() => {
        if (!focused) props.onFocus();
      }}
    >
      <header className="titlebar" data-testid="window-titlebar" onPointerDown={startMove}>
        <span className={`window-icon${system ? ' system' : ''}`} aria-hidden="true">
          {icon}
        </span>
        <h2 className="window-title">{title}</h2>
        <div className="window-controls">
          {props.actions}
          <button
            type="button"
            className="control"
            aria-label={`Minimize ${title}`}
            title="Minimize"
            data-testid="window-minimize"
            onClick={props.onMinimize}
          >
            <svg viewBox="0 0 12 12" aria-hidden="true">
              <path d="M2.5 6h7" />
            </svg>
          </button>
          <button
            type="button"
            className="control close"
            aria-label={`Close ${title}`}
            title="Close"
            data-testid="window-close"
            onClick={props.onClose}
          >
            <svg viewBox="0 0 12 12" aria-hidden="true">
              <path d="M3 3l6 6M9 3l-6 6" />
            </svg>
          </button>
        </div>
      </header>
      <div className="window-body">{props.children}</div>
      <div className="resize-handle" data-testid="window-resize" aria-hidden="true" onPointerDown={startResize} />
    </section>
  );
}
