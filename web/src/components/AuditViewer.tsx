import { useCallback, useEffect, useRef, useState, type FormEvent } from 'react';
import { ApiError, describeError, type Api, type AuditEntry, type AuditReport } from '../api';
import { auditRows, runFilter, verifyNotes, verifySummary, withOlder } from '../audit';
import { shortId } from '../consents';
import { stamp } from '../time';

const LIMIT = 200;
const REFRESH_MS = 5000;

interface Props {
  api: Api;
  /** The window is shown (not minimized): it reads the log again every few seconds. */
  visible: boolean;
  /** The window is shown and on top. */
  active: boolean;
}

type Loaded<T> = { state: 'loading' } | { state: 'ok'; value: T } | { state: 'missing' } | { state: 'error'; message: string };

function settle<T>(r: PromiseSettledResult<T>): Loaded<T> {
  if (r.status === 'fulfilled') return { state: 'ok', value: r.value };
  const e = r.reason;
  if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return { state: 'missing' };
  return { state: 'error', message: describeError(e) };
}

/** The audit log: the last entries of the caller's tenant, newest first, and the chain's verification. */
export function AuditViewer({ api, visible, active }: Props) {
  const [entries, setEntries] = useState<Loaded<AuditEntry[]>>({ state: 'loading' });
  const [report, setReport] = useState<Loaded<AuditReport>>({ state: 'loading' });
  const [draft, setDraft] = useState('');
  const [run, setRun] = useState<string | null>(null);
  const [filterError, setFilterError] = useState<string | null>(null);
  const [open, setOpen] = useState<ReadonlySet<string>>(new Set());
  const [reading, setReading] = useState(false);
  /** Where the page before the newest one starts (null: there is none). */
  const [newestBefore, setNewestBefore] = useState<number | null>(null);
  /** Older pages read on request, and where the page before them starts. While there are any, the
   *  view stays as it is (no refresh) until "Newest" reads the log again. */
  const [older, setOlder] = useState<{ entries: AuditEntry[]; before: number | null } | null>(null);
  const [olderError, setOlderError] = useState<string | null>(null);
  const root = useRef<HTMLDivElement>(null);
  const latest = useRef(0);

  const load = useCallback(async () => {
    const n = ++latest.current;
    setReading(true);
    const [a, v] = await Promise.allSettled([api.audit(LIMIT, run ?? undefined), api.auditVerify()]);
    if (n !== latest.current) return;
    setReading(false);
    const got = settle(a);
    setEntries(got.state === 'ok' ? { state: 'ok', value: got.value.entries ?? [] } : got);
    setNewestBefore(got.state === 'ok' && typeof got.value.next_before === 'number' ? got.value.next_before : null);
    setReport(settle(v));
  }, [api, run]);

  // Another run filter starts from the newest entries again.
  useEffect(() => {
    setOlder(null);
    setOlderError(null);
  }, [run]);

  const olderBefore = older ? older.before : newestBefore;
  const loadOlder = async () => {
    if (olderBefore === null) return;
    setReading(true);
    try {
      const page = await api.audit(LIMIT, run ?? undefined, olderBefore);
      setOlder((o) => ({
        entries: withOlder(page.entries ?? [], o?.entries ?? []),
        before: typeof page.next_before === 'number' ? page.next_before : null,
      }));
      setOlderError(null);
    } catch (e) {
      setOlderError(`Cannot read older entries: ${describeError(e)}`);
    } finally {
      setReading(false);
    }
  };
  const backToNewest = () => {
    setOlder(null);
    setOlderError(null);
    void load();
  };

  useEffect(() => {
    if (!visible || older) return;
    void load();
    const t = setInterval(() => {
      if (!document.hidden) void load();
    }, REFRESH_MS);
    return () => clearInterval(t);
  }, [visible, load, older]);

  useEffect(() => {
    if (active && !root.current?.contains(document.activeElement)) root.current?.focus();
  }, [active]);

  const applyFilter = (e?: FormEvent) => {
    e?.preventDefault();
    if (!draft.trim()) {
      setRun(null);
      setFilterError(null);
      return;
    }
    const id = runFilter(draft);
    if (!id) {
      setFilterError('A run id has only letters, digits, ".", "_" and "-".');
      return;
    }
    setFilterError(null);
    setRun(id);
  };

  const filterBy = (id: string) => {
    setDraft(id);
    setFilterError(null);
    setRun(id);
  };

  const clearFilter = () => {
    setDraft('');
    setFilterError(null);
    setRun(null);
  };

  const toggle = (key: string) =>
    setOpen((s) => {
      const next = new Set(s);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });

  const rows = entries.state === 'ok' ? auditRows(older ? withOlder(older.entries, entries.value) : entries.value) : [];
  const summary = verifySummary(report.state === 'ok' ? report.value : null);
  const notes = report.state === 'ok' ? verifyNotes(report.value) : [];
  const verifyText =
    report.state === 'ok'
      ? summary.text
      : report.state === 'loading'
        ? 'Verifying the chain…'
        : report.state === 'missing'
          ? 'Verification unavailable (this server has no /api/v1/audit/verify)'
          : `Cannot verify the chain: ${report.message}`;

  return (
    <div className="tool audit" ref={root} tabIndex={-1} data-testid="audit-window" aria-label="Audit log" aria-busy={reading}>
      <div className="tool-bar">
        <p
          className={`verify verify-${report.state === 'ok' ? summary.state : 'unknown'}`}
          data-testid="audit-verify"
          data-state={report.state === 'ok' ? summary.state : report.state}
          role="status"
          title={notes.join('\n') || undefined}
        >
          {verifyText}
        </p>
        <form className="audit-filter" onSubmit={applyFilter} role="search" aria-label="Filter by run">
          <input
            type="search"
            value={draft}
            placeholder="Run id"
            aria-label="Run id to filter by"
            data-testid="audit-filter"
            aria-invalid={filterError ? true : undefined}
            onChange={(e) => setDraft(e.target.value)}
          />
          <button type="submit" className="tool-button">
            Filter
          </button>
          {run && (
            <button type="button" className="tool-button" onClick={clearFilter} data-testid="audit-clear">
              Clear
            </button>
          )}
        </form>
        <button
          type="button"
          className="tool-button"
          onClick={() => (older ? backToNewest() : void load())}
          data-testid="audit-refresh"
          title={older ? 'Back to the newest entries (refreshed every few seconds)' : 'Read the log again'}
        >
          {older ? 'Newest' : 'Refresh'}
        </button>
      </div>
      {notes.length > 0 && <p className="tool-note">{notes.join(' · ')}</p>}
      {filterError && (
        <p className="tool-error" role="alert">
          {filterError}
        </p>
      )}
      {entries.state === 'missing' && (
        <p className="tool-note" data-testid="audit-missing">
          This server has no audit log API yet (GET /api/v1/audit answers 404).
        </p>
      )}
      {entries.state === 'error' && (
        <p className="tool-error" role="alert">
          Cannot read the audit log: {entries.message}
        </p>
      )}
      <p className="tool-summary">
        {entries.state === 'ok'
          ? `${rows.length === 0 ? 'No entries' : `The last ${rows.length} ${rows.length === 1 ? 'entry' : 'entries'}`}${run ? ` of run ${run}` : ''}, newest first.`
          : entries.state === 'loading'
            ? 'Reading the log…'
            : ''}
      </p>
      <div className="audit-scroll">
        <table className="audit-table">
          <thead>
            <tr>
              <th scope="col">Seq</th>
              <th scope="col">Time</th>
              <th scope="col">Kind</th>
              <th scope="col">Who</th>
              <th scope="col">Agent / run</th>
              <th scope="col">Capability</th>
              <th scope="col">Decision</th>
              <th scope="col">Reason</th>
              <th scope="col">
                <span className="visually-hidden">Details</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) => {
              const expanded = open.has(r.key);
              return [
                <tr
                  key={r.key}
                  data-testid="audit-row"
                  data-kind={r.kind}
                  data-seq={r.seq ?? undefined}
                  data-run={r.run || undefined}
                  data-decision={r.decision}
                >
                  <td className="num">{r.seq ?? ''}</td>
                  <td className="time" title={stamp(r.timeMs)}>
                    {r.timeMs ? new Date(r.timeMs).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) : ''}
                  </td>
                  <td>
                    <span className="kind">{r.kind}</span>
                  </td>
                  <td>{r.who}</td>
                  <td>
                    <span className="run-cell">
                      <span>{r.agent}</span>
                      {r.run && (
                        <button
                          type="button"
                          className="link mono"
                          title={`Show only run ${r.run}${r.step !== null ? ` (this entry: step ${r.step})` : ''}`}
                          aria-label={`Filter by run ${r.run}`}
                          onClick={() => filterBy(r.run)}
                        >
                          {shortId(r.run)}
                          {r.step !== null ? `/${r.step}` : ''}
                        </button>
                      )}
                    </span>
                  </td>
                  <td className="mono call" title={r.call}>
                    {r.call}
                  </td>
                  <td>{r.decision && <span className={`decision ${r.tone}`}>{r.decision}</span>}</td>
                  <td className="reason" title={r.reason}>
                    {r.reason}
                  </td>
                  <td>
                    {r.details.length > 0 && (
                      <button
                        type="button"
                        className="control expand"
                        aria-expanded={expanded}
                        aria-label={`${expanded ? 'Hide' : 'Show'} the details of entry ${r.seq ?? ''}`}
                        title={expanded ? 'Hide details' : 'Show details'}
                        onClick={() => toggle(r.key)}
                      >
                        <svg viewBox="0 0 12 12" aria-hidden="true">
                          <path d={expanded ? 'M3 7.5l3-3 3 3' : 'M3 4.5l3 3 3-3'} />
                        </svg>
                      </button>
                    )}
                  </td>
                </tr>,
                expanded && (
                  <tr key={`${r.key}d`} className="details-row">
                    <td colSpan={9}>
                      <dl className="audit-details">
                        {r.details.map((d) => (
                          <div key={d.key}>
                            <dt>{d.key}</dt>
                            <dd>{d.text}</dd>
                          </div>
                        ))}
                      </dl>
                    </td>
                  </tr>
                ),
              ];
            })}
          </tbody>
        </table>
        {olderError && (
          <p className="tool-error" role="alert">
            {olderError}
          </p>
        )}
        {entries.state === 'ok' && olderBefore !== null && (
          <p className="audit-more">
            <button type="button" className="tool-button" data-testid="audit-older" disabled={reading} onClick={() => void loadOlder()}>
              Older entries
            </button>
          </p>
        )}
      </div>
    </div>
  );
}
