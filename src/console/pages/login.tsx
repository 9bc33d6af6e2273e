/** Login with an API token (`vpcgw token create`) or a console admin (`vpcgw admin add`). */
import { useState } from 'preact/hooks';
import * as api from '../api.js';
import { errorText } from '../ui.js';

export function Login({ onLogin }: { onLogin: (s: api.Session) => void }) {
  const [mode, setMode] = useState<'token' | 'password'>('token');
  const [token, setToken] = useState('');
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setErr(null);
    setBusy(true);
    try {
      const s = await api.login(mode === 'token' ? { token: token.trim() } : { username: username.trim(), password });
      onLogin(s);
    } catch (x) {
      setErr(x instanceof api.ApiError && x.status === 401 ? `Login refused: ${x.message}` : errorText(x));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="login" id="main">
      <h1>vpcgw console</h1>
      <form onSubmit={submit} class="form" aria-describedby={err ? 'login-err' : undefined}>
        <fieldset class="tabs">
          <legend>Sign in with</legend>
          <label><input type="radio" name="mode" checked={mode === 'token'} onChange={() => setMode('token')} /> Token</label>
          <label><input type="radio" name="mode" checked={mode === 'password'} onChange={() => setMode('password')} /> Admin user</label>
        </fieldset>
        {mode === 'token' ? (
          <div class="field">
            <label for="token">API token</label>
            <input id="token" type="password" autoComplete="off" required value={token} onInput={(e) => setToken((e.currentTarget as HTMLInputElement).value)} />
            <p class="hint">Create one on the gateway with <code>vpcgw token create</code>.</p>
          </div>
        ) : (
          <>
            <div class="field">
              <label for="username">User name</label>
              <input id="username" autoComplete="username" required value={username} onInput={(e) => setUsername((e.currentTarget as HTMLInputElement).value)} />
            </div>
            <div class="field">
              <label for="password">Password</label>
              <input id="password" type="password" autoComplete="current-password" required value={password} onInput={(e) => setPassword((e.currentTarget as HTMLInputElement).value)} />
              <p class="hint">Admins are added on the gateway with <code>vpcgw admin add NAME</code>.</p>
            </div>
          </>
        )}
        {err && <p class="error" id="login-err" role="alert">{err}</p>}
        <div class="buttons">
          <button type="submit" class="primary" disabled={busy}>Sign in</button>
        </div>
      </form>
    </main>
  );
}
