import { useEffect, useState } from "preact/hooks";
import { CallList } from "./components/CallList";
import { SignIn } from "./components/SignIn";
import { CallView } from "./components/CallView";
import { FloorPage } from "./components/FloorPage";
import { InsightsPage } from "./components/InsightsPage";
import { NotFound } from "./components/NotFound";
import { RecordView } from "./components/Records";
import { linkHandler, useRoute } from "./router";
import { session } from "./session";

/** Re-render on every change of the session (signed in, refused, signed out). */
function useSession() {
  const [, setTick] = useState(0);
  useEffect(() => session.subscribe(() => setTick((t) => t + 1)), []);
  return session;
}

export function App() {
  const route = useRoute();
  const current = useSession();
  const state = current.state;
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="app-header">
        <a class="brand" href="/" onClick={linkHandler("/")}>
          <span class="brand-mark" aria-hidden="true">
            ◆
          </span>{" "}
          Callpilot <span class="brand-sub">agent desk</span>
        </a>
        <nav class="app-nav" aria-label="Main">
          <a href="/" onClick={linkHandler("/")}>
            Calls
          </a>
          <a href="/floor" onClick={linkHandler("/floor")}>
            Floor
          </a>
          <a href="/insights" onClick={linkHandler("/insights")}>
            Insights
          </a>
          <a href="/answer" title="Answer a waiting call with your microphone (WebRTC)">
            Answer a call
          </a>
          {state.kind === "signedIn" && (
            <button class="btn btn-small sign-out" type="button" onClick={() => session.signOut()}>
              Sign out
            </button>
          )}
        </nav>
      </header>
      <main id="main" class="app-main" tabIndex={-1} key={current.epoch}>
        {state.kind === "required" && <SignIn reason={state.reason} message={state.message} />}
        {state.kind !== "required" && <Routes route={route} />}
      </main>
    </>
  );
}

function Routes({ route }: { route: ReturnType<typeof useRoute> }) {
  return (
    <>
        {route.name === "calls" && <CallList />}
        {route.name === "floor" && <FloorPage />}
        {route.name === "insights" && <InsightsPage />}
        {route.name === "call" && <CallView key={route.callId} callId={route.callId} />}
        {route.name === "record" && (
          <div class="record-page panel">
            <a href="/" onClick={linkHandler("/")}>
              ← Calls
            </a>
            <RecordView kind={route.kind} id={route.id} title={new URLSearchParams(window.location.search).get("title") ?? ""} />
          </div>
        )}
        {route.name === "notFound" && (
          <NotFound title="Page not found">
            <p>
              Nothing lives at <code class="mono">{route.path}</code>. The link may be old, or the address mistyped.
            </p>
          </NotFound>
        )}
    </>
  );
}
