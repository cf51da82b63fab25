import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import { describeError, type AgentDetail, type Api, type RunRecord, type StepRecord } from '../api';
import type { RunListener } from '../stream';
import { shortId } from '../consents';
import {
  changedKeys,
  compactJson,
  diffRows,
  filterRuns,
  layoutGraph,
  pagesFor,
  childGroups,
  parentRelation,
  parseInputs,
  runActions,
  scrollToShow,
  stepRange,
  visibleSlice,
  withStep,
  type StateDiff,
} from '../runs';
import { ago, stamp } from '../time';

const LIST_LIMIT = 200;
const PAGE = 200;
/** A step row's height in px (the CSS's `.step-row` height). */
const ROW_H = 28;

interface Props {
  api: Api;
  agentDetail: (name: string) => Promise<AgentDetail>;
  /** A run to show (from a chat window's "debug" button); `n` changes with each request. */
  target: { run: string; n: number } | null;
  active: boolean;
  onOpenChat: (runId: string, agent: string) => void;
  /** Follows a run's events after `cursor` on the stream (the selected run refreshes live); the undo. */
  follow?: (runId: string, cursor: number, listener: RunListener) => () => void;
}

type Loaded<T> = { state: 'loading' } | { state: 'ok'; value: T } | { state: 'error'; message: string };

/** The later of two last sequence ids (none: null). */
function newest(a: number | null | undefined, b: number | null | undefined): number | null {
  const n = Math.max(a ?? -1, b ?? -1);
  return n >= 0 ? n : null;
}

/** A value as compact JSON: one line, or a summary that opens when it is long. */
function Json({ value, max = 80 }: { value: unknown; max?: number }) {
  const j = compactJson(value, max);
  if (!j.long) return <code className="json">{j.text}</code>;
  return (
    <details className="json-long">
      <summary>
        <code className="json">{j.short}</code>
      </summary>
      <pre className="json">{JSON.stringify(value, null, 2)}</pre>
    </details>
  );
}

function KeyValues({ value, testId }: { value: unknown; testId?: string }) {
  const entries = value && typeof value === 'object' && !Array.isArray(value) ? Object.entries(value as Record<string, unknown>) : null;
  if (!entries) return <div data-testid={testId}><Json value={value} /></div>;
  if (entries.length === 0) return <p className="muted small" data-testid={testId}>(empty)</p>;
  return (
    <dl className="kv" data-testid={testId}>
      {entries.map(([k, v]) => (
        <div key={k} data-key={k}>
          <dt>{k}</dt>
          <dd>
            <Json value={v} />
          </dd>
        </div>
      ))}
    </dl>
  );
}

/** The run debugger: the tenant's runs, and for one run its graph, its steps, and each step's state and diff. */
export function RunDebugger({ api, agentDetail, target, active, onOpenChat, follow }: Props) {
  const [runs, setRuns] = useState<Loaded<RunRecord[]>>({ state: 'loading' });
  const [query, setQuery] = useState('');
  const [selected, setSelected] = useState<string | null>(null);
  const [run, setRun] = useState<RunRecord | null>(null);
  const [runError, setRunError] = useState<string | null>(null);
  const [detail, setDetail] = useState<AgentDetail | null>(null);
  const [seq, setSeq] = useState<number | null>(null);
  const [forking, setForking] = useState(false);
  const [forkError, setForkError] = useState<string | null>(null);
  const [forked, setForked] = useState<RunRecord | null>(null);
  const [acting, setActing] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);
  const [inputText, setInputText] = useState('');

  // The step timeline: steps by sequence id, fetched a page at a time.
  const steps = useRef(new Map<number, StepRecord>());
  const pages = useRef(new Set<number>());
  const [stepsVersion, setStepsVersion] = useState(0);
  const [stepsError, setStepsError] = useState<string | null>(null);
  const timeline = useRef<HTMLDivElement>(null);
  const [scrollTop, setScrollTop] = useState(0);
  const [viewH, setViewH] = useState(300);

  const [state, setState] = useState<Loaded<Record<string, unknown>> | null>(null);
  const [diff, setDiff] = useState<Loaded<StateDiff> | null>(null);
  const root = useRef<HTMLDivElement>(null);
  const listRead = useRef(0);

  /** The id after which the next page of runs starts, if there may be one. */
  const [moreAfter, setMoreAfter] = useState<string | null>(null);
  const [readingMore, setReadingMore] = useState(false);
  const loadRuns = useCallback(async () => {
    const n = ++listRead.current;
    try {
      const r = await api.runs({ limit: LIST_LIMIT });
      if (n === listRead.current) {
        setRuns({ state: 'ok', value: r.runs ?? [] });
        setMoreAfter(r.next_before ?? null);
      }
    } catch (e) {
      if (n === listRead.current) setRuns({ state: 'error', message: describeError(e) });
    }
  }, [api]);

  /** Appends the next page of older runs. */
  const loadMoreRuns = async () => {
    if (!moreAfter || readingMore) return;
    const n = listRead.current;
    setReadingMore(true);
    try {
      const r = await api.runs({ limit: LIST_LIMIT, before: moreAfter });
      if (n !== listRead.current) return; // the list was read again meanwhile
      setRuns((prev) => {
        const have = prev.state === 'ok' ? prev.value : [];
        const seen = new Set(have.map((x) => x.run_id));
        return { state: 'ok', value: [...have, ...(r.runs ?? []).filter((x) => !seen.has(x.run_id))] };
      });
      setMoreAfter(r.next_before ?? null);
    } catch (e) {
      setRuns({ state: 'error', message: describeError(e) });
    } finally {
      setReadingMore(false);
    }
  };

  useEffect(() => {
    void loadRuns();
  }, [loadRuns]);

  // A chat window asked for its run.
  useEffect(() => {
    if (!target) return;
    setQuery('');
    setSelected(target.run);
    void loadRuns();
  }, [target, loadRuns]);

  useEffect(() => {
    if (active && !root.current?.contains(document.activeElement)) root.current?.focus();
  }, [active]);

  /** Reads the selected run's record; its steps are read again from scratch. */
  /**
   * The last step the debugger knows of the selected run: a new step moves a selection that was on
   * it along. It only grows while the run is shown (a late answer never moves it back).
   */
  const tail = useRef<number | null>(null);

  const loadRun = useCallback(
    async (id: string, keepStep: boolean) => {
      steps.current = new Map();
      pages.current = new Set();
      setStepsVersion((v) => v + 1);
      setStepsError(null);
      try {
        const r = await api.run(id);
        tail.current = typeof r.last_sequence === 'number' ? r.last_sequence : null;
        setRun(r);
        setRunError(null);
        const { first, count } = stepRange(r);
        setSeq((s) => (keepStep && s !== null && s >= first && s < first + count ? s : count > 0 ? first + count - 1 : null));
      } catch (e) {
        setRunError(`Cannot read run ${id}: ${describeError(e)}`);
      }
    },
    [api],
  );

  useEffect(() => {
    setRun(null);
    setSeq(null);
    setState(null);
    setDiff(null);
    setForkError(null);
    setScrollTop(0);
    if (selected) void loadRun(selected, false);
  }, [selected, loadRun]);

  // ---- live: the selected run's steps and status as they happen ----

  const runId = run?.run_id;

  // The runs started from this one (a map step's children, forks), by the step they started from.
  const [children, setChildren] = useState<RunRecord[] | null>(null);
  const childRead = useRef(0);
  const loadChildren = useCallback(
    async (id: string) => {
      const n = ++childRead.current;
      try {
        const r = await api.runs({ parent: id, limit: 200 });
        if (n === childRead.current) setChildren(r.runs ?? []);
      } catch {
        if (n === childRead.current) setChildren(null);
      }
    },
    [api],
  );
  useEffect(() => {
    setChildren(null);
    if (runId) void loadChildren(runId);
  }, [runId, loadChildren]);
  /** Where following starts: the run's last step as read (the pages cover what came before). */
  const startCursor = useRef(-1);
  if (run) {
    const { first, count } = stepRange(run);
    startCursor.current = first + count - 1;
  }
  useEffect(() => {
    if (!runId || !follow) return;
    let listRefresh: ReturnType<typeof setTimeout> | null = null;
    const refreshList = () => {
      if (listRefresh) return;
      listRefresh = setTimeout(() => {
        listRefresh = null;
        void loadRuns();
        void loadChildren(runId);
      }, 300);
    };
    const stop = follow(runId, startCursor.current, (frame) => {
      if (frame.type === 'subscribed') {
        if (frame.run?.run_id !== runId) return;
        const last = frame.run.last_sequence;
        if (typeof last === 'number' && (tail.current === null || last > tail.current)) tail.current = last;
        // The record as it stands, but never behind the steps already shown.
        setRun((r) => (r?.run_id === runId ? { ...frame.run, last_sequence: newest(r.last_sequence, last) } : r));
        return;
      }
      if (frame.type !== 'event') return;
      if (frame.kind === 'step') {
        const st = frame.data as StepRecord;
        if (typeof st?.sequence_id !== 'number') return;
        steps.current.set(st.sequence_id, st);
        setStepsVersion((v) => v + 1);
        // Several steps may arrive before the next render: the tail moves with each at once.
        const wasTail = tail.current;
        if (wasTail === null || st.sequence_id > wasTail) tail.current = st.sequence_id;
        setRun((r) => (r?.run_id === runId ? withStep(r, st) : r));
        setSeq((s) => (s === null || (wasTail !== null && s >= wasTail) ? st.sequence_id : s));
        refreshList();
        return;
      }
      if (frame.kind === 'turn_ended' || frame.kind === 'status' || frame.kind === 'turn_started') {
        api.run(runId).then(
          (r) => setRun((prev) => (prev?.run_id === runId ? { ...r, last_sequence: newest(prev.last_sequence, r.last_sequence) } : prev)),
          () => {},
        );
        refreshList();
      }
    });
    return () => {
      stop();
      if (listRefresh) clearTimeout(listRefresh);
    };
  }, [api, runId, follow, loadRuns, loadChildren]);

  useEffect(() => {
    if (!run) return;
    let live = true;
    agentDetail(run.agent).then(
      (d) => live && setDetail(d),
      () => live && setDetail(null),
    );
    return () => {
      live = false;
    };
  }, [run, agentDetail]);

  // ---- the timeline's window and pages ----

  useLayoutEffect(() => {
    const el = timeline.current;
    if (!el) return;
    const measure = () => setViewH(el.clientHeight || 300);
    measure();
    const ro = new ResizeObserver(measure);
    ro.observe(el);
    return () => ro.disconnect();
  }, [run?.run_id]);

  const range = run ? stepRange(run) : { first: 0, count: 0 };
  const slice = visibleSlice(scrollTop, viewH, ROW_H, range.count);

  useEffect(() => {
    if (!run) return;
    const id = run.run_id;
    const { first } = stepRange(run);
    for (const p of pagesFor(slice.start, slice.end, PAGE)) {
      if (pages.current.has(p)) continue;
      pages.current.add(p);
      const owner = pages.current;
      api.steps(id, first + p * PAGE, PAGE).then(
        (r) => {
          if (pages.current !== owner) return; // another run, or read again since
          for (const s of r.steps ?? []) steps.current.set(s.sequence_id, s);
          setStepsVersion((v) => v + 1);
        },
        (e) => {
          if (pages.current !== owner) return;
          pages.current.delete(p);
          setStepsError(`Cannot read the steps: ${describeError(e)}`);
        },
      );
    }
  }, [api, run, slice.start, slice.end]);

  // Keeps the selected step in view.
  useEffect(() => {
    const el = timeline.current;
    if (!el || seq === null || !run) return;
    const top = scrollToShow(seq - stepRange(run).first, el.scrollTop, el.clientHeight || viewH, ROW_H);
    if (top !== el.scrollTop) {
      el.scrollTop = top;
      setScrollTop(top);
    }
  }, [seq, run, viewH]);

  // ---- the selected step's state and diff ----

  useEffect(() => {
    if (!run || seq === null) {
      setState(null);
      setDiff(null);
      return;
    }
    let live = true;
    setState({ state: 'loading' });
    setDiff({ state: 'loading' });
    // Arrow keys held down: read only where the selection rests.
    const t = setTimeout(() => {
      api.runState(run.run_id, seq).then(
        (r) => live && setState({ state: 'ok', value: r.state ?? {} }),
        (e) => live && setState({ state: 'error', message: describeError(e) }),
      );
      api.runDiff(run.run_id, seq).then(
        (r) => live && setDiff({ state: 'ok', value: r }),
        (e) => live && setDiff({ state: 'error', message: describeError(e) }),
      );
    }, 60);
    return () => {
      live = false;
      clearTimeout(t);
    };
  }, [api, run, seq]);

  const move = (by: number) => {
    if (!run || range.count === 0) return;
    const last = range.first + range.count - 1;
    setSeq((s) => Math.max(range.first, Math.min(last, (s ?? (by > 0 ? range.first - 1 : last + 1)) + by)));
  };

  const onTimelineKey = (e: KeyboardEvent<HTMLDivElement>) => {
    const page = Math.max(1, Math.floor(viewH / ROW_H) - 1);
    const by = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page, Home: -Infinity, End: Infinity }[e.key];
    if (by === undefined) return;
    e.preventDefault();
    if (Math.abs(by) === Infinity) setSeq(by > 0 ? range.first + range.count - 1 : range.first);
    else move(by);
  };

  // ---- forks ----

  const fork = async () => {
    if (!run || seq === null) return;
    setForking(true);
    setForkError(null);
    try {
      const answer = await api.fork(run.run_id, seq);
      const child = (answer as RunRecord & { run?: RunRecord }).run ?? answer;
      setForked(child);
      setQuery('');
      setSelected(child.run_id);
      await loadRuns();
    } catch (e) {
      setForkError(`Cannot fork at step ${seq}: ${describeError(e)}`);
    } finally {
      setForking(false);
    }
  };

  // ---- resume, input, cancel ----

  const act = async (what: 'resume' | 'input' | 'cancel') => {
    if (!run) return;
    setActionError(null);
    let inputs: Record<string, unknown> = {};
    if (what === 'input') {
      const parsed = parseInputs(inputText);
      if (!parsed.ok) {
        setActionError(parsed.error);
        return;
      }
      inputs = parsed.value;
    }
    setActing(what);
    try {
      if (what === 'resume') await api.resume(run.run_id);
      else if (what === 'input') await api.input(run.run_id, inputs);
      else await api.cancel(run.run_id);
      if (what === 'input') setInputText('');
      if (!follow) await loadRun(run.run_id, true);
      void loadRuns();
    } catch (e) {
      setActionError(`Cannot ${what === 'input' ? 'give the input' : what} : ${describeError(e)}`.replace(' :', ':'));
    } finally {
      setActing(null);
    }
  };

  const refresh = () => {
    void loadRuns();
    if (selected) void loadRun(selected, true);
  };

  // ---- rendering ----

  const list = runs.state === 'ok' ? filterRuns(runs.value, query) : [];
  const layout = useMemo(() => layoutGraph(detail && run && detail.name === run.agent ? detail.graph : null), [detail, run]);
  const step = seq === null ? undefined : steps.current.get(seq);
  const conversable = !!(detail && run && detail.name === run.agent && detail.listening_action);
  const acts = run ? runActions(run.status) : { resume: false, input: false, cancel: false };
  const rows = diff?.state === 'ok' ? diffRows(diff.value) : [];
  void stepsVersion; // the steps map changed: render again

  return (
    <div className="tool runs" ref={root} tabIndex={-1} data-testid="runs-window" aria-label="Run debugger">
      <aside className="runs-list" aria-label="Runs">
        <div className="runs-search">
          <input
            type="search"
            value={query}
            placeholder="Search runs"
            title="Filter by agent, run id or status"
            aria-label="Search the runs"
            data-testid="runs-search"
            onChange={(e) => setQuery(e.target.value)}
          />
          <button type="button" className="tool-button" onClick={refresh} title="Read the runs again" data-testid="runs-refresh">
            ↻
          </button>
        </div>
        {runs.state === 'error' && (
          <p className="tool-error" role="alert">
            Cannot list the runs: {runs.message}
          </p>
        )}
        <ul className="run-rows">
          {runs.state === 'loading' && <li className="muted small pad">Reading the runs…</li>}
          {runs.state === 'ok' && list.length === 0 && <li className="muted small pad">{query ? 'No run matches.' : 'No runs yet.'}</li>}
          {list.map((r) => (
            <li key={r.run_id}>
              <button
                type="button"
                className={`run-row${r.run_id === selected ? ' selected' : ''}`}
                data-testid="run-row"
                data-run-id={r.run_id}
                aria-current={r.run_id === selected ? 'true' : undefined}
                onClick={() => setSelected(r.run_id)}
                title={`${r.agent} ${r.run_id} (${r.status})${r.created_ms ? `, started ${stamp(r.created_ms)}` : ''}`}
              >
                <span className="run-row-top">
                  <span className="run-agent">{r.agent}</span>
                  <span className={`run-status status-${r.status}`}>{r.status}</span>
                </span>
                <span className="run-row-bottom">
                  <span className="mono">{shortId(r.run_id)}</span>
                  <span>{ago(r.updated_ms ?? r.created_ms)}</span>
                </span>
                {r.parent_run && (
                  <span className="fork-hint" data-testid="fork-hint">
                    {parentRelation(r, list)} {shortId(r.parent_run)}
                    {typeof r.parent_step === 'number' ? ` at step ${r.parent_step}` : ''}
                  </span>
                )}
              </button>
            </li>
          ))}
          {runs.state === 'ok' && moreAfter && (
            <li>
              <button type="button" className="tool-button more-runs" data-testid="more-runs" disabled={readingMore} onClick={() => void loadMoreRuns()}>
                {readingMore ? 'Reading…' : 'Older runs'}
              </button>
            </li>
          )}
        </ul>
      </aside>
      <section className="run-detail" aria-label="The selected run">
        {!selected && <p className="tool-note">Select a run to see its graph and steps.</p>}
        {runError && (
          <p className="tool-error" role="alert">
            {runError}
          </p>
        )}
        {run && (
          <>
            <header className="run-header" data-testid="run-header" data-run-id={run.run_id}>
              <div className="run-title">
                <strong>{run.agent}</strong>
                <span className="mono small" title="Run id">
                  {run.run_id}
                </span>
                <span className={`run-status status-${run.status}`}>{run.status}</span>
              </div>
              <div className="run-meta small">
                <span>
                  next: <span className="mono">{run.next_action ?? '—'}</span>
                </span>
                <span>{range.count} steps</span>
                {run.parent_run && (
                  <span>
                    {parentRelation(run, runs.state === 'ok' ? runs.value : [])}{' '}
                    <button type="button" className="link mono" data-testid="parent-link" onClick={() => setSelected(run.parent_run!)}>
                      {shortId(run.parent_run)}
                    </button>
                    {typeof run.parent_step === 'number' ? ` at step ${run.parent_step}` : ''}
                  </span>
                )}
                {forked?.run_id === run.run_id && conversable && (
                  <button type="button" className="tool-button accent" data-testid="open-fork-chat" onClick={() => onOpenChat(run.run_id, run.agent)}>
                    Open in chat
                  </button>
                )}
                {acts.resume && (
                  <button type="button" className="tool-button" data-testid="resume-button" disabled={acting !== null} onClick={() => void act('resume')} title="Continue the run on the server from its last committed step">
                    {acting === 'resume' ? 'Resuming…' : 'Resume'}
                  </button>
                )}
                {acts.cancel && (
                  <button type="button" className="tool-button danger" data-testid="cancel-button" disabled={acting !== null} onClick={() => void act('cancel')} title="Stop the run at its next step boundary; nothing continues it after">
                    {acting === 'cancel' ? 'Cancelling…' : 'Cancel run'}
                  </button>
                )}
              </div>
              {children && children.length > 0 && (
                <div className="run-children small" data-testid="child-runs">
                  {childGroups(children).map(([from, group]) => (
                    <div key={from} className="child-group">
                      <span className="muted">{from === null ? 'Started from it:' : `From step ${from}:`}</span>
                      {group.map((c) => (
                        <button
                          key={c.run_id}
                          type="button"
                          className="child-run"
                          data-testid="child-run"
                          data-run-id={c.run_id}
                          data-agent={c.agent}
                          data-status={c.status}
                          onClick={() => setSelected(c.run_id)}
                          title={`${c.agent} ${c.run_id} (${c.status})`}
                        >
                          {c.agent} <span className="mono">{shortId(c.run_id)}</span>{' '}
                          <span className={`run-status status-${c.status}`}>{c.status}</span>
                        </button>
                      ))}
                    </div>
                  ))}
                </div>
              )}
              {acts.input && (
                <form
                  className="run-input small"
                  data-testid="input-form"
                  onSubmit={(e) => {
                    e.preventDefault();
                    void act('input');
                  }}
                >
                  <label>
                    Input for <span className="mono">{run.next_action ?? '—'}</span>{' '}
                    <input
                      type="text"
                      className="mono"
                      value={inputText}
                      placeholder='{"approved": true}'
                      aria-label={`The inputs of ${run.next_action ?? 'the next action'}, as a JSON object`}
                      data-testid="input-json"
                      onChange={(e) => setInputText(e.target.value)}
                    />
                  </label>
                  <button type="submit" className="tool-button accent" data-testid="input-button" disabled={acting !== null}>
                    {acting === 'input' ? 'Sending…' : 'Give input'}
                  </button>
                </form>
              )}
              {actionError && (
                <p className="tool-error" role="alert" data-testid="action-error">
                  {actionError}
                </p>
              )}
            </header>
            <div className="run-body">
              <div className="graph-pane" data-testid="graph-view">
                {layout.nodes.length === 0 ? (
                  <p className="muted small pad">{detail ? 'No graph for this agent.' : 'Reading the graph…'}</p>
                ) : (
                  <svg className="graph" width={layout.width} height={layout.height} viewBox={`0 0 ${layout.width} ${layout.height}`} role="img" aria-label={`The graph of ${run.agent}`}>
                    <defs>
                      <marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
                        <path d="M0,0 L8,4 L0,8 z" className="arrowhead" />
                      </marker>
                    </defs>
                    {layout.edges.map((e, i) => (
                      <path key={i} d={e.d} className={`edge${e.back ? ' back' : ''}`} markerEnd="url(#arrow)">
                        {e.label && <title>{e.label}</title>}
                      </path>
                    ))}
                    {layout.nodes.map((n) => {
                      const current = n.name === run.next_action;
                      const at = step?.action === n.name;
                      return (
                        <g
                          key={n.name}
                          className={`graph-node${current ? ' current' : ''}${at ? ' at-step' : ''}`}
                          data-testid={`graph-node-${n.name}`}
                          transform={`translate(${n.x},${n.y})`}
                        >
                          <title>{`${n.name} (${n.type})${current ? ': the next action' : ''}`}</title>
                          <rect width={n.w} height={n.h} rx="7" />
                          <text x={n.w / 2} y={n.h / 2 - 2} textAnchor="middle">
                            {n.name}
                          </text>
                          <text x={n.w / 2} y={n.h / 2 + 10} textAnchor="middle" className="node-type">
                            {n.type}
                          </text>
                        </g>
                      );
                    })}
                  </svg>
                )}
              </div>
              <div className="timeline-pane">
                <div className="timeline-bar">
                  <button type="button" className="tool-button" data-testid="step-prev" onClick={() => move(-1)} disabled={seq === null || seq <= range.first}>
                    ‹ Prev
                  </button>
                  <button type="button" className="tool-button" data-testid="step-next" onClick={() => move(1)} disabled={seq === null || seq >= range.first + range.count - 1}>
                    Next ›
                  </button>
                  <button type="button" className="tool-button accent" data-testid="fork-button" onClick={() => void fork()} disabled={seq === null || forking} title="A new run starting from the state after this step">
                    {forking ? 'Forking…' : 'Fork here'}
                  </button>
                </div>
                {stepsError && <p className="tool-error">{stepsError}</p>}
                {forkError && (
                  <p className="tool-error" role="alert">
                    {forkError}
                  </p>
                )}
                <div
                  className="timeline"
                  ref={timeline}
                  tabIndex={0}
                  role="listbox"
                  aria-label="Steps (↑/↓ to move)"
                  data-testid="step-timeline"
                  data-count={range.count}
                  onScroll={(e) => setScrollTop(e.currentTarget.scrollTop)}
                  onKeyDown={onTimelineKey}
                >
                  {range.count === 0 && <p className="muted small pad">No steps yet.</p>}
                  <div style={{ height: slice.padTop }} aria-hidden="true" />
                  {Array.from({ length: slice.end - slice.start }, (_, i) => {
                    const s = range.first + slice.start + i;
                    const st = steps.current.get(s);
                    const keys = st ? changedKeys(st) : [];
                    return (
                      <div
                        key={s}
                        role="option"
                        aria-selected={s === seq}
                        className={`step-row${s === seq ? ' selected' : ''}${st?.status === 'failed' ? ' failed' : ''}`}
                        data-testid="step-row"
                        data-seq={s}
                        onClick={() => {
                          setSeq(s);
                          timeline.current?.focus();
                        }}
                      >
                        <span className="num">{s}</span>
                        <span className="step-action">{st?.action ?? '…'}</span>
                        <span className={`step-status status-${st?.status ?? ''}`}>{st?.status ?? ''}</span>
                        <span className="step-keys" title={keys.join(', ')}>
                          {keys.join(', ')}
                        </span>
                      </div>
                    );
                  })}
                  <div style={{ height: slice.padBottom }} aria-hidden="true" />
                </div>
              </div>
              <div className="step-pane">
                {seq === null ? (
                  <p className="muted small pad">Select a step.</p>
                ) : (
                  <>
                    <h3 className="step-head" data-testid="step-selected" data-seq={seq}>
                      Step {seq}
                      {step ? ` · ${step.action} · ${step.status}` : ''}
                      {step?.committed_ms ? <span className="muted small"> {stamp(step.committed_ms)}</span> : null}
                    </h3>
                    {step?.error && (
                      <p className="tool-error" data-testid="step-error">
                        {step.error.code ? `${step.error.code}: ` : ''}
                        {step.error.message ?? ''}
                      </p>
                    )}
                    <h4>Inputs</h4>
                    {step ? <KeyValues value={step.inputs ?? {}} /> : <p className="muted small">…</p>}
                    <h4>Result</h4>
                    {step ? <Json value={step.result ?? null} /> : <p className="muted small">…</p>}
                    <h4>Diff from the step before</h4>
                    <div className="diff" data-testid="diff-view" data-state={diff?.state}>
                      {diff?.state === 'error' && <p className="tool-error">{diff.message}</p>}
                      {diff?.state === 'ok' && rows.length === 0 && <p className="muted small">No change.</p>}
                      {rows.map((r) => (
                        <div key={r.key} className={`diff-row ${r.kind}`} data-kind={r.kind} data-key={r.key}>
                          <span className="diff-sign" aria-hidden="true">
                            {r.kind === 'added' ? '+' : r.kind === 'removed' ? '−' : '~'}
                          </span>
                          <span className="diff-key">{r.key}</span>
                          <span className="diff-values">
                            {r.kind !== 'added' && <Json value={r.before} max={60} />}
                            {r.kind === 'changed' && <span aria-label="becomes"> → </span>}
                            {r.kind !== 'removed' && <Json value={r.after} max={60} />}
                          </span>
                        </div>
                      ))}
                    </div>
                    <h4>State after it</h4>
                    <div className="state-view" data-testid="state-view" data-state={state?.state}>
                      {state?.state === 'error' && <p className="tool-error">{state.message}</p>}
                      {state?.state === 'ok' && <KeyValues value={state.value} />}
                    </div>
                  </>
                )}
              </div>
            </div>
          </>
        )}
      </section>
    </div>
  );
}
