import { useState, type FormEvent } from 'react';

interface Props {
  busy: boolean;
  error: string | null;
  onSubmit: (token: string) => void;
}

/** Asks for the API token that `choir serve` printed at its first start. */
export function SignIn({ busy, error, onSubmit }: Props) {
  const [token, setToken] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (token.trim()) onSubmit(token.trim());
  };
  return (
    <main className="signin-screen">
      <form className="signin" onSubmit={submit} aria-labelledby="signin-title">
        <div className="signin-mark" aria-hidden="true">
          <svg viewBox="0 0 20 20">
            <circle cx="6" cy="6" r="2.4" />
            <circle cx="14" cy="6" r="2.4" />
            <circle cx="6" cy="14" r="2.4" />
            <circle cx="14" cy="14" r="2.4" />
          </svg>
        </div>
        <h1 id="signin-title">ChoirOS</h1>
        <p className="signin-lead">
          Sign in with an API token. <code>choir serve</code> prints the admin's at its first start;{' '}
          <code>choir token create TENANT USER</code> makes more.
        </p>
        <label htmlFor="token">API token</label>
        <input
          id="token"
          type="password"
          autoComplete="off"
          spellCheck={false}
          autoFocus
          placeholder="choir_…"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          data-testid="token-input"
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'signin-error' : undefined}
        />
        {error && (
          <p id="signin-error" className="signin-error" role="alert" data-testid="sign-in-error">
            {error}
          </p>
        )}
        <button type="submit" data-testid="sign-in" disabled={busy || !token.trim()}>
          {busy ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
