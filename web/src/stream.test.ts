import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { StreamClient, type RunFrame, type SocketLike } from './stream';

class FakeSocket implements SocketLike {
  onopen: ((ev: Event) => void) | null = null;
  onmessage: ((ev: MessageEvent) => void) | null = null;
  onclose: ((ev: CloseEvent) => void) | null = null;
  onerror: ((ev: Event) => void) | null = null;
  sent: Record<string, unknown>[] = [];
  closed = false;
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.closed = true;
  }
  open() {
    this.onopen?.(new Event('open'));
  }
  receive(frame: unknown) {
    this.onmessage?.({ data: JSON.stringify(frame) } as MessageEvent);
  }
  drop() {
    this.onclose?.({} as CloseEvent);
  }
}

const stepFrame = (seq: number) => ({
  type: 'event',
  run_id: 'r1',
  kind: 'step',
  cursor: seq,
  data: { sequence_id: seq, action: 'a', status: 'completed' },
});

describe('StreamClient', () => {
  let sockets: FakeSocket[];
  let client: StreamClient;
  const connect = () => {
    const s = sockets[sockets.length - 1];
    s.open();
    s.receive({ type: 'ready', tenant: 'local', user: 'local' });
    return s;
  };

  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    client = new StreamClient('ws://x/api/v1/stream', 'choir_t', {
      makeSocket: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
    });
  });
  afterEach(() => {
    client.close();
    vi.useRealTimers();
  });

  it('authenticates first, then subscribes from -1', () => {
    const frames: RunFrame[] = [];
    client.subscribe('r1', (f) => frames.push(f));
    const s = connect();
    expect(s.sent).toEqual([
      { type: 'auth', token: 'choir_t' },
      { type: 'subscribe', run_id: 'r1', cursor: -1 },
    ]);
    expect(frames.map((f) => (f.type === 'connection' ? f.state : f.type))).toEqual(['connecting', 'ready']);
  });

  it('resubscribes after a reconnect from the last step it delivered, and drops repeats', () => {
    const seqs: number[] = [];
    client.subscribe('r1', (f) => {
      if (f.type === 'event' && f.kind === 'step') seqs.push((f.data as { sequence_id: number }).sequence_id);
    });
    let s = connect();
    s.receive(stepFrame(0));
    s.receive(stepFrame(1));
    s.drop();
    expect(client.connection).toBe('offline');
    vi.advanceTimersByTime(500);
    s = connect();
    expect(s.sent[1]).toEqual({ type: 'subscribe', run_id: 'r1', cursor: 1 });
    s.receive(stepFrame(1));
    s.receive(stepFrame(2));
    expect(seqs).toEqual([0, 1, 2]);
  });

  it('answers resync by subscribing again from its cursor', async () => {
    client.subscribe('r1', () => {});
    const s = connect();
    s.receive(stepFrame(0));
    s.receive({ type: 'resync', run_id: 'r1', cursor: 0 });
    await vi.advanceTimersByTimeAsync(0);
    expect(s.sent[s.sent.length - 1]).toEqual({ type: 'subscribe', run_id: 'r1', cursor: 0 });
  });

  it('after a resync, pages the missed steps over HTTP, then subscribes from the last', async () => {
    client.close();
    const pages: number[] = [];
    client = new StreamClient('ws://x/api/v1/stream', 'choir_t', {
      makeSocket: () => {
        const s = new FakeSocket();
        sockets.push(s);
        return s;
      },
      fetchSteps: async (_run, from) => {
        pages.push(from);
        const step = (n: number) => ({ sequence_id: n, action: 'a', status: 'completed' });
        return from === 0 ? { steps: [step(0), step(1)], next: 2 } : { steps: [step(2)], next: null };
      },
    });
    const seqs: number[] = [];
    client.subscribe('r1', (f) => {
      if (f.type === 'event' && f.kind === 'step') seqs.push((f.data as { sequence_id: number }).sequence_id);
    });
    const s = connect();
    s.receive({ type: 'resync', run_id: 'r1', cursor: -1, reason: 'more than 512 steps behind' });
    await vi.advanceTimersByTimeAsync(0);
    expect(pages).toEqual([0, 2]);
    expect(seqs).toEqual([0, 1, 2]);
    expect(s.sent[s.sent.length - 1]).toEqual({ type: 'subscribe', run_id: 'r1', cursor: 2 });
  });

  it('routes an error about a run to its window', () => {
    const frames: RunFrame[] = [];
    client.subscribe('r1', (f) => frames.push(f));
    const s = connect();
    s.receive({ type: 'error', run_id: 'r1', message: 'no run r1' });
    expect(frames[frames.length - 1]).toEqual({ type: 'error', run_id: 'r1', message: 'no run r1' });
  });

  it('unsubscribes, and routes frames by run', () => {
    const a: RunFrame[] = [];
    const b: RunFrame[] = [];
    const undo = client.subscribe('r1', (f) => a.push(f));
    client.subscribe('r2', (f) => b.push(f));
    const s = connect();
    s.receive({ type: 'event', run_id: 'r2', kind: 'token', cursor: 0, data: { action: 'x', text: 'y' } });
    expect(a.filter((f) => f.type === 'event')).toHaveLength(0);
    expect(b.filter((f) => f.type === 'event')).toHaveLength(1);
    undo();
    expect(s.sent[s.sent.length - 1]).toEqual({ type: 'unsubscribe', run_id: 'r1' });
  });

  it('reports error frames and stops reconnecting once closed', () => {
    const errors: string[] = [];
    client.onError = (m) => errors.push(m);
    const s = connect();
    s.receive({ type: 'error', message: 'no run r9' });
    expect(errors).toEqual(['no run r9']);
    client.close();
    expect(s.closed).toBe(true);
    vi.advanceTimersByTime(60_000);
    expect(sockets).toHaveLength(1);
  });
});
