// Types a growing text out a few characters at a time, catching up faster
// the further behind it is, so streamed suggestions read like typing
// without ever lagging far behind the deltas.

import { useEffect, useRef, useState } from "preact/hooks";

const TICK_MS = 16;

function reducedMotion(): boolean {
  return typeof window.matchMedia === "function" && window.matchMedia("(prefers-reduced-motion: reduce)").matches;
}

/** Characters to reveal on one tick when `remaining` are still hidden. */
export function typewriterStep(remaining: number): number {
  return remaining <= 0 ? 0 : Math.max(1, Math.ceil(remaining / 12));
}

export function useTypewriter(target: string, animate: boolean): string {
  const [shown, setShown] = useState(animate && !reducedMotion() ? 0 : target.length);
  const targetRef = useRef(target);
  targetRef.current = target;

  useEffect(() => {
    if (!animate || reducedMotion()) {
      setShown(target.length);
      return;
    }
    if (shown >= target.length) {
      return;
    }
    const timer = window.setTimeout(() => {
      setShown((n) => Math.min(targetRef.current.length, n + typewriterStep(targetRef.current.length - n)));
    }, TICK_MS);
    return () => window.clearTimeout(timer);
  }, [target, shown, animate]);

  return target.slice(0, Math.min(shown, target.length));
}
