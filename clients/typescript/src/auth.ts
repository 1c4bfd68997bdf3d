// Credentials for grpc-web calls: `authorization: Bearer <key or JWT>` on every
// call, read when the call starts (so signing in or out takes effect at once),
// and a hook for UNAUTHENTICATED so an app can ask the person to sign in again.

import type { Interceptor } from "@connectrpc/connect";
import { CallpilotError } from "./errors.js";

export interface BearerAuthOptions {
  /** The current credential (an API key `cp_…` or a JWT); nothing is sent when it returns "" or undefined. */
  credential: () => string | undefined;
  /** Called with the error of every call the server refused as UNAUTHENTICATED (the error is still thrown). */
  onUnauthenticated?: (error: CallpilotError) => void;
}

/**
 * A connect interceptor that adds the credential to every call and reports
 * UNAUTHENTICATED, for unary calls and for streams (whose error arrives while
 * reading). Pass it in `CallpilotClientOptions.interceptors`, or use the
 * `credential` option of `CallpilotClient`, which installs it.
 */
export function bearerAuth(options: BearerAuthOptions): Interceptor {
  const report = (reason: unknown): unknown => {
    const error = CallpilotError.from(reason);
    if (error.code === "UNAUTHENTICATED" && options.onUnauthenticated !== undefined) {
      options.onUnauthenticated(error);
    }
    return reason;
  };
  return (next) => async (request) => {
    const credential = options.credential();
    if (credential) {
      request.header.set("authorization", `Bearer ${credential}`);
    }
    let response;
    try {
      response = await next(request);
    } catch (reason) {
      throw report(reason);
    }
    if (!response.stream) {
      return response;
    }
    const messages = response.message;
    return {
      ...response,
      message: (async function* () {
        try {
          yield* messages;
        } catch (reason) {
          throw report(reason);
        }
      })(),
    };
  };
}
