// A tiny path router: the gateway serves index.html for every app path.

import { useEffect, useState } from "preact/hooks";

export type Route =
  | { name: "calls" }
  | { name: "floor" }
  | { name: "insights" }
  | { name: "call"; callId: string }
  | { name: "record"; kind: RecordKind; id: string }
  | { name: "notFound"; path: string };

export type RecordKind = "orders" | "policies" | "articles" | "customers" | "tickets";

const RECORD_KINDS: readonly RecordKind[] = ["orders", "policies", "articles", "customers", "tickets"];

export function parseRoute(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === "calls")) {
    return { name: "calls" };
  }
  if (parts.length === 1 && (parts[0] === "floor" || parts[0] === "insights")) {
    return { name: parts[0] };
  }
  if (parts.length === 2 && parts[0] === "calls" && parts[1] !== undefined) {
    return { name: "call", callId: parts[1] };
  }
  const kind = parts[0] as RecordKind;
  if (parts.length === 2 && RECORD_KINDS.includes(kind) && parts[1] !== undefined) {
    return { name: "record", kind, id: parts[1] };
  }
  return { name: "notFound", path };
}

export function navigate(path: string): void {
  if (path !== window.location.pathname) {
    window.history.pushState(null, "", path);
    window.dispatchEvent(new PopStateEvent("popstate"));
  }
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.pathname));
  useEffect(() => {
    const update = (): void => setRoute(parseRoute(window.location.pathname));
    window.addEventListener("popstate", update);
    return () => window.removeEventListener("popstate", update);
  }, []);
  return route;
}

/** onClick for in-app links: plain clicks navigate without a reload, modified clicks behave as usual. */
export function linkHandler(path: string): (event: MouseEvent) => void {
  return (event: MouseEvent) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    event.preventDefault();
    navigate(path);
  };
}
