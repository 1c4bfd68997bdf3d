// The supervisor's APIs: the live floor (FloorService.WatchFloor) and
// analytics (InsightsService.GetInsights), over the same grpc-web gateway.

import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { FloorService, type WatchFloorResponse } from "./gen/callpilot/v1/floor_service_pb.js";
import { InsightsService, type GetInsightsResponse } from "./gen/callpilot/v1/insights_service_pb.js";
import { bearerAuth } from "./auth.js";
import { CallpilotError } from "./errors.js";

export interface SupervisorClientOptions {
  /** The gateway's URL; in a page served by the gateway, its origin (the default). */
  baseUrl?: string;
  /** A ready transport instead of the grpc-web one. */
  transport?: Transport;
  /** Metadata sent with every call, e.g. { authorization: "Bearer ..." }. */
  headers?: Record<string, string>;
  /** The credential sent as `authorization: Bearer …` on every call, read when each call starts (see `bearerAuth`). */
  credential?: () => string | undefined;
  /** Called when the server refuses a call as UNAUTHENTICATED (with `credential`). */
  onUnauthenticated?: (error: CallpilotError) => void;
}

/** What the floor page needs: the live floor and the figures. Every error is a CallpilotError. */
export class SupervisorClient {
  readonly floor: Client<typeof FloorService>;
  readonly insights: Client<typeof InsightsService>;
  private readonly headers: Record<string, string>;

  constructor(options: SupervisorClientOptions = {}) {
    const transport =
      options.transport ??
      createGrpcWebTransport({
        baseUrl: options.baseUrl ?? (globalThis as { location?: { origin: string } }).location?.origin ?? "",
        useBinaryFormat: true,
        ...(options.credential !== undefined
          ? {
              interceptors: [
                bearerAuth({
                  credential: options.credential,
                  ...(options.onUnauthenticated !== undefined ? { onUnauthenticated: options.onUnauthenticated } : {}),
                }),
              ],
            }
          : {}),
      });
    this.floor = createClient(FloorService, transport);
    this.insights = createClient(InsightsService, transport);
    this.headers = { ...(options.headers ?? {}) };
  }

  /**
   * The tenant's floor: a snapshot first, then changes. The stream has no
   * cursor: after a drop, call again and replace everything with the new
   * snapshot (the server sends one first on every stream).
   */
  async *watchFloor(signal?: AbortSignal): AsyncIterable<WatchFloorResponse> {
    try {
      yield* this.floor.watchFloor({}, { headers: this.headers, ...(signal !== undefined ? { signal } : {}) });
    } catch (reason) {
      throw CallpilotError.from(reason);
    }
  }

  /** Figures of the calls created in [startMs, endMs), per bucket of `bucketMs` (0: one bucket). */
  async getInsights(startMs: number, endMs: number, bucketMs = 0, signal?: AbortSignal): Promise<GetInsightsResponse> {
    const seconds = Math.floor(bucketMs / 1000);
    try {
      return await this.insights.getInsights(
        {
          startTime: timestampFromMs(startMs),
          endTime: timestampFromMs(endMs),
          ...(bucketMs > 0 ? { bucket: { seconds: BigInt(seconds), nanos: 0 } } : {}),
        },
        { headers: this.headers, timeoutMs: 30_000, ...(signal !== undefined ? { signal } : {}) },
      );
    } catch (reason) {
      throw CallpilotError.from(reason);
    }
  }
}
