import type { ComponentChildren } from "preact";
import { linkHandler } from "../router";

/** The app's "nothing here" page: what was asked for, and the ways back. */
export function NotFound({ title, children }: { title: string; children: ComponentChildren }) {
  return (
    <section class="not-found panel" aria-labelledby="not-found-title" data-not-found="true">
      <p class="not-found-code" aria-hidden="true">
        404
      </p>
      <h1 id="not-found-title">{title}</h1>
      <div class="not-found-body">{children}</div>
      <p class="not-found-actions">
        <a class="btn btn-primary" href="/" onClick={linkHandler("/")}>
          Back to the calls
        </a>
        <a class="btn" href="/answer">
          Answer a call
        </a>
      </p>
    </section>
  );
}
