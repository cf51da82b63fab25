import { useEffect, useReducer, useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { describeError, type Api, type AgentDetail } from '../api';
import { bubbles, canSend, chatReducer, initialChat, isClosed, statusLine, waitingConsent } from '../chat';
import type { StreamClient } from '../stream';

interface Props {
  api: Api;
  stream: StreamClient | null;
  runId: string;
  agent: string;
  /** The agent's details (for its listening action), fetched once per agent. */
  agentDetail: (name: string) => Promise<AgentDetail>;
  /** The window is shown and on top: the message box takes the focus. */
  active: boolean;
  /** What the run waits for consent to do, from the desktop's pending requests (null: none known). */
  consentHint: string | null;
  /** A turn of this run ended waiting for consent (the inbox reads the requests again). */
  onWaitingConsent: () => void;
  onOpenConsents: () => void;
}

/** One conversation: the chat so far, the answer being written, and a message box. */
export function ChatWindow({ api, stream, runId, agent, agentDetail, active, consentHint, onWaitingConsent, onOpenConsents }: Props) {
  const [chat, dispatch] = useReducer(chatReducer, initialChat);
  const [draft, setDraft] = useState('');
  const input = useRef<HTMLTextAreaElement>(null);
  const log = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let live = true;
    agentDetail(agent).then(
      (detail) => live && dispatch({ type: 'listening', action: detail.listening_action ?? null }),
      (e) => live && dispatch({ type: 'error', message: `Cannot load the agent ${agent}: ${describeError(e)}` }),
    );
    return () => {
      live = false;
    };
  }, [agent, agentDetail]);

  // The latest callback, without subscribing again when it changes.
  const waitingConsentRef = useRef(onWaitingConsent);
  useEffect(() => {
    waitingConsentRef.current = onWaitingConsent;
  }, [onWaitingConsent]);

  // A fork: what was said before it forked, from its parents' steps.
  const [forkedAt, setForkedAt] = useState<number | null>(null);
  useEffect(() => {
    if (forkedAt === null) return;
    let live = true;
    api.conversation(runId).then(
      (c) => live && dispatch({ type: 'earlier', messages: c.messages ?? [], forkedAt }),
      () => {},
    );
    return () => {
      live = false;
    };
  }, [api, runId, forkedAt]);

  useEffect(() => {
    if (!stream) return;
    return stream.subscribe(runId, (frame) => {
      if (frame.type === 'subscribed' && frame.run?.parent_run && typeof frame.run.parent_step === 'number') {
        setForkedAt(frame.run.parent_step);
      }
      dispatch({ type: 'frame', frame });
      const ended = frame.type === 'event' && frame.kind === 'turn_ended' ? (frame.data as { ended?: unknown } | null)?.ended : null;
      if (ended === 'waiting_consent' || (frame.type === 'subscribed' && frame.run?.status === 'waiting_consent')) {
        waitingConsentRef.current();
      }
    });
  }, [stream, runId]);

  const shown = bubbles(chat);
  const streamingText = chat.streaming?.text ?? '';
  useEffect(() => {
    const el = log.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [shown.length, streamingText]);

  const ready = canSend(chat);
  useEffect(() => {
    if (active && ready) input.current?.focus();
  }, [active, ready]);

  const send = async (e?: FormEvent) => {
    e?.preventDefault();
    const text = draft.trim();
    if (!text || !ready) return;
    setDraft('');
    dispatch({ type: 'send', text });
    try {
      await api.say(runId, text);
    } catch (err) {
      dispatch({ type: 'send_failed', message: describeError(err) });
      setDraft((d) => d || text);
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void send();
    }
  };

  const status = statusLine(chat, consentHint);
  const closed = isClosed(chat);
  const needsConsent = waitingConsent(chat);

  return (
    <div className="chat">
      <div className="chat-log" ref={log} role="log" aria-live="polite" aria-label={`Conversation with ${agent}`}>
        {shown.length === 0 && !chat.streaming && (
          <p className="chat-empty">{chat.subscribed ? `Say something to ${agent}.` : 'Loading the conversation…'}</p>
        )}
        {shown.map((b) =>
          b.role === 'error' ? (
            <div key={b.key} className="chat-error" role="alert" data-testid="message-error">
              {b.text}
            </div>
          ) : (
            <div
              key={b.key}
              className={`bubble ${b.role}${b.pending ? ' pending' : ''}${b.earlier ? ' earlier' : ''}`}
              data-testid={b.role === 'user' ? 'message-user' : 'message-agent'}
              data-pending={b.pending ? 'true' : undefined}
              data-earlier={b.earlier ? 'true' : undefined}
              title={b.earlier ? 'Said before this conversation was forked' : undefined}
            >
              {b.text}
            </div>
          ),
        )}
        {chat.streaming && (
          <div className="bubble agent streaming" data-testid="streaming" aria-busy="true">
            {chat.streaming.text}
            <span className="caret" aria-hidden="true" />
          </div>
        )}
      </div>
      <div className="window-status" data-testid="window-status" data-tone={status.tone} aria-live="polite">
        <span className="dot" aria-hidden="true" />
        <span className="status-text">{status.text}</span>
        {chat.mode && (
          <span className="chat-mode" data-testid="chat-mode" title="The agent's mode (its state's mode)">
            {chat.mode}
          </span>
        )}
        {needsConsent && (
          <button
            type="button"
            className="status-action"
            data-testid="open-consents"
            aria-label="Open the consent inbox to answer the request"
            title="Open the consent inbox"
            onClick={onOpenConsents}
          >
            Review request
          </button>
        )}
      </div>
      <form className="composer" onSubmit={send}>
        <textarea
          ref={input}
          rows={1}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onKeyDown}
          placeholder={
            closed ? 'This conversation has ended' : needsConsent ? `${agent} waits for your consent…` : `Message ${agent}`
          }
          aria-label={`Message to ${agent}`}
          data-testid="chat-input"
          disabled={closed}
        />
        <button
          type="submit"
          className="send"
          data-testid="chat-send"
          aria-label="Send"
          title={needsConsent ? 'Answer the consent request first: the run continues by itself' : 'Send (Enter)'}
          disabled={!ready || !draft.trim()}
        >
          <svg viewBox="0 0 16 16" aria-hidden="true">
            <path d="M2 8h11M9 4l4 4-4 4" />
          </svg>
        </button>
      </form>
    </div>
  );
}
