// Sign in / sign up.
import { useState, type FormEvent } from "react";
import { useApp } from "../app/context";
import { useAction } from "../app/action";
import { FormError } from "../components/States";

export function LoginView() {
  const { api } = useApp();
  const [mode, setMode] = useState<"signin" | "signup">("signin");
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const { busy, error, run } = useAction();

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    await run(() =>
      mode === "signin"
        ? api.login(username.trim(), password)
        : api.register(username.trim(), password),
    );
  };

  const signin = mode === "signin";
  return (
    <main className="login">
      <div className="login-card">
        <div className="brand big" aria-hidden="true">
          <img src="/favicon.svg" alt="" width={40} height={40} /> dspot
        </div>
        <h1>{signin ? "Sign in" : "Create your account"}</h1>
        <div className="tabs" role="tablist" aria-label="Account">
          <button type="button" role="tab" aria-selected={signin} onClick={() => setMode("signin")}>
            Sign in
          </button>
          <button
            type="button"
            role="tab"
            aria-selected={!signin}
            onClick={() => setMode("signup")}
          >
            Sign up
          </button>
        </div>
        <form onSubmit={(e) => void submit(e)}>
          <label>
            Username
            <input
              name="username"
              autoComplete="username"
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              required
            />
          </label>
          <label>
            Password
            <input
              name="password"
              type="password"
              autoComplete={signin ? "current-password" : "new-password"}
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              required
            />
          </label>
          <FormError error={error} />
          <button type="submit" className="primary" disabled={busy}>
            {busy ? "Please wait…" : signin ? "Sign in" : "Sign up"}
          </button>
        </form>
        <p className="muted small">
          A replicated music service: it keeps playing when servers die.
        </p>
      </div>
    </main>
  );
}
