// Settings: the credentials a Subsonic app signs in with (server URL, username, app password,
// API key, each with a copy button, and a way to replace them), how to set up such an app,
// changing the account password and, for admins, whether apps may use account passwords.
import { useId, useRef, useState, type FormEvent } from "react";
import {
  changeMyPassword,
  changeSettings,
  errorText,
  getSettings,
  getSubsonicCredentials,
  isMissingEndpoint,
  rotateSubsonicCredentials,
} from "../api/client";
import { useApp, useLoad } from "../app/context";
import { useAction } from "../app/action";
import { Icon } from "../components/Icon";
import { ErrorBox, FormError, Loading } from "../components/States";

/** The URL a Subsonic app is given: this server, without the API's `/rest`. */
export function serverUrl(base: string, origin = window.location.origin): string {
  return `${origin}${base}`.replace(/\/+$/, "");
}

/** Copy `text`; false when the browser would not (no clipboard API, or refused). */
async function copyText(text: string): Promise<boolean> {
  try {
    if (!navigator.clipboard) return false;
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/** A read-only value with a copy button (and, for a secret, a show/hide button). */
function CopyField({
  label,
  value,
  secret = false,
}: {
  label: string;
  value: string;
  secret?: boolean;
}) {
  const id = useId();
  // In a sentence: "Copy app password", "Copy API key".
  const what = /^[A-Z]{2}/.test(label) ? label : label.charAt(0).toLowerCase() + label.slice(1);
  const input = useRef<HTMLInputElement>(null);
  const [shown, setShown] = useState(!secret);
  const [said, setSaid] = useState("");
  const copy = async () => {
    if (await copyText(value)) {
      setSaid("Copied");
    } else {
      input.current?.select();
      setSaid("Selected: press Ctrl+C (⌘C) to copy");
    }
  };
  return (
    <div className="copy-field">
      <label htmlFor={id}>{label}</label>
      <div className="copy-row">
        <input
          ref={input}
          id={id}
          readOnly
          value={value}
          type={shown ? "text" : "password"}
          spellCheck={false}
          onFocus={(e) => e.currentTarget.select()}
        />
        {secret && (
          <button
            type="button"
            className="text-button"
            aria-label={`${shown ? "Hide" : "Show"} ${what}`}
            onClick={() => setShown((s) => !s)}
          >
            {shown ? "Hide" : "Show"}
          </button>
        )}
        <button
          type="button"
          className="secondary"
          aria-label={`Copy ${what}`}
          onClick={() => void copy()}
        >
          <Icon name="copy" size={16} /> Copy
        </button>
      </div>
      <span className="muted small" role="status">
        {said}
      </span>
    </div>
  );
}

function SubsonicSection() {
  const { api } = useApp();
  const creds = useLoad((signal) => getSubsonicCredentials(api, signal), [api]);
  const [confirming, setConfirming] = useState(false);
  const { busy, error, run } = useAction();
  const rotate = () =>
    run(async () => {
      creds.setData(await rotateSubsonicCredentials(api));
      setConfirming(false);
    });
  const url = serverUrl(api.base);
  return (
    <section aria-labelledby="subsonic-h" className="settings-section">
      <h2 id="subsonic-h">Subsonic apps</h2>
      <p className="muted">
        Music players that speak the Subsonic API (on phones, desktops, TVs) can play this library.
        {creds.data?.account_password === false
          ? " This server asks apps for the app password below: your sign-in password does not work in them."
          : " Sign them in with your username and the password you sign in here with, or, to keep that password out of the app, with the app password below."}
      </p>
      {creds.loading && !creds.data ? (
        <Loading />
      ) : creds.error ? (
        <ErrorBox error={creds.error} onRetry={creds.reload} />
      ) : creds.data ? (
        <>
          <div className="copy-fields">
            <CopyField label="Server URL" value={url} />
            <CopyField label="Username" value={creds.data.username} />
            <CopyField label="App password" value={creds.data.password} secret />
            <CopyField label="API key" value={creds.data.api_key} secret />
          </div>
          <div className="rotate">
            {confirming ? (
              <>
                <span>
                  Apps signed in with the current password or key will have to sign in again.
                </span>
                <button
                  type="button"
                  className="primary"
                  disabled={busy}
                  onClick={() => void rotate()}
                >
                  Replace them
                </button>
                <button type="button" className="text-button" onClick={() => setConfirming(false)}>
                  Keep them
                </button>
              </>
            ) : (
              <button type="button" className="secondary" onClick={() => setConfirming(true)}>
                New app password and API key
              </button>
            )}
            <FormError error={error} />
          </div>
        </>
      ) : null}
      <h3>Setting up an app</h3>
      <ol className="howto">
        <li>
          Install a Subsonic-compatible player, for example Symfonium or DSub (Android), play:Sub or
          Amperfy (iOS), Feishin or Sublime Music (desktop).
        </li>
        <li>
          Add a server of type Subsonic (or OpenSubsonic, Navidrome, Airsonic) with the{" "}
          <strong>server URL</strong> above: this address, without <code>/rest</code>; the app adds
          that itself.
        </li>
        <li>
          Sign in with the <strong>username</strong> and
          {creds.data?.account_password === false ? (
            <>
              {" "}
              the <strong>app password</strong>.
            </>
          ) : (
            <>
              {" "}
              your password (or the <strong>app password</strong>).
            </>
          )}{" "}
          An app that supports OpenSubsonic API keys can take the <strong>API key</strong> instead.
        </li>
        <li>
          If the app refuses the server's certificate (a cluster run with its own development
          certificate), allow it in the app's settings or give the cluster a real one.
        </li>
      </ol>
    </section>
  );
}

function PasswordSection() {
  const { api, notify } = useApp();
  const [old, setOld] = useState("");
  const [fresh, setFresh] = useState("");
  const [again, setAgain] = useState("");
  const { busy, error, setError, run } = useAction((err) =>
    isMissingEndpoint(err)
      ? "This server cannot change passwords yet (it has no /api/me/password)."
      : errorText(err),
  );
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (fresh !== again) {
      setError("The new passwords differ.");
      return;
    }
    await run(async () => {
      await changeMyPassword(api, old, fresh);
      // Changing the password signs out every session of the user, this one included.
      notify("Password changed: sign in with the new one.");
      api.logout();
    });
  };
  const fields: [string, string, (v: string) => void, string][] = [
    ["Current password", old, setOld, "current-password"],
    ["New password", fresh, setFresh, "new-password"],
    ["New password again", again, setAgain, "new-password"],
  ];
  return (
    <section aria-labelledby="password-h" className="settings-section">
      <h2 id="password-h">Password</h2>
      <form className="stacked-form" onSubmit={(e) => void submit(e)}>
        {fields.map(([label, value, set, autoComplete]) => (
          <label key={label}>
            {label}
            <input
              type="password"
              autoComplete={autoComplete}
              value={value}
              onChange={(e) => set(e.target.value)}
              required
            />
          </label>
        ))}
        <FormError error={error} />
        <button type="submit" className="primary" disabled={busy}>
          Change password
        </button>
        <p className="muted small">Every device signed in as you will have to sign in again.</p>
      </form>
    </section>
  );
}

/** Admins: whether Subsonic apps may sign in with account passwords (see the docs' trade-off). */
function AppSignInSection() {
  const { api, notify } = useApp();
  const settings = useLoad((signal) => getSettings(api, signal), [api]);
  const [busy, setBusy] = useState(false);
  const allowed = settings.data?.subsonic_account_password;
  const toggle = async (value: boolean) => {
    setBusy(true);
    try {
      settings.setData(await changeSettings(api, { subsonic_account_password: value }));
      notify(
        value
          ? "Apps may use account passwords again (each from its user's next sign-in)."
          : "Apps must now use app passwords.",
      );
    } catch (e) {
      notify(`Could not change it: ${errorText(e)}`);
    } finally {
      setBusy(false);
    }
  };
  if (settings.error && isMissingEndpoint(settings.error)) return null;
  return (
    <section aria-labelledby="app-sign-in-h" className="settings-section">
      <h2 id="app-sign-in-h">Sign-in of apps (admins)</h2>
      {allowed === undefined ? (
        settings.error ? (
          <ErrorBox error={settings.error} onRetry={settings.reload} />
        ) : (
          <Loading />
        )
      ) : (
        <label className="check">
          <input
            type="checkbox"
            checked={allowed}
            disabled={busy}
            onChange={(e) => void toggle(e.target.checked)}
          />
          Subsonic apps may sign in with account passwords
        </label>
      )}
      <p className="muted small">
        To check the passwords apps send, the server keeps account passwords encrypted with a key of
        the cluster. Turned off, apps need the app password, and those copies are deleted.
      </p>
    </section>
  );
}

export function SettingsView() {
  const { session, admin } = useApp();
  return (
    <section aria-labelledby="settings-h">
      <div className="view-head">
        <h1 id="settings-h">Settings</h1>
        <span className="muted">Signed in as {session?.username}</span>
      </div>
      <SubsonicSection />
      <PasswordSection />
      {admin && <AppSignInSection />}
    </section>
  );
}
