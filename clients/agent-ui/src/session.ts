// Who the app acts as: the agent's credential (an API key `cp_…` or a JWT) when
// the gateway's server runs with auth on.
//
// Policy:
// - The app first works without a credential (auth off: a loopback
//   development server) and asks for one only when a call is refused as
//   UNAUTHENTICATED; the refusal's reason is shown on the sign-in screen.
// - A credential comes from the sign-in screen (pasted) or from an embedding
//   CRM as `#token=…` in the URL fragment (never sent to any server in the
//   URL); the fragment is removed from the address bar as soon as it is read.
// - It is kept in memory and in sessionStorage (this tab only, gone when the
//   tab closes), never in localStorage or a cookie. Signing out forgets it.

const STORAGE_KEY = "callpilot.credential";

export type SessionState =
  | { kind: "open" } // no credential needed so far
  | { kind: "signedIn" }
  | { kind: "required"; reason: string; message: string };

type Listener = () => void;

function readStorage(): string {
  try {
    return window.sessionStorage.getItem(STORAGE_KEY) ?? "";
  } catch {
    return ""; // storage disabled: memory only
  }
}

function writeStorage(value: string): void {
  try {
    if (value) window.sessionStorage.setItem(STORAGE_KEY, value);
    else window.sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // storage disabled: memory only
  }
}

/** `#token=…` handed over by an embedding CRM; removed from the address bar once read. */
function takeFragmentToken(): string {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash) return "";
  const params = new URLSearchParams(hash);
  const token = params.get("token") ?? "";
  if (token) {
    params.delete("token");
    const rest = params.toString();
    window.history.replaceState(window.history.state, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""));
  }
  return token.trim();
}

class Session {
  private credentialValue = "";
  state: SessionState = { kind: "open" };
  /** Bumped on every sign-in, so views remount and load again with the new credential. */
  epoch = 0;
  private readonly listeners = new Set<Listener>();

  constructor() {
    const fromFragment = takeFragmentToken();
    if (fromFragment) writeStorage(fromFragment);
    this.credentialValue = fromFragment || readStorage();
    if (this.credentialValue) this.state = { kind: "signedIn" };
  }

  credential(): string {
    return this.credentialValue;
  }

  signIn(credential: string): void {
    this.credentialValue = credential.trim();
    writeStorage(this.credentialValue);
    this.state = { kind: "signedIn" };
    this.epoch += 1;
    this.emit();
  }

  signOut(): void {
    this.credentialValue = "";
    writeStorage("");
    this.state = { kind: "required", reason: "SIGNED_OUT", message: "You signed out." };
    this.emit();
  }

  /** The server refused the credential (or its absence): ask for one, saying why. */
  refused(reason: string, message: string): void {
    if (this.state.kind === "required" && this.state.reason === reason) return;
    this.credentialValue = "";
    writeStorage("");
    this.state = { kind: "required", reason, message };
    this.emit();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

export const session = new Session();
