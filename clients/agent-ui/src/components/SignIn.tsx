import { useState } from "preact/hooks";
import { session } from "../session";

/** Why the app asks, in words an agent can act on, by the server's ErrorInfo reason. */
const REASONS: Record<string, string> = {
  MISSING_CREDENTIALS: "This Callpilot server needs you to sign in.",
  SIGNED_OUT: "You signed out.",
  INVALID_API_KEY: "That key was not accepted.",
  MALFORMED_API_KEY: "That does not look like a Callpilot key (they start with cp_).",
  API_KEY_REVOKED: "That key has been revoked.",
  TOKEN_EXPIRED: "Your sign-in has expired.",
};

/**
 * The sign-in screen: paste an API key or a token. Shown when the server
 * refuses a call as UNAUTHENTICATED; the server's own reason and message are
 * shown so a wrong key and an expired one read differently.
 */
export function SignIn({ reason, message }: { reason: string; message: string }) {
  const [value, setValue] = useState("");
  const headline = REASONS[reason] ?? "Your sign-in was not accepted.";
  const submit = (event: Event) => {
    event.preventDefault();
    if (value.trim()) session.signIn(value);
  };
  return (
    <section class="sign-in panel" aria-labelledby="sign-in-title" data-sign-in="true">
      <h1 id="sign-in-title">Sign in to the agent desk</h1>
      <div class="error banner" role="alert" data-sign-in-reason={reason}>
        <p>{headline}</p>
        {message && reason !== "SIGNED_OUT" && reason !== "MISSING_CREDENTIALS" && (
          <p class="small">
            The server said: {message} <span class="mono">({reason})</span>
          </p>
        )}
      </div>
      <form class="sign-in-form" onSubmit={submit}>
        <label for="credential">Your agent key or token</label>
        <input
          id="credential"
          name="credential"
          type="password"
          autoComplete="off"
          spellcheck={false}
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          aria-describedby="credential-help"
        />
        <p id="credential-help" class="muted small">
          An agent API key (<span class="mono">cp_…</span>) from your administrator, or a token from your
          company&apos;s sign-in. It is kept in this browser tab only, and forgotten when you close it or sign out.
        </p>
        <button class="btn btn-primary" type="submit" disabled={!value.trim()}>
          Sign in
        </button>
      </form>
    </section>
  );
}
