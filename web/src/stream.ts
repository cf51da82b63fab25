// The desktop's one WebSocket (docs/api.md, "The stream"): authenticates with the first frame,
// subscribes each window's run, and after a reconnect or a `resync` subscribes again from the last
// step it delivered, so that every committed step reaches a window exactly once.
import type { RunRecord, StepRecord } from './api';

export type ConnectionState = 'connecting' | 'ready' | 'offline';

export interface SubscribedFrame {
  type: 'subscribed';
  run_id: string;
  cursor: number;
  run: RunRecord;
}

export interface EventFrame {
  type: 'event';
  run_id: string;
  kind: 'step' | 'turn_started' | 'token' | 'turn_ended' | (string & {});
  cursor: number;
  data: unknown;
}

export interface ResyncFrame {
  type: 'resync';
  run_id: string;
  cursor: number;
}

/** An `error` frame that names the run it is about (one that names none goes to `onError`). */
export interface RunErrorFrame {
  type: 'error';
  run_id: string;
  message: string;
}

/** What a window's listener receives: its run's frames, and the connection's state. */
export type RunFrame =
  | SubscribedFrame
  | EventFrame
  | ResyncFrame
  | RunErrorFrame
  | { type: 'connection'; state: ConnectionState };

export type RunListener = (frame: RunFrame) => void;

/** The part of the browser's WebSocket this client uses (a fake one in tests). */
export interface SocketLike {
  onopen: ((ev: Event) => void) | null;
  onmessage: ((ev: MessageEvent) => void) | null;
  onclose: ((ev: CloseEvent) => void) | null;
  onerror: ((ev: Event) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

interface Subscription {
  runId: string;
  listener: RunListener;
  /** The last step's sequence id delivered to the listener (-1: none yet). */
  cursor: number;
  /** Reading missed steps over HTTP after a `resync`. */
  catchingUp: boolean;
  /** `resync`s in a row without a `subscribed` (for the delay before subscribing again). */
  resyncs: number;
}

/** Pages a run's committed steps from a sequence id (GET /api/v1/runs/{id}/steps). */
export type FetchSteps = (runId: string, from: number) => Promise<{ steps: StepRecord[]; next: number | null }>;

export interface StreamOptions {
  makeSocket?: (url: string) => SocketLike;
  /** After a `resync`, the missed steps are read with it before subscribing again. */
  fetchSteps?: FetchSteps;
}

export function streamUrl(loc: Location = window.location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/api/v1/stream`;
}

export class StreamClient {
  /** Told of every state change of the connection. */
  onState?: (state: ConnectionState) => void;
  /** Told who the token acts for, on each `ready`. */
  onReady?: (who: { tenant: string; user: string }) => void;
  /** Told of `error` frames, which belong to no run. */
  onError?: (message: string) => void;

  private readonly url: string;
  private readonly token: string;
  private readonly makeSocket: (url: string) => SocketLike;
  private readonly fetchSteps?: FetchSteps;
  private readonly subs = new Map<string, Subscription>();
  private socket: SocketLike | null = null;
  private state: ConnectionState = 'connecting';
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;

  constructor(url: string, token: string, options: StreamOptions = {}) {
    this.url = url;
    this.token = token;
    this.makeSocket = options.makeSocket ?? ((u) => new WebSocket(u));
    this.fetchSteps = options.fetchSteps;
    this.connect();
  }

  get connection(): ConnectionState {
    return this.state;
  }

  /**
   * Follows a run: its steps after `cursor` (default: all), `subscribed`, then live events. Returns
   * the undo. One listener per run: subscribing again replaces it.
   */
  subscribe(runId: string, listener: RunListener, cursor = -1): () => void {
    const sub: Subscription = { runId, listener, cursor, catchingUp: false, resyncs: 0 };
    this.subs.set(runId, sub);
    listener({ type: 'connection', state: this.state });
    if (this.state === 'ready') this.sendSubscribe(sub);
    return () => {
      if (this.subs.get(runId) !== sub) return;
      this.subs.delete(runId);
      if (this.state === 'ready') this.send({ type: 'unsubscribe', run_id: runId });
    };
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      socket.close(1000, 'signed out');
    }
    this.subs.clear();
  }

  private connect(): void {
    if (this.closed) return;
    this.timer = null;
    this.setState('connecting');
    let socket: SocketLike;
    try {
      socket = this.makeSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.socket = socket;
    socket.onopen = () => socket.send(JSON.stringify({ type: 'auth', token: this.token }));
    socket.onmessage = (ev) => this.receive(ev.data);
    socket.onerror = () => {};
    socket.onclose = () => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.scheduleReconnect();
    };
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.setState('offline');
    const delay = Math.min(8000, 400 * 2 ** Math.min(this.failures, 5));
    this.failures += 1;
    this.timer = setTimeout(() => this.connect(), delay);
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.onState?.(state);
    for (const sub of [...this.subs.values()]) sub.listener({ type: 'connection', state });
  }

  private send(frame: unknown): void {
    this.socket?.send(JSON.stringify(frame));
  }

  private sendSubscribe(sub: Subscription): void {
    this.send({ type: 'subscribe', run_id: sub.runId, cursor: sub.cursor });
  }

  private receive(data: unknown): void {
    if (typeof data !== 'string') return;
    let frame: { type?: string; run_id?: string; [k: string]: unknown };
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case 'ready':
        this.failures = 0;
        this.setState('ready');
        this.onReady?.({ tenant: String(frame.tenant ?? ''), user: String(frame.user ?? '') });
        for (const sub of this.subs.values()) this.sendSubscribe(sub);
        return;
      case 'error': {
        const message = String(frame.message ?? 'error');
        const sub = typeof frame.run_id === 'string' ? this.subs.get(frame.run_id) : undefined;
        if (sub) sub.listener({ type: 'error', run_id: sub.runId, message });
        else this.onError?.(message);
        return;
      }
      case 'event':
      case 'subscribed':
      case 'resync': {
        const sub = frame.run_id === undefined ? undefined : this.subs.get(frame.run_id);
        if (!sub) return;
        if (frame.type === 'event' && frame.kind === 'step') {
          this.deliverStep(sub, frame as unknown as EventFrame);
          return;
        }
        if (frame.type === 'subscribed') sub.resyncs = 0;
        sub.listener(frame as unknown as RunFrame);
        // The server dropped this run from the connection: take it up again where it left off.
        if (frame.type === 'resync') void this.catchUp(sub);
        return;
      }
      default:
        return;
    }
  }

  /** Hands a step to its window once: steps at or before the cursor were delivered already. */
  private deliverStep(sub: Subscription, frame: EventFrame): void {
    const seq = (frame.data as StepRecord | null)?.sequence_id;
    if (typeof seq === 'number') {
      if (seq <= sub.cursor) return;
      sub.cursor = seq;
    }
    sub.listener(frame);
  }

  /**
   * After a `resync` (the connection fell behind, or the run is too far ahead to replay): reads the
   * missed steps over HTTP if it can, then subscribes again from the last one.
   */
  private async catchUp(sub: Subscription): Promise<void> {
    if (sub.catchingUp) return;
    sub.catchingUp = true;
    sub.resyncs += 1;
    const live = () => !this.closed && this.subs.get(sub.runId) === sub;
    try {
      if (this.fetchSteps) {
        let from = sub.cursor + 1;
        for (let page = 0; page < 1000 && live(); page++) {
          const { steps, next } = await this.fetchSteps(sub.runId, from);
          if (!live()) return;
          for (const step of steps) {
            this.deliverStep(sub, { type: 'event', run_id: sub.runId, kind: 'step', cursor: step.sequence_id, data: step });
          }
          if (next === null || next === undefined || steps.length === 0) break;
          from = next;
        }
      }
    } catch {
      // The stream's replay is the fallback.
    } finally {
      sub.catchingUp = false;
    }
    // Resyncs in a row back off, so that a run the server cannot replay is not asked for in a loop.
    if (sub.resyncs > 1) await new Promise((r) => setTimeout(r, Math.min(8000, 250 * 2 ** sub.resyncs)));
    if (live() && this.state === 'ready') this.sendSubscribe(sub);
  }
}
