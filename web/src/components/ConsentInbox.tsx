import { useEffect, useRef, useState } from 'react';
import { ApiError, describeError, type Api, type ConsentRecord } from '../api';
import { answerText, argumentPairs, describeCall, inboxRows, isPending, shortId } from '../consents';
import { ago, fromNow, stamp } from '../time';

interface Props {
  api: Api;
  /** The pending requests, as last read by the desktop (null: not read yet). */
  pending: ConsentRecord[] | null;
  /** Why the last read failed. */
  error: string | null;
  /** Requests answered in this inbox: their answer stays in view. */
  answered: ReadonlyMap<string, ConsentRecord>;
  /** The window is shown and on top. */
  active: boolean;
  onAnswered: (record: ConsentRecord) => void;
  onRefresh: () => void;
  onOpenRun: (runId: string, agent: string) => void;
}

/** The consent inbox: requests for a person's approval of an agent's call, to approve or deny. */
export function ConsentInbox({ api, pending, error, answered, active, onAnswered, onRefresh, onOpenRun }: Props) {
  const [showAnswered, setShowAnswered] = useState(false);
  const [all, setAll] = useState<ConsentRecord[] | null>(null);
  const [allError, setAllError] = useState<string | null>(null);
  const root = useRef<HTMLDivElement>(null);

  // With answered ones shown, every request is read again whenever the pending ones are.
  useEffect(() => {
    if (!showAnswered) return;
    let live = true;
    api.consents('all').then(
      (r) => {
        if (!live) return;
        setAll(r.consents ?? []);
        setAllError(null);
      },
      (e) => live && setAllError(`Cannot read the answered requests: ${describeError(e)}`),
    );
    return () => {
      live = false;
    };
  }, [api, showAnswered, pending, answered]);

  useEffect(() => {
    if (active && !root.current?.contains(document.activeElement)) root.current?.focus();
  }, [active]);

  const rows = inboxRows(pending, all, answered, showAnswered);
  const waiting = rows.filter(isPending).length;
  const problem = error ?? (showAnswered ? allError : null);

  return (
    <div className="tool consents" ref={root} tabIndex={-1} data-testid="consents-window" aria-label="Consent inbox">
      <div className="tool-bar">
        <p className="tool-summary" aria-live="polite">
          {pending === null && !error
            ? 'Reading the requests…'
            : waiting === 0
              ? 'No request waits for your answer.'
              : `${waiting} request${waiting === 1 ? '' : 's'} wait${waiting === 1 ? 's' : ''} for your answer.`}
        </p>
        <label className="toggle">
          <input
            type="checkbox"
            checked={showAnswered}
            data-testid="consents-show-all"
            onChange={(e) => setShowAnswered(e.target.checked)}
          />
          Show answered
        </label>
        <button type="button" className="tool-button" onClick={onRefresh} data-testid="consents-refresh" title="Read the requests again">
          Refresh
        </button>
      </div>
      {problem && (
        <p className="tool-error" role="alert">
          {problem}
        </p>
      )}
      <ul className="consent-list" aria-label="Consent requests">
        {rows.map((c) => (
          <ConsentRow key={c.id} api={api} consent={c} onAnswered={onAnswered} onOpenRun={onOpenRun} />
        ))}
      </ul>
    </div>
  );
}

interface RowProps {
  api: Api;
  consent: ConsentRecord;
  onAnswered: (record: ConsentRecord) => void;
  onOpenRun: (runId: string, agent: string) => void;
}

function ConsentRow({ api, consent: c, onAnswered, onOpenRun }: RowProps) {
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState<'approve' | 'deny' | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const call = describeCall(c.capability, c.argument);
  const pairs = argumentPairs(c.arguments);
  const agent = c.agent || 'an agent';
  const reasonId = `consent-reason-${c.id}`;

  const answer = async (how: 'approve' | 'deny') => {
    setBusy(how);
    setError(null);
    try {
      const r = await api.answerConsent(c.id, how, reason);
      setNote(
        r.continued
          ? 'The conversation continues.'
          : r.continued === false
            ? 'The run did not continue by itself (choir runs resume continues it).'
            : null,
      );
      onAnswered(r.consent ?? { ...c, status: how === 'approve' ? 'approved' : 'denied' });
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        // Answered meanwhile (elsewhere): show that answer.
        setNote('It was answered already.');
        try {
          const { consents } = await api.consents('all');
          const found = consents?.find((x) => x.id === c.id);
          if (found) onAnswered(found);
        } catch {
          // the next poll shows it
        }
      } else if (e instanceof ApiError && e.status === 403) {
        setError(`You may not answer this request: ${e.message}`);
      } else if (e instanceof ApiError && e.status === 404) {
        setError('This request no longer exists.');
      } else {
        setError(`Cannot ${how} it: ${describeError(e)}`);
      }
    } finally {
      setBusy(null);
    }
  };

  const pending = isPending(c);
  return (
    <li className={`consent ${c.status}`} data-testid={`consent-${c.id}`} data-status={c.status} aria-label={`${agent} asks for ${call}`}>
      <div className="consent-head">
        <span className="agent-avatar" aria-hidden="true">
          {(c.agent || '?').slice(0, 1).toUpperCase()}
        </span>
        <div className="consent-what">
          <span className="consent-agent">{agent}</span> asks to call{' '}
          <code className="consent-call" data-testid="consent-call">
            {call}
          </code>
        </div>
        <time className="consent-when" dateTime={c.created_ms ? new Date(c.created_ms).toISOString() : undefined} title={stamp(c.created_ms)}>
          {ago(c.created_ms)}
        </time>
      </div>
      {pairs.length > 0 && (
        <dl className="consent-args" data-testid="consent-args">
          {pairs.map((p) => (
            <div key={p.key} className="consent-arg">
              <dt>{p.key}</dt>
              <dd className={p.redacted ? 'redacted' : undefined} title={p.redacted ? 'Not shown: the agent’s contract does not log this value' : undefined}>
                {p.text}
              </dd>
            </div>
          ))}
        </dl>
      )}
      <div className="consent-meta">
        {c.run_id && (
          <button
            type="button"
            className="link"
            title={`Open the conversation ${c.run_id}`}
            onClick={() => onOpenRun(c.run_id!, c.agent || 'agent')}
          >
            run {shortId(c.run_id)}
          </button>
        )}
        {typeof c.step === 'number' && <span>step {c.step}</span>}
        {pending && c.expires_ms ? <span title={stamp(c.expires_ms)}>expires {fromNow(c.expires_ms)}</span> : null}
        <span className="consent-id">request {c.id}</span>
      </div>
      {pending ? (
        <div className="consent-actions">
          <label className="visually-hidden" htmlFor={reasonId}>
            Reason (optional)
          </label>
          <input
            id={reasonId}
            type="text"
            className="consent-reason"
            data-testid="consent-reason"
            placeholder="Reason (optional)"
            value={reason}
            maxLength={500}
            disabled={busy !== null}
            onChange={(e) => setReason(e.target.value)}
          />
          <button
            type="button"
            className="answer deny"
            data-testid="consent-deny"
            aria-label={`Deny ${call} for ${agent}`}
            disabled={busy !== null}
            aria-busy={busy === 'deny'}
            onClick={() => void answer('deny')}
          >
            {busy === 'deny' ? 'Denying…' : 'Deny'}
          </button>
          <button
            type="button"
            className="answer approve"
            data-testid="consent-approve"
            aria-label={`Approve ${call} for ${agent}`}
            disabled={busy !== null}
            aria-busy={busy === 'approve'}
            onClick={() => void answer('approve')}
          >
            {busy === 'approve' ? 'Approving…' : 'Approve'}
          </button>
        </div>
      ) : (
        <p className={`consent-answer ${c.status}`} data-testid="consent-answer" role="status">
          <span aria-hidden="true">{c.status === 'approved' ? '✓ ' : c.status === 'denied' ? '✗ ' : '• '}</span>
          {answerText(c)}
          {c.answered_ms ? <span className="consent-answered-at" title={stamp(c.answered_ms)}> · {ago(c.answered_ms)}</span> : null}
          {note && <span className="consent-note">{note}</span>}
        </p>
      )}
      {error && (
        <p className="tool-error" role="alert">
          {error}
        </p>
      )}
    </li>
  );
}
