import { useCallback, useEffect, useMemo, useState } from 'react';
import { Api, ApiError, describeError, type AgentSummary } from './api';
import { Desktop } from './components/Desktop';
import { SignIn } from './components/SignIn';

const TOKEN_KEY = 'choir.token';

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

interface Session {
  token: string;
  agents: AgentSummary[];
}

export default function App() {
  const [session, setSession] = useState<Session | null>(null);
  const [checking, setChecking] = useState(() => storedToken() !== null);
  const [error, setError] = useState<string | null>(null);

  const signOut = useCallback((why: string | null = null) => {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // storage unavailable: nothing kept
    }
    setSession(null);
    setError(why);
  }, []);

  /** Checks a token with GET /api/v1/agents, and keeps it for this tab if the server takes it. */
  const signIn = useCallback(async (token: string, resumed = false) => {
    setChecking(true);
    setError(null);
    try {
      const { agents } = await new Api(token).agents();
      try {
        sessionStorage.setItem(TOKEN_KEY, token);
      } catch {
        // storage unavailable: the session lasts until the page reloads
      }
      setSession({ token, agents: agents ?? [] });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) {
        try {
          sessionStorage.removeItem(TOKEN_KEY);
        } catch {
          // nothing kept
        }
        setError(resumed ? 'Your session has ended: sign in again.' : 'The server does not accept this token.');
      } else {
        setError(`Cannot sign in: ${describeError(e)}`);
      }
    } finally {
      setChecking(false);
    }
  }, []);

  useEffect(() => {
    const token = storedToken();
    if (token) void signIn(token, true);
  }, [signIn]);

  const api = useMemo(
    () => (session ? new Api(session.token, () => signOut('The server no longer accepts this token: sign in again.')) : null),
    [session, signOut],
  );

  if (!session || !api) {
    return <SignIn busy={checking} error={error} onSubmit={(t) => void signIn(t)} />;
  }
  return <Desktop api={api} token={session.token} agents={session.agents} onSignOut={() => signOut()} />;
}
